import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readHead, loadHeadKey } from '../../../src/audit/head.js';
import { formatVerify, verifyAudit, type VerifyResult } from '../../../src/audit/verify.js';
import { AuditWriter } from '../../../src/audit/writer.js';
import { EVENTS, buildLog, insertRow, rehash, renumber, row, tamper } from './helpers.js';

const first = (r: VerifyResult): VerifyResult['findings'][number] | undefined => r.findings[0];

describe('verifyAudit on an untouched log', () => {
  it('is ok and says so', async () => {
    const { store, dir } = await buildLog();
    const r = await verifyAudit(store, dir);
    expect(r).toMatchObject({ ok: true, count: EVENTS, lastSeq: EVENTS, findings: [], recordingsVerified: 2 });
    expect(formatVerify(r)).toBe(`OK: ${EVENTS} events, chain intact, head matches, 2 recordings verified`);
    const head = await readHead(dir, loadHeadKey(dir, false));
    expect(head).toMatchObject({ status: 'ok', head: { count: EVENTS, lastSeq: EVENTS } });
  });

  it('verifies in small pages the same way', async () => {
    const { store, dir } = await buildLog();
    expect((await verifyAudit(store, dir, { pageSize: 3 })).ok).toBe(true);
  });
});

describe('verifyAudit finds tampering done through another connection', () => {
  it('an edited row', async () => {
    const { store, dir, dbPath } = await buildLog();
    tamper(dbPath, (db) => db.prepare(`UPDATE audit_events SET data = json_set(data, '$.n', 999) WHERE seq = 17`).run());
    const r = await verifyAudit(store, dir);
    expect(r.ok).toBe(false);
    expect(first(r)).toMatchObject({ seq: 17, kind: 'edited' });
    expect(r.findings).toHaveLength(1);
    expect(formatVerify(r).split('\n')[0]).toBe('FAILED: first bad event #17: hash mismatch (row edited)');
  });

  it('an edited row whose hash was recomputed (the next row no longer links)', async () => {
    const { store, dir, dbPath } = await buildLog();
    tamper(dbPath, (db) => {
      const r = row(db, 20);
      const data = JSON.stringify({ ...(JSON.parse(r.data) as object), sql: 'SELECT innocent' });
      db.prepare('UPDATE audit_events SET data = ?, hash = ? WHERE seq = 20').run(data, rehash({ ...r, data }));
    });
    expect(first(await verifyAudit(store, dir))).toMatchObject({ seq: 20, kind: 'edited' });
  });

  it('a deleted middle row', async () => {
    const { store, dir, dbPath } = await buildLog();
    tamper(dbPath, (db) => db.prepare('DELETE FROM audit_events WHERE seq = 10').run());
    const r = await verifyAudit(store, dir);
    expect(r.findings).toEqual([expect.objectContaining({ seq: 10, kind: 'deleted' })]);
    expect(formatVerify(r).split('\n')[0]).toBe('FAILED: first bad event #10: missing (row deleted)');
  });

  it('a deleted row with the later rows renumbered to close the gap', async () => {
    const { store, dir, dbPath } = await buildLog();
    tamper(dbPath, (db) => {
      db.prepare('DELETE FROM audit_events WHERE seq = 10').run();
      renumber(db, 11, -1);
    });
    const r = await verifyAudit(store, dir);
    expect(first(r)).toMatchObject({ seq: 10, kind: 'deleted' });
  });

  it('two rows swapped (whole rows moved)', async () => {
    const { store, dir, dbPath } = await buildLog();
    tamper(dbPath, (db) => {
      const a = row(db, 5);
      const b = row(db, 12);
      const set = db.prepare('UPDATE audit_events SET ts = @ts, kind = @kind, actor = @actor, session_id = @session_id, target = @target, data = @data, prev_hash = @prev_hash, hash = @hash WHERE seq = @at');
      set.run({ ...b, at: 5 });
      set.run({ ...a, at: 12 });
    });
    const r = await verifyAudit(store, dir);
    expect(first(r)).toMatchObject({ seq: 5, kind: 'reordered' });
    expect(r.findings.map((f) => [f.seq, f.kind])).toEqual([[5, 'reordered'], [12, 'reordered']]);
    expect(formatVerify(r).split('\n')[0]).toBe('FAILED: first bad event #5: out of place (rows reordered)');
  });

  it('two adjacent rows swapped, and two rows\' data swapped in place', async () => {
    const adjacent = await buildLog();
    tamper(adjacent.dbPath, (db) => {
      const a = row(db, 21);
      const b = row(db, 22);
      const set = db.prepare('UPDATE audit_events SET ts = @ts, kind = @kind, data = @data, prev_hash = @prev_hash, hash = @hash WHERE seq = @at');
      set.run({ ...b, at: 21 });
      set.run({ ...a, at: 22 });
    });
    expect(first(await verifyAudit(adjacent.store, adjacent.dir))).toMatchObject({ seq: 21, kind: 'reordered' });

    const contents = await buildLog();
    tamper(contents.dbPath, (db) => {
      const a = row(db, 25);
      const b = row(db, 30);
      db.prepare('UPDATE audit_events SET data = ? WHERE seq = ?').run(b.data, 25);
      db.prepare('UPDATE audit_events SET data = ? WHERE seq = ?').run(a.data, 30);
    });
    const r = await verifyAudit(contents.store, contents.dir);
    expect(r.findings.map((f) => [f.seq, f.kind])).toEqual([[25, 'reordered'], [30, 'reordered']]);
  });

  it('a forged row slipped in (later rows renumbered), well-formed or not', async () => {
    for (const wellFormed of [true, false]) {
      const { store, dir, dbPath } = await buildLog();
      tamper(dbPath, (db) => {
        const prev = row(db, 7);
        renumber(db, 8, 1);
        const forged = { seq: 8, ts: prev.ts + 1, kind: 'query', actor: 'mallory', session_id: 's3', target: 'orders-db', data: '{"sql":"SELECT 1"}', prev_hash: prev.hash };
        insertRow(db, { ...forged, hash: wellFormed ? rehash(forged) : 'f'.repeat(64) });
      });
      const r = await verifyAudit(store, dir);
      expect(r.ok).toBe(false);
      expect(first(r)).toMatchObject({ seq: 8, kind: 'inserted' });
      expect(r.findings).toHaveLength(1);
    }
  });

  it('a well-formed forged row appended after the writer closed (past the signed head)', async () => {
    const { store, dir, dbPath } = await buildLog();
    tamper(dbPath, (db) => {
      const last = row(db, EVENTS);
      const forged = { seq: EVENTS + 1, ts: last.ts + 1, kind: 'grant.create', actor: 'mallory', session_id: null, target: null, data: '{}', prev_hash: last.hash };
      insertRow(db, { ...forged, hash: rehash(forged) });
    });
    const r = await verifyAudit(store, dir, { headGraceMs: 100 });
    expect(first(r)).toMatchObject({ seq: EVENTS + 1, kind: 'inserted' });
  });

  it('rows deleted from the end (the signed head catches the truncated tail)', async () => {
    const { store, dir, dbPath } = await buildLog();
    tamper(dbPath, (db) => db.prepare('DELETE FROM audit_events WHERE seq > ?').run(EVENTS - 3));
    const r = await verifyAudit(store, dir);
    expect(r).toMatchObject({ ok: false, count: EVENTS - 3, lastSeq: EVENTS - 3 });
    expect(r.findings).toEqual([expect.objectContaining({ seq: EVENTS - 2, kind: 'truncated' })]);
    expect(formatVerify(r).split('\n')[0]).toBe(`FAILED: first bad event #${EVENTS - 2}: missing from the end (log truncated)`);
  });

  it('a chain rewritten from some row to the end with recomputed hashes', async () => {
    const { store, dir, dbPath } = await buildLog();
    tamper(dbPath, (db) => {
      let prev = row(db, 29).hash;
      for (let seq = 30; seq <= EVENTS; seq++) {
        const r = { ...row(db, seq), prev_hash: prev };
        if (seq === 30) r.data = '{"sql":"SELECT harmless"}';
        const hash = rehash(r);
        db.prepare('UPDATE audit_events SET data = ?, prev_hash = ?, hash = ? WHERE seq = ?').run(r.data, r.prev_hash, hash, seq);
        prev = hash;
      }
    });
    const r = await verifyAudit(store, dir);
    expect(r.ok).toBe(false);
    expect(first(r)).toMatchObject({ seq: EVENTS, kind: 'edited' });
  });

  it('an edited, deleted or unkeyed head file', async () => {
    const edited = await buildLog();
    const path = join(edited.dir, 'audit.head');
    const head = JSON.parse(readFileSync(path, 'utf8')) as { count: number; lastSeq: number };
    writeFileSync(path, JSON.stringify({ ...head, count: head.count - 5, lastSeq: head.lastSeq - 5 }));
    const r1 = await verifyAudit(edited.store, edited.dir);
    expect(r1.findings).toEqual([expect.objectContaining({ kind: 'head', message: expect.stringContaining('signature') })]);
    expect(formatVerify(r1)).toMatch(/^FAILED: audit.head signature does not match/);

    const deleted = await buildLog();
    rmSync(join(deleted.dir, 'audit.head'));
    expect((await verifyAudit(deleted.store, deleted.dir)).findings).toEqual([expect.objectContaining({ kind: 'head', message: expect.stringContaining('missing') })]);

    const rekeyed = await buildLog();
    writeFileSync(join(rekeyed.dir, 'audit.key'), Buffer.alloc(32, 7));
    expect((await verifyAudit(rekeyed.store, rekeyed.dir)).findings).toEqual([expect.objectContaining({ kind: 'head' })]);
  });

  it('an altered or deleted recording, or a digest changed in the sessions table', async () => {
    const { store, dir, dbPath } = await buildLog();
    writeFileSync(join(dir, 'recordings/s1.cast'), 'something else\n');
    rmSync(join(dir, 'recordings/s2.cast'));
    let r = await verifyAudit(store, dir);
    expect(r.ok).toBe(false);
    expect(r.findings.map((f) => [f.sessionId, f.kind])).toEqual([['s2', 'recording'], ['s1', 'recording']]);
    expect(r.findings.find((f) => f.sessionId === 's1')?.message).toMatch(/altered/);
    expect(r.findings.find((f) => f.sessionId === 's2')?.message).toMatch(/missing/);
    expect(formatVerify(r)).toMatch(/^FAILED: session s2: recording file recordings\/s2.cast is missing/);

    const other = await buildLog();
    tamper(other.dbPath, (db) => db.prepare("UPDATE sessions SET recording_sha256 = ? WHERE id = 's1'").run('0'.repeat(64)));
    r = await verifyAudit(other.store, other.dir);
    expect(r.findings).toEqual([expect.objectContaining({ sessionId: 's1', kind: 'recording', message: expect.stringContaining('differs') })]);
    void dbPath;
  });
});

