/** sessions table and the session search (listSessions). */
import { WicketError } from '../../errors.js';
import type { Protocol } from '../../config/schema.js';
import type { SessionEnd, SessionFilter, SessionRecord, SessionStatus } from '../types.js';
import { parseJson, type Statements } from './db.js';

interface SessionRow {
  id: string;
  user: string;
  target: string;
  segment: string;
  protocol: string;
  client_addr: string;
  broker_id: string;
  rule: string | null;
  access: string;
  grant_id: string | null;
  started_at: number;
  ended_at: number | null;
  status: string;
  end_reason: string | null;
  recording_path: string | null;
  recording_sha256: string | null;
  recording_bytes: number | null;
  meta: string;
}

function toSession(r: SessionRow): SessionRecord {
  return {
    id: r.id,
    user: r.user,
    target: r.target,
    segment: r.segment,
    protocol: r.protocol as Protocol,
    clientAddr: r.client_addr,
    brokerId: r.broker_id,
    rule: r.rule,
    access: r.access === 'write' ? 'write' : 'read',
    grantId: r.grant_id,
    startedAt: r.started_at,
    endedAt: r.ended_at,
    status: r.status as SessionStatus,
    endReason: r.end_reason,
    recordingPath: r.recording_path,
    recordingSha256: r.recording_sha256,
    recordingBytes: r.recording_bytes,
    meta: parseJson<Record<string, unknown>>(r.meta, 'sessions.meta'),
  };
}

export const DEFAULT_SESSION_LIMIT = 100;
export const MAX_SESSION_LIMIT = 1000;

/** FTS5 phrase: the whole input as one quoted string; `"` is the only character special inside it. */
export function ftsPhrase(q: string): string {
  return `"${q.replaceAll('"', '""')}"`;
}

/** LIKE pattern matching q literally anywhere; `\` is the ESCAPE character. */
export function likeContains(q: string): string {
  return `%${q.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

export class SessionsTable {
  constructor(private readonly s: Statements) {}

  create(x: SessionRecord): void {
    this.s
      .get(
        `INSERT INTO sessions (id, user, target, segment, protocol, client_addr, broker_id, rule, access, grant_id,
           started_at, ended_at, status, end_reason, recording_path, recording_sha256, recording_bytes, meta)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        x.id, x.user, x.target, x.segment, x.protocol, x.clientAddr, x.brokerId, x.rule, x.access, x.grantId,
        x.startedAt, x.endedAt, x.status, x.endReason, x.recordingPath, x.recordingSha256, x.recordingBytes,
        JSON.stringify(x.meta ?? {}),
      );
  }

  end(id: string, e: SessionEnd): void {
    const r = this.s
      .get(
        `UPDATE sessions SET ended_at = ?, status = ?, end_reason = ?, recording_sha256 = ?, recording_bytes = ?
         WHERE id = ?`,
      )
      .run(e.endedAt, e.status, e.endReason, e.recordingSha256, e.recordingBytes, id);
    if (r.changes === 0) throw new WicketError('WICKET_ERR_NOT_FOUND', `store: no session ${id}`);
  }

  get(id: string): SessionRecord | null {
    const r = this.s.get('SELECT * FROM sessions WHERE id = ?').get(id) as SessionRow | undefined;
    return r ? toSession(r) : null;
  }

  /**
   * Newest first, keyset-paginated on (started_at DESC, id DESC): pass the last
   * row's (startedAt, id) as `before` for the next page. `since` keeps
   * sessions that started at or after it. `q` is a case-insensitive substring
   * match over the string values of the session's audit events (queries,
   * commands, file paths ...): FTS5 trigram index for 3+ characters, a LIKE
   * scan of the same index text for shorter input. User input is always bound
   * as a parameter and quoted/escaped for MATCH/LIKE, never spliced into SQL.
   */
  list(f: SessionFilter): SessionRecord[] {
    const where: string[] = [];
    const params: (string | number)[] = [];
    const eq = (col: string, v: string | undefined): void => {
      if (v === undefined) return;
      where.push(`${col} = ?`);
      params.push(v);
    };
    eq('user', f.user);
    eq('target', f.target);
    eq('segment', f.segment);
    eq('protocol', f.protocol);
    if (f.live !== undefined) where.push(f.live ? "status = 'live'" : "status <> 'live'");
    if (f.since !== undefined) {
      where.push('started_at >= ?');
      params.push(f.since);
    }
    if (f.before !== undefined) {
      where.push('(started_at < ? OR (started_at = ? AND id < ?))');
      params.push(f.before.startedAt, f.before.startedAt, f.before.id);
    }
    const q = f.q?.trim() ?? '';
    if (q !== '') {
      // `+id`: keeps SQLite from driving the query by the matching ids (then sorting every match, ~250 ms
      // for a term in 100k sessions); instead it walks sessions_started newest-first, checks each against
      // the matches (computed once) and stops at LIMIT.
      if ([...q].length >= 3) {
        where.push('+id IN (SELECT session_id FROM audit_fts WHERE audit_fts MATCH ?)');
        params.push(ftsPhrase(q));
      } else {
        where.push("+id IN (SELECT session_id FROM audit_fts WHERE text LIKE ? ESCAPE '\\')");
        params.push(likeContains(q));
      }
    }
    const want = f.limit !== undefined && Number.isFinite(f.limit) ? Math.floor(f.limit) : DEFAULT_SESSION_LIMIT;
    const limit = Math.min(Math.max(1, want), MAX_SESSION_LIMIT);
    params.push(limit);
    const sql =
      `SELECT * FROM sessions${where.length > 0 ? ` WHERE ${where.join(' AND ')}` : ''}` +
      ' ORDER BY started_at DESC, id DESC LIMIT ?';
    return (this.s.get(sql).all(...params) as SessionRow[]).map(toSession);
  }
}
