/**
 * The Store contract. The SQLite implementation (store/sqlite) is the
 * default; a PostgreSQL implementation shares this interface so several
 * brokers can use one store. Everything is async and speaks plain records:
 * no SQLite-only semantics (rowids, PRAGMAs, sync calls) leak through here.
 * Times are epoch milliseconds.
 */
import type { Protocol } from '../config/schema.js';
import type { Grant, SegmentLock } from '../policy/types.js';

export interface ScramSecret {
  /** base64 */
  readonly salt: string;
  readonly iterations: number;
  /** base64 of H(ClientKey) */
  readonly storedKey: string;
  /** base64 of HMAC(SaltedPassword, "Server Key") */
  readonly serverKey: string;
}

/** What we keep of a password: never the password, never a reversible form. */
export interface PasswordCredential {
  /** `scrypt$N$r$p$saltB64$hashB64` */
  readonly hash: string;
  /** For SCRAM-SHA-256 (Postgres) without storing a password equivalent. */
  readonly scram: ScramSecret;
}

export interface UserRecord {
  readonly name: string;
  readonly password: PasswordCredential | null;
  /** Set when the password was issued by `wicket init` and must be changed. */
  readonly mustChangePassword: boolean;
  readonly createdAt: number;
  readonly updatedAt: number;
}

export interface TokenRecord {
  /** Public half of the token, `wkt_<id>_<secret>`. */
  readonly id: string;
  readonly user: string;
  readonly name: string | null;
  /** sha256 hex of the whole token string. */
  readonly hash: string;
  /** SCRAM secret derived from the whole token string with the user's SCRAM salt. */
  readonly scram: ScramSecret | null;
  readonly createdAt: number;
  readonly expiresAt: number | null;
  readonly revokedAt: number | null;
  readonly lastUsedAt: number | null;
}

export type SessionStatus = 'live' | 'ended' | 'terminated' | 'failed';

export interface SessionRecord {
  readonly id: string;
  readonly user: string;
  readonly target: string;
  readonly segment: string;
  readonly protocol: Protocol;
  readonly clientAddr: string;
  readonly brokerId: string;
  readonly rule: string | null;
  readonly access: 'read' | 'write';
  readonly grantId: string | null;
  readonly startedAt: number;
  readonly endedAt: number | null;
  readonly status: SessionStatus;
  readonly endReason: string | null;
  /** Path relative to data_dir, e.g. recordings/2026/11/27/<id>.cast; null for DB sessions. */
  readonly recordingPath: string | null;
  readonly recordingSha256: string | null;
  readonly recordingBytes: number | null;
  /** Free-form protocol details (database name, client program, terminal size ...). */
  readonly meta: Readonly<Record<string, unknown>>;
}

export interface SessionEnd {
  readonly endedAt: number;
  readonly status: Exclude<SessionStatus, 'live'>;
  readonly endReason: string | null;
  readonly recordingSha256: string | null;
  readonly recordingBytes: number | null;
}

export interface SessionFilter {
  readonly user?: string;
  readonly target?: string;
  readonly segment?: string;
  readonly protocol?: Protocol;
  readonly live?: boolean;
  readonly since?: number;
  /** Full-text match over the session's recorded queries and commands. */
  readonly q?: string;
  readonly limit?: number;
  /** Keyset pagination: sessions that started before this (startedAt, id). */
  readonly before?: { readonly startedAt: number; readonly id: string };
}

/** An audit event before the chain assigns its place. `data` must be JSON-serialisable. */
export interface AuditInput {
  readonly ts: number;
  readonly kind: string;
  readonly actor: string;
  readonly sessionId?: string | null;
  readonly target?: string | null;
  readonly data: Readonly<Record<string, unknown>>;
}

/** A chained audit row: hash = sha256(prevHash || canonicalJSON({seq, ts, kind, actor, sessionId, target, data})). */
export interface AuditEvent extends AuditInput {
  readonly seq: number;
  readonly sessionId: string | null;
  readonly target: string | null;
  readonly prevHash: string;
  readonly hash: string;
}

export interface AuditHead {
  readonly count: number;
  readonly lastSeq: number;
  readonly lastHash: string;
}

export type RequestState = 'pending' | 'approved' | 'denied' | 'cancelled' | 'expired' | 'revoked';