describe('verifyAudit and a live writer', () => {
  it('accepts events a running writer has not sealed yet, and reports them once nobody seals them', async () => {
    const { store, dir } = await buildLog();
    const live = new AuditWriter(store, dir);
    for (let i = 0; i < 50; i++) live.append({ ts: i, kind: 'query', actor: 'alice', sessionId: 's3', data: { i } });
    await live.flush(); // committed; the head follows within ~100 ms
    expect((await verifyAudit(store, dir)).ok).toBe(true);
    await live.close();

    const stale = new AuditWriter(store, dir, { headIntervalMs: 60_000 });
    const sealed = await stale.appendNow({ ts: 1, kind: 'x', actor: 'a', data: {} }); // its first seal is immediate
    for (let i = 0; i < 100; i++) {
      const h = await readHead(dir, loadHeadKey(dir, false));
      if (h.status === 'ok' && h.head.lastSeq === sealed.seq) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    await stale.appendNow({ ts: 2, kind: 'x', actor: 'a', data: {} }); // the next seal is not due for a minute
    const r = await verifyAudit(store, dir, { headGraceMs: 200 });
    expect(first(r)).toMatchObject({ seq: EVENTS + 52, kind: 'inserted', message: expect.stringContaining('not covered by the signed head') });
    await stale.close();
    expect((await verifyAudit(store, dir)).ok).toBe(true);
  });
});
