/** audit_events: the hash chain's storage (DESIGN.md §5). */
import { chainedEvent, prepareAudit } from '../../audit/prepared.js';
import type { AuditEvent, AuditHead, AuditInput } from '../types.js';
import { AuditWorker } from './worker-client.js';
import type { Statements } from './db.js';

/** An audit_events row as SQLite returns it (also what the tampering tests edit). */
export interface EventRow {
  seq: number;
  ts: number;
  kind: string;
  actor: string;
  session_id: string | null;
  target: string | null;
  data: string;
  prev_hash: string;
  hash: string;
}

interface StateRow {
  count: number;
  last_seq: number;
  last_hash: string;
}

/**
 * Key under which readAudit returns a `data` column that is not JSON (only a
 * hand-edited row can be). The event is still returned, so the verifier can
 * report the row as edited instead of stopping: its hash cannot match.
 */
export const UNPARSEABLE_DATA_KEY = '!unparseable';

function toEvent(r: EventRow): AuditEvent {
  let data: Record<string, unknown>;
  try {
    data = JSON.parse(r.data) as Record<string, unknown>;
    if (typeof data !== 'object' || data === null || Array.isArray(data)) data = { [UNPARSEABLE_DATA_KEY]: r.data };
  } catch {
    data = { [UNPARSEABLE_DATA_KEY]: r.data };
  }
  return {
    seq: r.seq,
    ts: r.ts,
    kind: r.kind,
    actor: r.actor,
    sessionId: r.session_id,
    target: r.target,
    data,
    prevHash: r.prev_hash,
    hash: r.hash,
  };
}

const COLUMNS = 'seq, ts, kind, actor, session_id, target, data, prev_hash, hash';

export class AuditTable {
  private readonly worker: AuditWorker;

  constructor(
    path: string,
    private readonly s: Statements,
  ) {
    this.worker = new AuditWorker(path);
  }

  /**
   * Chains and inserts `events` in one IMMEDIATE transaction on the append
   * worker's connection (audit-worker.ts): all or none. Events carrying
   * `dataJson` (PreparedAuditInput) are not serialised again.
   */
  async append(events: readonly AuditInput[]): Promise<AuditEvent[]> {
    if (events.length === 0) return [];
    const prepared = events.map((e) => prepareAudit(e));
    const r = await this.worker.append(prepared);
    const out = new Array<AuditEvent>(prepared.length);
    let prev = r.prev;
    for (let i = 0; i < prepared.length; i++) {
      const hash = r.hashes.slice(i * 64, i * 64 + 64);
      out[i] = chainedEvent(prepared[i]!, r.first + i, prev, hash);
      prev = hash;
    }
    return out;
  }

  /** Brings the session search index up to every event committed so far (done by the worker). */
  catchUpSearch(): Promise<void> {
    return this.worker.catchUpSearch();
  }

  close(): Promise<void> {
    return this.worker.close();
  }

  read(afterSeq: number, limit: number): AuditEvent[] {
    const n = Math.max(0, Math.floor(limit));
    if (n === 0) return [];
    const rows = this.s.get(`SELECT ${COLUMNS} FROM audit_events WHERE seq > ? ORDER BY seq LIMIT ?`).all(afterSeq, n);
    return (rows as EventRow[]).map(toEvent);
  }

  forSession(sessionId: string, page?: { readonly afterSeq: number; readonly limit: number }): AuditEvent[] {
    // The session_id index orders by seq (the rowid) within a session: a page is a range scan.
    const rows = page
      ? this.s.get(`SELECT ${COLUMNS} FROM audit_events WHERE session_id = ? AND seq > ? ORDER BY seq LIMIT ?`).all(sessionId, page.afterSeq, Math.max(0, page.limit))
      : this.s.get(`SELECT ${COLUMNS} FROM audit_events WHERE session_id = ? ORDER BY seq`).all(sessionId);
    return (rows as EventRow[]).map(toEvent);
  }

  head(): AuditHead {
    const st = this.s.get('SELECT count, last_seq, last_hash FROM audit_state WHERE id = 1').get() as StateRow;
    return { count: st.count, lastSeq: st.last_seq, lastHash: st.last_hash };
  }
}
