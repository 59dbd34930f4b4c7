/** access_requests, grants, segment_locks and control tables. */
import type { Grant, SegmentLock } from '../../policy/types.js';
import type {
  AccessRequestRecord,
  ControlInput,
  ControlKind,
  ControlRecord,
  RequestDecision,
  RequestState,
} from '../types.js';
import { parseJson, type Db, type Statements } from './db.js';

interface RequestRow {
  id: number;
  user: string;
  target: string | null;
  segment: string;
  duration_ms: number;
  reason: string;
  state: string;
  approvals_required: number;
  decisions: string;
  created_at: number;
  pending_until: number;
  updated_at: number;
  grant_id: string | null;
}

function toRequest(r: RequestRow): AccessRequestRecord {
  return {
    id: r.id,
    user: r.user,
    target: r.target,
    segment: r.segment,
    durationMs: r.duration_ms,
    reason: r.reason,
    state: r.state as RequestState,
    approvalsRequired: r.approvals_required,
    decisions: parseJson<RequestDecision[]>(r.decisions, 'access_requests.decisions'),
    createdAt: r.created_at,
    pendingUntil: r.pending_until,
    updatedAt: r.updated_at,
    grantId: r.grant_id,
  };
}

type RequestFields = Omit<AccessRequestRecord, 'id'>;

/** Record field -> column, for updateRequest's partial SET. */
const REQUEST_COLUMNS: { readonly [K in keyof RequestFields]-?: string } = {
  user: 'user',
  target: 'target',
  segment: 'segment',
  durationMs: 'duration_ms',
  reason: 'reason',
  state: 'state',
  approvalsRequired: 'approvals_required',
  decisions: 'decisions',
  createdAt: 'created_at',
  pendingUntil: 'pending_until',
  updatedAt: 'updated_at',
  grantId: 'grant_id',
};

function isRequestField(key: string): key is keyof RequestFields {
  return Object.prototype.hasOwnProperty.call(REQUEST_COLUMNS, key);
}

export class RequestsTable {
  constructor(
    private readonly db: Db,
    private readonly s: Statements,
  ) {}

