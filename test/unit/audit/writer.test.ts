import Database from 'better-sqlite3';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadHeadKey, readHead } from '../../../src/audit/head.js';
import { verifyAudit } from '../../../src/audit/verify.js';
import { AuditWriter } from '../../../src/audit/writer.js';
import { isWicketError } from '../../../src/errors.js';
import type { AuditInput, Store } from '../../../src/store/types.js';
import { freshStore } from '../store/helpers.js';

const ev = (i: number, over: Partial<AuditInput> = {}): AuditInput => ({ ts: 1000 + i, kind: 'query', actor: 'alice', sessionId: 's1', data: { i }, ...over });

describe('AuditWriter', () => {
  it('keeps append/appendNow order across batches and pipelined writes', async () => {
    const { store, dir } = await freshStore();
    const w = new AuditWriter(store, dir, { batchSize: 7 });
    const nows: Promise<unknown>[] = [];
    for (let i = 0; i < 200; i++) {
      if (i % 37 === 0) nows.push(w.appendNow(ev(i, { kind: 'session.start' })));
      else w.append(ev(i));
    }
    await Promise.all(nows);
    await w.close();
    const rows = await store.readAudit(0, 1000);
    expect(rows.map((r) => (r.data as { i: number }).i)).toEqual(Array.from({ length: 200 }, (_, i) => i));
    expect((await verifyAudit(store, dir)).ok).toBe(true);
  });

  it('signals backpressure at the high-water mark, resolves drained, and throws past the hard limit', async () => {
    const { store, dir } = await freshStore();
    const w = new AuditWriter(store, dir, { highWaterMark: 10, hardLimit: 20 });
    const results: boolean[] = [];
    for (let i = 0; i < 20; i++) results.push(w.append(ev(i)));
    expect(results.slice(0, 9).every(Boolean)).toBe(true);
    expect(results.slice(9).some(Boolean)).toBe(false);
    expect(w.pending).toBe(20);
    expect(() => w.append(ev(20))).toThrow(expect.objectContaining({ code: 'WICKET_ERR_LIMIT' }));
    await w.drained();
    expect(w.pending).toBeLessThanOrEqual(5);
    expect(w.append(ev(21))).toBe(true);
    await w.close();
    expect((await store.auditHead()).count).toBe(21); // nothing dropped
  });

  it('appendNow resolves only once the event is durable (visible to another connection)', async () => {
    const { store, dir, dbPath } = await freshStore();
    const w = new AuditWriter(store, dir);
    w.append(ev(1));
    const e = await w.appendNow(ev(2, { kind: 'session.start', data: { user: 'alice' } }));
    expect(e).toMatchObject({ seq: 2, kind: 'session.start', data: { user: 'alice' } });
    const db = new Database(dbPath, { readonly: true });
    const row = db.prepare('SELECT seq, hash FROM audit_events WHERE seq = 2').get();
    db.close();
    expect(row).toEqual({ seq: 2, hash: e.hash });
    await w.close();
  });

  it('seals a signed head (key file 0600) and rejects unserialisable events without failing', async () => {
    const { store, dir } = await freshStore();
    const w = new AuditWriter(store, dir);
    expect(() => w.append(ev(1, { data: { bad: Number.NaN } }))).toThrow(expect.objectContaining({ code: 'WICKET_ERR_INTERNAL' }));
    w.append(ev(2));
    await w.close();
    expect(await readHead(dir, loadHeadKey(dir, false))).toMatchObject({ status: 'ok', head: { count: 1, lastSeq: 1 } });
    expect(statSync(join(dir, 'audit.key')).mode & 0o777).toBe(0o600);
    expect(() => w.append(ev(3))).toThrow(expect.objectContaining({ code: 'WICKET_ERR_RECORDING' }));
    await w.close(); // idempotent
  });

  it('a writer that wrote nothing does not touch the head', async () => {
    const { store, dir } = await freshStore();
    await new AuditWriter(store, dir).close();
    expect(await readHead(dir, null)).toEqual({ status: 'missing' });
  });

  it('fails closed when the store goes away under it', async () => {
    const { store, dir } = await freshStore();
    const w = new AuditWriter(store, dir);
    const failures: Error[] = [];
    w.onFailure((err) => failures.push(err));
    await w.appendNow(ev(0));
    await store.close();
    try {
      w.append(ev(1));
    } catch {
      // the head sealer, resealing after the appendNow above, may notice first
    }
    await expect(w.flush()).rejects.toMatchObject({ code: 'WICKET_ERR_RECORDING' });
    expect(failures).toHaveLength(1);
    expect(failures[0]!.message).toMatch(/closed/);
    expect(w.failure).toBe(failures[0]);
    expect(() => w.append(ev(2))).toThrow(expect.objectContaining({ code: 'WICKET_ERR_RECORDING' }));
    await expect(w.appendNow(ev(3))).rejects.toSatisfy((e: unknown) => isWicketError(e, 'WICKET_ERR_RECORDING'));
    await expect(w.drained()).rejects.toMatchObject({ code: 'WICKET_ERR_RECORDING' });
    // a listener added after the failure still hears about it
    const late = await new Promise<Error>((resolve) => w.onFailure(resolve));
    expect(late).toBe(failures[0]);
    await w.close();
  });

  it('fails closed, rejecting everything queued behind, when a batch fails mid-pipeline', async () => {
    const { store, dir, dbPath } = await freshStore();
    const w = new AuditWriter(store, dir, { batchSize: 5 });
    await w.appendNow(ev(0));
    // someone deletes the tail behind the writer's back
    const db = new Database(dbPath);
    db.prepare('DELETE FROM audit_events WHERE seq = 1').run();
    db.close();
    const nows = Array.from({ length: 4 }, (_, i) => w.appendNow(ev(i + 1)));
    for (let i = 0; i < 30; i++) w.append(ev(10 + i));
    const settled = await Promise.allSettled(nows);
    expect(settled.every((s) => s.status === 'rejected')).toBe(true);
    expect(w.failure?.message).toMatch(/tail changed outside wicket/);
    expect((await store.auditHead()).count).toBe(1); // nothing chained onto the damaged tail
  });

  it('passes the failure of a store it cannot see into to every listener', async () => {
    const broken = {
      appendAudit: () => Promise.reject(new Error('disk full')),
    } as unknown as Store;
    const w = new AuditWriter(broken, '/nonexistent');
    const seen: string[] = [];
    w.onFailure((e) => seen.push(`a:${e.message}`));
    w.onFailure(() => {
      throw new Error('listener bug');
    });
    w.onFailure((e) => seen.push(`b:${e.message}`));
    await expect(w.appendNow(ev(1))).rejects.toMatchObject({ code: 'WICKET_ERR_RECORDING', message: expect.stringContaining('disk full') });
    expect(seen).toEqual(['a:disk full', 'b:disk full']);
  });
});
