/**
 * Audit hot path: 200k realistic query events through AuditWriter (canonical
 * JSON, hash chain, signed head, synchronous=FULL, with backpressure) into a
 * fresh SqliteStore, against a baseline in the same run: raw better-sqlite3
 * inserts of the same rows (same table and indexes, same PRAGMAs, 1000-row
 * transactions, plain JSON.stringify, empty hash columns, no search index).
 * Also: appendNow latency, verify speed, and the search index, which is
 * built behind the append path (src/store/sqlite/audit-worker.ts).
 *
 *   npx tsc -p . && node dist/bench/store.js
 */
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuditWriter } from '../src/audit/writer.js';
import { verifyAudit } from '../src/audit/verify.js';
import { SqliteStore } from '../src/store/sqlite/store.js';
import type { AuditInput, SessionRecord } from '../src/store/types.js';
import { runIfMain, type BenchResult, type BenchRow } from './types.js';

const N = 200_000;
const SESSIONS = 64;
const TABLES = ['orders', 'customers', 'payments', 'invoices', 'shipments', 'refunds'];

/** A query event as the Postgres adapter emits it: ~80 chars of SQL, bound params, timing, rows, tag. */
function event(i: number, t0: number): AuditInput {
  const table = TABLES[i % TABLES.length]!;
  const id = 100_000 + ((i * 7919) % 900_000);
  return {
    ts: t0 + Math.floor(i / 50),
    kind: 'query',
    actor: `user${i % 8}`,
    sessionId: sessionId(i % SESSIONS),
    target: 'orders-db',
    data: {
      type: 'query',
      step: i % 3 === 0 ? 'query' : 'execute',
      startedAt: t0 + Math.floor(i / 50),
      durationMs: ((i * 37) % 5000) / 100,
      sql: `SELECT id, status, amount, created_at FROM ${table} WHERE customer_id = $1 AND status = $2 LIMIT 50`,
      params: [
        { type: 23, format: 'text', value: String(id) },
        { type: 25, format: 'text', value: i % 2 ? 'paid' : 'open' },
      ],
      rows: i % 50,
      tag: `SELECT ${i % 50}`,
      error: null,
    },
  };
}

function session(s: number, t0: number): SessionRecord {
  return {
    id: sessionId(s), user: `user${s % 8}`, target: 'orders-db', segment: 'payments-prod', protocol: 'postgres',
    clientAddr: '127.0.0.1:50000', brokerId: 'bench', rule: 'developer.allow[1]', access: 'read', grantId: null,
    startedAt: t0 + s, endedAt: null, status: 'live', endReason: null, recordingPath: null, recordingSha256: null,
    recordingBytes: null, meta: { database: 'orders' },
  };
}

const sessionId = (s: number): string => `s_${s.toString(16).padStart(8, '0')}`;

async function timeWriter(dir: string): Promise<{ seconds: number; store: SqliteStore; appendNowMs: number }> {
  const store = new SqliteStore(join(dir, 'wicket.db'));
  await store.migrate();
  for (let s = 0; s < SESSIONS; s++) await store.createSession(session(s, Date.now()));
  const writer = new AuditWriter(store, dir);
  const t0 = Date.now();
  const start = process.hrtime.bigint();
  for (let i = 0; i < N; i++) {
    if (!writer.append(event(i, t0))) await writer.drained();
  }
  await writer.flush();
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  // appendNow = one event, one transaction, one fsync: the price of a session.start.
  const k = 50;
  const s2 = process.hrtime.bigint();
  for (let i = 0; i < k; i++) await writer.appendNow({ ...event(i, t0), kind: 'session.start' });
  const appendNowMs = Number(process.hrtime.bigint() - s2) / 1e6 / k;
  await writer.close();
  return { seconds, store, appendNowMs };
}

function timeRaw(dir: string): number {
  const db = new Database(join(dir, 'raw.db'));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma('wal_autocheckpoint = 4000');
  db.exec(`CREATE TABLE audit_events (seq INTEGER PRIMARY KEY, ts INTEGER NOT NULL, kind TEXT NOT NULL, actor TEXT NOT NULL,
    session_id TEXT, target TEXT, data TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL);
    CREATE INDEX audit_session ON audit_events (session_id) WHERE session_id IS NOT NULL;
    CREATE INDEX audit_kind ON audit_events (kind);`);
  const insert = db.prepare('INSERT INTO audit_events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)');
  const batch = db.transaction((evs: AuditInput[], first: number) => {
    for (let j = 0; j < evs.length; j++) {
      const e = evs[j]!;
      insert.run(first + j, e.ts, e.kind, e.actor, e.sessionId, e.target, JSON.stringify(e.data), '', '');
    }
  });
  const t0 = Date.now();
  const start = process.hrtime.bigint();
  for (let i = 0; i < N; i += 1000) {
    const evs: AuditInput[] = [];
    for (let j = i; j < Math.min(N, i + 1000); j++) evs.push(event(j, t0));
    batch.immediate(evs, i + 1);
  }
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  db.close();
  return seconds;
}

export async function benchStore(): Promise<BenchResult> {
  const dir = mkdtempSync(join(tmpdir(), 'wicket-bench-store-'));
  try {
    const raw = timeRaw(dir);
    const w = await timeWriter(dir);
    const vStart = process.hrtime.bigint();
    const v = await verifyAudit(w.store, dir, { headGraceMs: 0 });
    const vSeconds = Number(process.hrtime.bigint() - vStart) / 1e9;
    // The search index is built behind the hot path; the first search after
    // the burst pays for indexing all 200k events, later ones do not.
    const q0 = process.hrtime.bigint();
    const hits = await w.store.listSessions({ q: 'FROM refunds WHERE', limit: 100 });
    const firstMs = Number(process.hrtime.bigint() - q0) / 1e6;
    const q1 = process.hrtime.bigint();
    await w.store.listSessions({ q: 'status = $2', limit: 100 });
    const warmMs = Number(process.hrtime.bigint() - q1) / 1e6;
    await w.store.close();
    const wicketRate = N / w.seconds;
    const rawRate = N / raw;
    const rows: BenchRow[] = [
      { metric: 'AuditWriter.append (hash chain + signed head, sync=FULL)', value: Math.round(wicketRate), unit: 'events/s', note: `${N} events in ${w.seconds.toFixed(2)} s; target >= 50000` },
      { metric: 'baseline: raw better-sqlite3 insert, no hashing', value: Math.round(rawRate), unit: 'events/s', note: 'same table, indexes, PRAGMAs, 1000-row txns' },
      { metric: 'wicket / baseline', value: wicketRate / rawRate, unit: 'ratio' },
      { metric: 'AuditWriter.appendNow latency', value: w.appendNowMs, unit: 'ms', note: 'one event per commit (fsync)' },
      { metric: 'verifyAudit', value: Math.round(v.count / vSeconds), unit: 'events/s', note: v.ok ? `${v.count} events, ok` : `NOT OK: ${v.findings[0]?.message ?? ''}` },
      { metric: 'search index catch-up (first listSessions q)', value: Math.round(N / (firstMs / 1000)), unit: 'events/s', note: `${firstMs.toFixed(0)} ms; off the append path; ${hits.length} sessions match` },
      { metric: 'listSessions q, index current', value: warmMs, unit: 'ms', note: 'FTS5 trigram substring match' },
    ];
    return { name: 'store: audit append throughput', rows };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

runIfMain(import.meta.url, 'store', benchStore);
