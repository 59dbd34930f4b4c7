import Database from 'better-sqlite3';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { exportAudit } from '../../../src/audit/export.js';
import { loadHeadKey, readHead, sealHead, writeHead } from '../../../src/audit/head.js';
import { formatVerify, verifyAudit } from '../../../src/audit/verify.js';
import { AuditWriter } from '../../../src/audit/writer.js';
import { freshStore } from '../store/helpers.js';

describe('exportAudit', () => {
  it('writes JSON lines with the documented field names, filtered by sinceTs', async () => {
    const { store } = await freshStore();
    const t0 = Date.UTC(2026, 10, 27, 12);
    await store.appendAudit([
      { ts: t0, kind: 'auth.ok', actor: 'alice', data: { method: 'password' } },
      { ts: t0 + 120_000, kind: 'query', actor: 'alice', sessionId: 's1', target: 'orders-db', data: { sql: 'SELECT 1' } },
      { ts: t0 + 240_000, kind: 'session.end', actor: 'alice', sessionId: 's1', target: 'orders-db', data: {} },
    ]);
    const all: string[] = [];
    await exportAudit(store, {}, (l) => all.push(l));
    expect(all).toHaveLength(3);
    const second = JSON.parse(all[1]!) as Record<string, unknown>;
    expect(Object.keys(second)).toEqual(['seq', 'ts', 'ts_ms', 'kind', 'actor', 'session_id', 'target', 'data', 'prev_hash', 'hash']);
    expect(second).toMatchObject({ seq: 2, ts: '2026-11-27T12:02:00.000Z', ts_ms: t0 + 120_000, session_id: 's1', target: 'orders-db', data: { sql: 'SELECT 1' } });
    const since: string[] = [];
    await exportAudit(store, { sinceTs: t0 + 100_000, pageSize: 1 }, (l) => since.push(l));
    expect(since.map((l) => (JSON.parse(l) as { seq: number }).seq)).toEqual([2, 3]);
  });

  it('follows new events until aborted', async () => {
    const { store } = await freshStore();
    await store.appendAudit([{ ts: 1, kind: 'a', actor: 'x', data: {} }]);
    const ac = new AbortController();
    const seen: number[] = [];
    const done = exportAudit(store, { follow: true, signal: ac.signal, pollMs: 20 }, (l) => {
      seen.push((JSON.parse(l) as { seq: number }).seq);
      if (seen.length === 3) ac.abort();
    });
    await new Promise((r) => setTimeout(r, 50));
    await store.appendAudit([{ ts: 2, kind: 'b', actor: 'x', data: {} }, { ts: 3, kind: 'c', actor: 'x', data: {} }]);
    await done;
    expect(seen).toEqual([1, 2, 3]);
  });
});

describe('signed head', () => {
  it('rejects malformed or foreign-keyed head files', async () => {
    const { dir } = await freshStore();
    const key = loadHeadKey(dir, true)!;
    expect(loadHeadKey(dir, true)).toEqual(key); // created once
    await writeHead(dir, key, { count: 3, lastSeq: 3, lastHash: 'a'.repeat(64) }, 5);
    expect(await readHead(dir, key)).toMatchObject({ status: 'ok', head: { count: 3, writtenAt: 5 } });
    expect(await readHead(dir, Buffer.alloc(32))).toMatchObject({ status: 'invalid' });
    expect(await readHead(dir, null)).toMatchObject({ status: 'invalid', reason: expect.stringContaining('audit.key') });
    writeFileSync(join(dir, 'audit.head'), 'not json');
    expect(await readHead(dir, key)).toMatchObject({ status: 'invalid' });
    writeFileSync(join(dir, 'audit.head'), '{"count":1}');
    expect(await readHead(dir, key)).toMatchObject({ status: 'invalid', reason: expect.stringContaining('missing fields') });
    writeFileSync(join(dir, 'audit.key'), 'short');
    expect(() => loadHeadKey(dir, false)).toThrow(expect.objectContaining({ code: 'WICKET_ERR_AUDIT_TAMPERED' }));
  });

  it('will not move the head over a log that lost or changed its sealed tail', async () => {
    const { store, dir, dbPath } = await freshStore();
    const w = new AuditWriter(store, dir);
    for (let i = 0; i < 5; i++) await w.appendNow({ ts: i, kind: 'k', actor: 'a', data: { i } });
    await w.close();
    const key = loadHeadKey(dir, false)!;
    // more events arrive (head not yet moved), then the sealed event #5 is altered
    await store.appendAudit([{ ts: 9, kind: 'k', actor: 'a', data: {} }]);
    const db = new Database(dbPath);
    db.prepare("UPDATE audit_events SET hash = 'x' WHERE seq = 5").run();
    db.close();
    await expect(sealHead(store, dir, key)).rejects.toMatchObject({ code: 'WICKET_ERR_AUDIT_TAMPERED' });
    expect(await readHead(dir, key)).toMatchObject({ status: 'ok', head: { lastSeq: 5 } }); // evidence kept
    expect((await verifyAudit(store, dir)).findings[0]).toMatchObject({ seq: 5, kind: 'edited' });
  });

  it('an empty log with no head is fine', async () => {
    const { store, dir } = await freshStore();
    const r = await verifyAudit(store, dir);
    expect(r).toMatchObject({ ok: true, count: 0, lastSeq: 0 });
    expect(formatVerify(r)).toBe('OK: 0 events (empty log), 0 recordings verified');
  });
});