  create(r: RequestFields): AccessRequestRecord {
    const info = this.s
      .get(
        `INSERT INTO access_requests (user, target, segment, duration_ms, reason, state, approvals_required, decisions,
           created_at, pending_until, updated_at, grant_id)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        r.user, r.target, r.segment, r.durationMs, r.reason, r.state, r.approvalsRequired, JSON.stringify(r.decisions),
        r.createdAt, r.pendingUntil, r.updatedAt, r.grantId,
      );
    return { ...r, id: Number(info.lastInsertRowid) };
  }

  get(id: number): AccessRequestRecord | null {
    const r = this.s.get('SELECT * FROM access_requests WHERE id = ?').get(id) as RequestRow | undefined;
    return r ? toRequest(r) : null;
  }

  list(f: { readonly user?: string; readonly state?: RequestState }): AccessRequestRecord[] {
    const where: string[] = [];
    const params: string[] = [];
    if (f.user !== undefined) (where.push('user = ?'), params.push(f.user));
    if (f.state !== undefined) (where.push('state = ?'), params.push(f.state));
    const sql = `SELECT * FROM access_requests${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY id`;
    return (this.s.get(sql).all(...params) as RequestRow[]).map(toRequest);
  }

  /**
   * Compare-and-set: the UPDATE's `WHERE state = expected` makes the check and
   * the write one atomic step, so two approvers (or an approver and the expiry
   * sweep, on any broker) cannot both win.
   */
  update(id: number, expected: RequestState, next: Partial<RequestFields>, expectedDecisions?: number): AccessRequestRecord | null {
    return this.db
      .transaction((): AccessRequestRecord | null => {
        const sets: string[] = [];
        const params: (string | number | null)[] = [];
        for (const key of Object.keys(next)) {
          if (!isRequestField(key)) continue;
          const v = next[key];
          if (v === undefined) continue;
          sets.push(`${REQUEST_COLUMNS[key]} = ?`);
          params.push(key === 'decisions' ? JSON.stringify(v) : (v as string | number | null));
        }
        // With expectedDecisions, also the number of decisions recorded so far: two approvals of a
        // multi-approver request (both leave it pending) cannot overwrite each other.
        const also = expectedDecisions === undefined ? '' : ' AND json_array_length(decisions) = ?';
        const sql =
          sets.length > 0
            ? `UPDATE access_requests SET ${sets.join(', ')} WHERE id = ? AND state = ?${also}`
            : `UPDATE access_requests SET state = state WHERE id = ? AND state = ?${also}`;
        const where: (string | number)[] = expectedDecisions === undefined ? [id, expected] : [id, expected, expectedDecisions];
        if (this.db.prepare(sql).run(...params, ...where).changes === 0) return null;
        return this.get(id);
      })
      .immediate();
  }
}

interface GrantRow {
  id: string;
  request_id: string | null;
  user: string;
  target: string | null;
  segment: string;
  valid_from: number;
  expires_at: number;
  revoked_at: number | null;
}

function toGrant(r: GrantRow): Grant {
  return {
    id: r.id,
    requestId: r.request_id,
    user: r.user,
    target: r.target,
    segment: r.segment,
    validFrom: r.valid_from,
    expiresAt: r.expires_at,
    revokedAt: r.revoked_at,
  };
}

export class GrantsTable {
  constructor(private readonly s: Statements) {}

  create(g: Grant): void {
    this.s
      .get(
        `INSERT INTO grants (id, request_id, user, target, segment, valid_from, expires_at, revoked_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(g.id, g.requestId, g.user, g.target, g.segment, g.validFrom, g.expiresAt, g.revokedAt);
  }

  revoke(id: string, at: number): boolean {
    return this.s.get('UPDATE grants SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL').run(at, id).changes > 0;
  }

  /** Usable at `now`: not revoked, already valid (valid_from <= now) and not expired (now < expires_at). */
  active(user: string, now: number): Grant[] {
    const rows = this.s
      .get(
        `SELECT * FROM grants WHERE user = ? AND revoked_at IS NULL AND valid_from <= ? AND expires_at > ?
         ORDER BY expires_at, id`,
      )
      .all(user, now, now);
    return (rows as GrantRow[]).map(toGrant);
  }

  list(): Grant[] {
    return (this.s.get('SELECT * FROM grants ORDER BY valid_from, id').all() as GrantRow[]).map(toGrant);
  }
}

interface LockRow {
  segment: string;
  reason: string;
  locked_by: string;
  locked_at: number;
}

export class LocksTable {
  constructor(private readonly s: Statements) {}

  /** True when this call locked it; false when it was already locked (the first lock's reason stands). */
  lock(l: SegmentLock): boolean {
    return (
      this.s
        .get('INSERT INTO segment_locks (segment, reason, locked_by, locked_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING')
        .run(l.segment, l.reason, l.lockedBy, l.lockedAt).changes > 0
    );
  }

  unlock(segment: string): boolean {
    return this.s.get('DELETE FROM segment_locks WHERE segment = ?').run(segment).changes > 0;
  }

  list(): SegmentLock[] {
    const rows = this.s.get('SELECT * FROM segment_locks ORDER BY segment').all() as LockRow[];
    return rows.map((r) => ({ segment: r.segment, reason: r.reason, lockedBy: r.locked_by, lockedAt: r.locked_at }));
  }
}

interface ControlRow {
  id: number;
  kind: string;
  ts: number;
  actor: string;
  session_id: string | null;
  segment: string | null;
  grant_id: string | null;
  reason: string;
}

/** Cap per readControl call; a broker polling from its last id gets the rest on the next poll. */
export const CONTROL_PAGE = 1000;

export class ControlTable {
  constructor(private readonly s: Statements) {}

  push(c: ControlInput): ControlRecord {
    const info = this.s
      .get('INSERT INTO control (kind, ts, actor, session_id, segment, grant_id, reason) VALUES (?, ?, ?, ?, ?, ?, ?)')
      .run(c.kind, c.ts, c.actor, c.sessionId ?? null, c.segment ?? null, c.grantId ?? null, c.reason);
    return {
      id: Number(info.lastInsertRowid),
      kind: c.kind,
      ts: c.ts,
      actor: c.actor,
      sessionId: c.sessionId ?? null,
      segment: c.segment ?? null,
      grantId: c.grantId ?? null,
      reason: c.reason,
    };
  }

  read(afterId: number): ControlRecord[] {
    const rows = this.s.get('SELECT * FROM control WHERE id > ? ORDER BY id LIMIT ?').all(afterId, CONTROL_PAGE) as ControlRow[];
    return rows.map((r) => ({
      id: r.id,
      kind: r.kind as ControlKind,
      ts: r.ts,
      actor: r.actor,
      sessionId: r.session_id,
      segment: r.segment,
      grantId: r.grant_id,
      reason: r.reason,
    }));
  }

  lastId(): number {
    return (this.s.get('SELECT coalesce(max(id), 0) AS id FROM control').get() as { id: number }).id;
  }
}