export interface RequestDecision {
  readonly by: string;
  readonly at: number;
  readonly verdict: 'approve' | 'deny';
  readonly comment: string | null;
}

export interface AccessRequestRecord {
  readonly id: number;
  readonly user: string;
  /** null when the whole segment is requested */
  readonly target: string | null;
  readonly segment: string;
  readonly durationMs: number;
  readonly reason: string;
  readonly state: RequestState;
  readonly approvalsRequired: number;
  readonly decisions: readonly RequestDecision[];
  readonly createdAt: number;
  /** When a pending request lapses. */
  readonly pendingUntil: number;
  readonly updatedAt: number;
  readonly grantId: string | null;
}

/** Cross-broker signals: CLI/API writes, every broker polls (works the same on a shared PostgreSQL store). */
export type ControlKind = 'kill' | 'lock' | 'unlock' | 'grant' | 'revoke';

export interface ControlInput {
  readonly kind: ControlKind;
  readonly ts: number;
  readonly actor: string;
  readonly sessionId?: string | null;
  readonly segment?: string | null;
  readonly grantId?: string | null;
  readonly reason: string;
}

export interface ControlRecord extends ControlInput {
  readonly id: number;
}

export interface Store {
  /** Creates or upgrades the schema (versioned migrations). */
  migrate(): Promise<void>;
  close(): Promise<void>;

  getUser(name: string): Promise<UserRecord | null>;
  upsertUser(name: string, password: PasswordCredential | null, mustChangePassword: boolean, now: number): Promise<void>;
  listUsers(): Promise<UserRecord[]>;

  createToken(token: TokenRecord): Promise<void>;
  getToken(id: string): Promise<TokenRecord | null>;
  listTokens(user: string): Promise<TokenRecord[]>;
  revokeToken(id: string, at: number): Promise<boolean>;
  touchToken(id: string, at: number): Promise<void>;

  createSession(session: SessionRecord): Promise<void>;
  endSession(id: string, end: SessionEnd): Promise<void>;
  getSession(id: string): Promise<SessionRecord | null>;
  listSessions(filter: SessionFilter): Promise<SessionRecord[]>;

  /**
   * Appends events to the hash chain in order, atomically: either all are
   * chained or none. Returns them with seq, prevHash and hash.
   */
  appendAudit(events: readonly AuditInput[]): Promise<AuditEvent[]>;
  /** Events with seq > afterSeq, in order, at most `limit`. */
  readAudit(afterSeq: number, limit: number): Promise<AuditEvent[]>;
  /**
   * Events of one session in order; with `page`, only those with seq >
   * afterSeq, at most `limit` (a session can hold millions: read it in pages).
   */
  sessionEvents(sessionId: string, page?: { readonly afterSeq: number; readonly limit: number }): Promise<AuditEvent[]>;
  auditHead(): Promise<AuditHead>;

  createRequest(req: Omit<AccessRequestRecord, 'id'>): Promise<AccessRequestRecord>;
  getRequest(id: number): Promise<AccessRequestRecord | null>;
  listRequests(filter: { readonly user?: string; readonly state?: RequestState }): Promise<AccessRequestRecord[]>;
  /**
   * Compare-and-set on state (and, when given, on the number of decisions recorded so far):
   * returns null when the request is no longer as expected.
   */
  updateRequest(id: number, expected: RequestState, next: Partial<Omit<AccessRequestRecord, 'id'>>, expectedDecisions?: number): Promise<AccessRequestRecord | null>;

  createGrant(grant: Grant): Promise<void>;
  revokeGrant(id: string, at: number): Promise<boolean>;
  /** Grants of a user that are not revoked and not expired at `now`. */
  activeGrants(user: string, now: number): Promise<Grant[]>;
  /** All grants (for reports). */
  listGrants(): Promise<Grant[]>;

  lockSegment(lock: SegmentLock): Promise<boolean>;
  unlockSegment(segment: string): Promise<boolean>;
  listLocks(): Promise<SegmentLock[]>;

  pushControl(input: ControlInput): Promise<ControlRecord>;
  /** Signals with id > afterId, in order. */
  readControl(afterId: number): Promise<ControlRecord[]>;
  lastControlId(): Promise<number>;
}
