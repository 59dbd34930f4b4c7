import Database from 'better-sqlite3';
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chainHash } from '../../../src/audit/canonical.js';
import { AuditWriter } from '../../../src/audit/writer.js';
import type { Store } from '../../../src/store/types.js';
import { freshStore, session } from '../store/helpers.js';
import type { EventRow } from '../../../src/store/sqlite/audit.js';

export const EVENTS = 40;

/**
 * A realistic closed log of EVENTS events: two terminal sessions with
 * recordings (s1, s2) and one DB session (s3), written through AuditWriter
 * and closed, so the signed head covers everything.
 */
export async function buildLog(): Promise<{ store: Store; dir: string; dbPath: string }> {
  const { store, dir, dbPath } = await freshStore();
  const writer = new AuditWriter(store, dir, { batchSize: 7 });
  mkdirSync(join(dir, 'recordings'), { recursive: true });
  let n = 0;
  const ts = (): number => 1_700_000_000_000 + n * 10;
  for (const id of ['s1', 's2']) {
    const rel = `recordings/${id}.cast`;
    const content = `{"version":2,"width":80,"height":24}\n[0.1,"o","hello ${id}"]\n`;
    writeFileSync(join(dir, rel), content);
    const sha256 = createHash('sha256').update(content).digest('hex');
    await store.createSession(session(id, { protocol: 'ssh', target: 'web-1', recordingPath: rel, startedAt: ts() }));
    await writer.appendNow({ ts: ts(), kind: 'session.start', actor: 'alice', sessionId: id, target: 'web-1', data: { n: n++ } });
    for (let i = 0; i < 5; i++) writer.append({ ts: ts(), kind: 'command', actor: 'alice', sessionId: id, target: 'web-1', data: { command: `ls ${i}`, n: n++ } });
    await store.endSession(id, { endedAt: ts(), status: 'ended', endReason: null, recordingSha256: sha256, recordingBytes: content.length });
    await writer.appendNow({
      ts: ts(), kind: 'session.end', actor: 'alice', sessionId: id, target: 'web-1',
      data: { status: 'ended', recording: { path: rel, sha256, bytes: content.length }, n: n++ },
    });
  }
  await store.createSession(session('s3', { startedAt: ts() }));
  while (n < EVENTS) writer.append({ ts: ts(), kind: 'query', actor: 'alice', sessionId: 's3', target: 'orders-db', data: { sql: `SELECT ${n}`, n: n++ } });
  await writer.close();
  return { store, dir, dbPath };
}

type Row = EventRow;

/** Tampers through a separate connection, as an attacker with file access would. */
export function tamper(dbPath: string, fn: (db: Database.Database) => void): void {
  const db = new Database(dbPath);
  try {
    fn(db);
  } finally {
    db.close();
  }
}

export function row(db: Database.Database, seq: number): Row {
  return db.prepare('SELECT * FROM audit_events WHERE seq = ?').get(seq) as Row;
}

/** The hash an attacker who knows the algorithm would compute for a row. */
export function rehash(r: Omit<Row, 'hash'>): string {
  return chainHash(r.prev_hash, {
    seq: r.seq, ts: r.ts, kind: r.kind, actor: r.actor, sessionId: r.session_id, target: r.target,
    data: JSON.parse(r.data) as Record<string, unknown>,
  });
}

/** Moves rows with seq >= from by `by` (keeping their content), in an order that never collides. */
export function renumber(db: Database.Database, from: number, by: number): void {
  db.prepare('UPDATE audit_events SET seq = -seq WHERE seq >= ?').run(from);
  db.prepare('UPDATE audit_events SET seq = -seq + ? WHERE seq < 0').run(by);
}

export function insertRow(db: Database.Database, r: Row): void {
  db.prepare(
    'INSERT INTO audit_events (seq, ts, kind, actor, session_id, target, data, prev_hash, hash) VALUES (@seq, @ts, @kind, @actor, @session_id, @target, @data, @prev_hash, @hash)',
  ).run(r);
}
