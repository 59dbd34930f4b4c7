/**
 * SqliteStore: the embedded default Store (better-sqlite3, one file in
 * data_dir). better-sqlite3 is synchronous; the async methods keep the Store
 * contract identical to the PostgreSQL implementation. Every error leaves as
 * a WicketError (WICKET_ERR_STORE, or WICKET_ERR_CONFLICT for a duplicate key).
 */
import { WicketError } from '../../errors.js';
import type { Grant, SegmentLock } from '../../policy/types.js';
import type {
  AccessRequestRecord,
  AuditEvent,
  AuditHead,
  AuditInput,
  ControlInput,
  ControlRecord,
  PasswordCredential,
  RequestState,
  SessionEnd,
  SessionFilter,
  SessionRecord,
  Store,
  TokenRecord,
  UserRecord,
} from '../types.js';
import { ControlTable, GrantsTable, LocksTable, RequestsTable } from './access.js';
import { AuditTable } from './audit.js';
import { Statements, migrate, openDb, storeError, type Db } from './db.js';
import { SessionsTable } from './sessions.js';
import { TokensTable, UsersTable } from './users.js';

export class SqliteStore implements Store {
  readonly path: string;
  /**
   * AuditWriter may keep this many appendAudit calls in flight: they run on
   * one worker thread in call order, and one that fails fails those queued
   * behind it (audit-worker.ts). With more than one in flight the main thread
   * serialises the next batches while the worker commits the previous one.
   */
  readonly appendPipelineDepth = 3;
  private readonly db: Db;
  private readonly users: UsersTable;
  private readonly tokens: TokensTable;
  private readonly sessions: SessionsTable;
  private readonly audit: AuditTable;
  private readonly requests: RequestsTable;
  private readonly grants: GrantsTable;
  private readonly locks: LocksTable;
  private readonly control: ControlTable;
  private closed = false;

  /** Opens (creating if needed) the database file. Call migrate() before anything else. */
  constructor(path: string) {
    this.path = path;
    this.db = openDb(path);
    const s = new Statements(this.db);
    this.users = new UsersTable(s);
    this.tokens = new TokensTable(s);
    this.sessions = new SessionsTable(s);
    this.audit = new AuditTable(path, s);
    this.requests = new RequestsTable(this.db, s);
    this.grants = new GrantsTable(s);
    this.locks = new LocksTable(s);
    this.control = new ControlTable(s);
  }

  /** Runs `fn` with every failure mapped to a WicketError (async: a throw becomes a rejection). */
  private async do<T>(fn: () => T): Promise<T> {
    if (this.closed) throw new WicketError('WICKET_ERR_STORE', 'store: closed');
    try {
      return fn();
    } catch (err) {
      throw storeError(err);
    }
  }

  migrate(): Promise<void> {
    return this.do(() => migrate(this.db));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.audit.close();
    this.db.close();
  }

  getUser(name: string): Promise<UserRecord | null> {
    return this.do(() => this.users.get(name));
  }
  upsertUser(name: string, password: PasswordCredential | null, mustChangePassword: boolean, now: number): Promise<void> {
    return this.do(() => this.users.upsert(name, password, mustChangePassword, now));
  }
  listUsers(): Promise<UserRecord[]> {
    return this.do(() => this.users.list());
  }

  createToken(token: TokenRecord): Promise<void> {
    return this.do(() => this.tokens.create(token));
  }
  getToken(id: string): Promise<TokenRecord | null> {
    return this.do(() => this.tokens.get(id));
  }
  listTokens(user: string): Promise<TokenRecord[]> {
    return this.do(() => this.tokens.list(user));
  }
  revokeToken(id: string, at: number): Promise<boolean> {
    return this.do(() => this.tokens.revoke(id, at));
  }
  touchToken(id: string, at: number): Promise<void> {
    return this.do(() => this.tokens.touch(id, at));
  }

  createSession(session: SessionRecord): Promise<void> {
    return this.do(() => this.sessions.create(session));
  }
  endSession(id: string, end: SessionEnd): Promise<void> {
    return this.do(() => this.sessions.end(id, end));
  }
  getSession(id: string): Promise<SessionRecord | null> {
    return this.do(() => this.sessions.get(id));
  }
  async listSessions(filter: SessionFilter): Promise<SessionRecord[]> {
    // A search must see every committed event: bring the (lazily built) index up to date first.
    if (filter.q !== undefined && filter.q.trim() !== '') {
      if (this.closed) throw new WicketError('WICKET_ERR_STORE', 'store: closed');
      await this.audit.catchUpSearch().catch((err: unknown) => Promise.reject(storeError(err)));
    }
    return this.do(() => this.sessions.list(filter));
  }

  async appendAudit(events: readonly AuditInput[]): Promise<AuditEvent[]> {
    if (this.closed) throw new WicketError('WICKET_ERR_STORE', 'store: closed');
    let out: AuditEvent[];
    try {
      out = await this.audit.append(events);
    } catch (err) {
      throw storeError(err);
    }
    return out;
  }
  readAudit(afterSeq: number, limit: number): Promise<AuditEvent[]> {
    return this.do(() => this.audit.read(afterSeq, limit));
  }
  sessionEvents(sessionId: string, page?: { readonly afterSeq: number; readonly limit: number }): Promise<AuditEvent[]> {
    return this.do(() => this.audit.forSession(sessionId, page));
  }
  auditHead(): Promise<AuditHead> {
    return this.do(() => this.audit.head());
  }

  createRequest(req: Omit<AccessRequestRecord, 'id'>): Promise<AccessRequestRecord> {
    return this.do(() => this.requests.create(req));
  }
  getRequest(id: number): Promise<AccessRequestRecord | null> {
    return this.do(() => this.requests.get(id));
  }
  listRequests(filter: { readonly user?: string; readonly state?: RequestState }): Promise<AccessRequestRecord[]> {
    return this.do(() => this.requests.list(filter));
  }
  updateRequest(
    id: number,
    expected: RequestState,
    next: Partial<Omit<AccessRequestRecord, 'id'>>,
    expectedDecisions?: number,
  ): Promise<AccessRequestRecord | null> {
    return this.do(() => this.requests.update(id, expected, next, expectedDecisions));
  }

  createGrant(grant: Grant): Promise<void> {
    return this.do(() => this.grants.create(grant));
  }
  revokeGrant(id: string, at: number): Promise<boolean> {
    return this.do(() => this.grants.revoke(id, at));
  }
  activeGrants(user: string, now: number): Promise<Grant[]> {
    return this.do(() => this.grants.active(user, now));
  }
  listGrants(): Promise<Grant[]> {
    return this.do(() => this.grants.list());
  }

  lockSegment(lock: SegmentLock): Promise<boolean> {
    return this.do(() => this.locks.lock(lock));
  }
  unlockSegment(segment: string): Promise<boolean> {
    return this.do(() => this.locks.unlock(segment));
  }
  listLocks(): Promise<SegmentLock[]> {
    return this.do(() => this.locks.list());
  }

  pushControl(input: ControlInput): Promise<ControlRecord> {
    return this.do(() => this.control.push(input));
  }
  readControl(afterId: number): Promise<ControlRecord[]> {
    return this.do(() => this.control.read(afterId));
  }
  lastControlId(): Promise<number> {
    return this.do(() => this.control.lastId());
  }
}
