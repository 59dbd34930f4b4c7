/**
 * Ties client messages to the server's answers so that every executed
 * statement becomes one QueryEvent with its SQL, bound parameters, rows or
 * command tag, error and duration. I/O-free: the session feeds it frontend
 * messages as they go upstream and backend frames as they come back.
 *
 * Wire facts relied on: the server answers messages strictly in order;
 * Parse → ParseComplete, Bind → BindComplete, Close → CloseComplete,
 * Describe → [ParameterDescription] RowDescription|NoData, Execute →
 * DataRow* then CommandComplete|EmptyQueryResponse|PortalSuspended, Sync and
 * simple Query → ... ReadyForQuery. After an error in the extended protocol
 * the server skips everything up to the next Sync, a Query included.
 * Prepared statements and portals are the server's state: they change when
 * the server confirms (ParseComplete, BindComplete, CloseComplete, the tag
 * of a SQL-level PREPARE/DEALLOCATE/DISCARD), never on the client's word.
 */
import { BACKEND, commandTagRows, decodeBackend } from './backend.js';
import type { FrontendMessage } from './frontend.js';
import { paramText } from '../../recordings/queries.js';
import type { QueryEvent, QueryParam } from '../../src/session.js';

interface Prepared {
  readonly sql: string;
  /** Type OIDs as declared in Parse (0 = unspecified). */
  readonly paramTypes: readonly number[];
  /** Type OIDs the server reported in ParameterDescription (answering Describe Statement), once known. */
  described?: readonly number[];
}

interface Portal {
  readonly statement: string;
  readonly sql: string;
  /** Decoded without types; typedParams() adds them from `prepared` when the event is emitted. */
  readonly params: readonly QueryParam[];
  readonly prepared: Prepared | undefined;
}

/**
 * What one client message is waiting for. `injected` entries are ours (a
 * refusal), their answers are not forwarded.
 *
 * Statements and portals are resolved when the SERVER answers, not when the
 * client sends: a Parse the server rejects (name taken) or skips (after an
 * earlier error, up to Sync) must not change what later executions are
 * recorded as, or a client could run one statement while the recording
 * shows another.
 */
type Pending =
  | { kind: 'query'; statements: readonly string[]; index: number; startedAt: number; t0: number; rows: number; bytes: number; failed: boolean }
  | { kind: 'parse'; statement: string; sql: string; paramTypes: readonly number[]; startedAt: number; t0: number; injected: boolean }
  | { kind: 'bind'; portalName: string; statement: string; params: readonly QueryParam[]; startedAt: number; t0: number; injected: boolean }
  | { kind: 'describe'; statement: string | null }
  | { kind: 'close'; target: 'S' | 'P'; name: string; injected?: boolean }
  | { kind: 'execute'; portalName: string; startedAt: number; t0: number; rows: number; bytes: number; injected: boolean; refusedParse?: { statement: string; sql: string } }
  | { kind: 'function_call'; oid: number; params: QueryParam[]; startedAt: number; t0: number }
  | { kind: 'sync' };

export interface TrackerClock {
  wall(): number;
  mono(): number;
}

const defaultClock: TrackerClock = { wall: Date.now, mono: () => performance.now() };

/** Caps what one session keeps in memory for statement bookkeeping. */
const MAX_PREPARED = 10_000;
const MAX_PORTALS = 10_000;
const MAX_PENDING = 100_000;
/**
 * What an error at Sync is recorded as: the implicit transaction's commit.
 * (A simple Query commits before its last CommandComplete, so there the
 * error lands on the last statement by itself.)
 */
export const IMPLICIT_COMMIT = 'COMMIT (implicit transaction)';
/** What an ErrorResponse no message asked for is recorded as (typically a FATAL as the server ends the session). */
export const OUTSIDE_STATEMENT = '(outside any statement)';

/** Decodes what the recording keeps (each value cut to MAX_PARAM_BYTES), never the whole of a huge value. */
export function decodeParams(params: readonly (Buffer | null)[], formats: readonly number[], types: readonly number[]): QueryParam[] {
  return params.map((p, i) => {
    const format = formats.length === 0 ? 0 : formats.length === 1 ? formats[0]! : formats[i] ?? 0;
    const type = types[i] || null; // 0 = unspecified
    if (p === null) return { type, format: 'null', value: null };
    return format === 1 ? { type, format: 'binary', value: paramText(p, 'hex') } : { type, format: 'text', value: paramText(p, 'utf8') };
  });
}

/** Parameter types: as declared in Parse, else as the server described them, else unknown (null). */
function typedParams(params: readonly QueryParam[], st: Prepared | undefined): QueryParam[] {
  if (!st || (st.paramTypes.length === 0 && !st.described)) return params as QueryParam[];
  return params.map((p, i) => {
    const type = st.paramTypes[i] || st.described?.[i] || null;
    return type === p.type ? p : { ...p, type };
  });
}

/**
 * The statement name after `PREPARE` / `DEALLOCATE [PREPARE]` at the start
 * of `sql`, as the server folds it (unquoted: lower case; quoted: as is), or
 * null when it is not a plain identifier followed by a break. Callers treat
 * null as "some name changed" and forget every statement: never guess.
 */
function sqlStatementName(sql: string, keyword: RegExp): string | null {
  const m = keyword.exec(sql);
  if (!m) return null;
  const id = /^("(?:[^"]|"")+"|[A-Za-z_\u0080-\uffff][A-Za-z0-9_$\u0080-\uffff]*)(?=\s|\(|$)/.exec(sql.slice(m[0].length));
  if (!id) return null;
  return id[1]!.startsWith('"') ? id[1]!.slice(1, -1).replace(/""/g, '"') : id[1]!.toLowerCase();
}
const PREPARE = /^\s*prepare\s+/i;
const DEALLOCATE = /^\s*deallocate\s+(?:prepare\s+)?/i;

/** Sets `key` in a capped map, evicting the oldest entry when full. */
function capSet<V>(map: Map<string, V>, key: string, value: V, cap: number): void {
  map.delete(key);
  if (map.size >= cap) map.delete(map.keys().next().value!);
  map.set(key, value);
}

/** Statement and portal name wicket uses for a refused Parse; closed before each use. */
export const REFUSAL_NAME = '__wicket_refused__';

export class StatementTracker {
  private readonly prepared = new Map<string, Prepared>();
  private readonly portals = new Map<string, Portal>();
  private readonly pending: Pending[] = [];
  private head = 0;
  /**
   * The server reported an extended-protocol error before the client's Sync
   * was sent: it now discards every message (a Query too) up to that Sync,
   * answering none of them, so none of them may wait for an answer here.
   */
  private skipping = false;

  constructor(
    private readonly emit: (event: QueryEvent) => void,
    private readonly clock: TrackerClock = defaultClock,
  ) {}

  get inFlight(): number {
    return this.pending.length - this.head;
  }

  private push(p: Pending): void {
    if (this.skipping) {
      if (p.kind !== 'sync') return;
      this.skipping = false;
    }
    if (this.inFlight >= MAX_PENDING) throw new Error(`more than ${MAX_PENDING} messages awaiting a server answer`);
    this.pending.push(p);
  }

  /** A simple Query with its statements (split for the record; [sql] when it could not be split). */
  query(statements: readonly string[]): void {
    this.push({ kind: 'query', statements, index: 0, startedAt: this.clock.wall(), t0: this.clock.mono(), rows: 0, bytes: 0, failed: false });
  }

  /** A frontend message of the extended protocol (or a copy/function message). */
  frontend(msg: FrontendMessage, injected = false): void {
    const startedAt = this.clock.wall();
    const t0 = this.clock.mono();
    switch (msg.type) {
      case 'parse':
        return this.push({ kind: 'parse', statement: msg.statement, sql: msg.sql, paramTypes: msg.paramTypes, startedAt, t0, injected });
      case 'bind':
        return this.push({ kind: 'bind', portalName: msg.portal, statement: msg.statement, params: decodeParams(msg.params, msg.paramFormats, []), startedAt, t0, injected });
      case 'execute':
        return this.push({ kind: 'execute', portalName: msg.portal, startedAt, t0, rows: 0, bytes: 0, injected });
      case 'describe':
        return this.push({ kind: 'describe', statement: msg.kind === 'S' ? msg.name : null });
      case 'close':
        return this.push({ kind: 'close', target: msg.kind, name: msg.name });
      case 'sync':
        return this.push({ kind: 'sync' });
      case 'function_call':
        return this.push({ kind: 'function_call', oid: msg.oid, params: decodeParams(msg.args, msg.argFormats, []), startedAt, t0 });
      case 'copy_data': {
        const cur = this.current();
        if (cur && (cur.kind === 'query' || cur.kind === 'execute')) cur.bytes += msg.bytes;
        return;
      }
      default:
        return;
    }
  }

  /**
   * A refused Parse, replaced upstream by Parse+Bind+Execute of a raising
   * statement: their ParseComplete/BindComplete are swallowed and the error
   * is recorded against the client's Parse.
   */
  refusedParse(statement: string, sql: string): void {
    const startedAt = this.clock.wall();
    const t0 = this.clock.mono();
    const name = REFUSAL_NAME;
    // Mirrors relay.ts: Close S+P, Parse, Bind, Execute under wicket's own name, so the client's statements are untouched.
    this.push({ kind: 'close', target: 'S', name, injected: true });
    this.push({ kind: 'close', target: 'P', name, injected: true });
    this.push({ kind: 'parse', statement: name, sql, paramTypes: [], startedAt, t0, injected: true });
    this.push({ kind: 'bind', portalName: name, statement: name, params: [], startedAt, t0, injected: true });
    this.push({ kind: 'execute', portalName: name, startedAt, t0, rows: 0, bytes: 0, injected: true, refusedParse: { statement, sql } });
  }

  private current(): Pending | undefined {
    return this.pending[this.head];
  }

  private pop(): void {
    this.head++;
    if (this.head > 1024 && this.head * 2 > this.pending.length) {
      this.pending.splice(0, this.head);
      this.head = 0;
    }
  }

  private since(p: { t0: number }): number {
    return Math.round((this.clock.mono() - p.t0) * 1000) / 1000;
  }

  /**
   * One backend frame, `buf[start, end)` including its 5-byte header; returns
   * false when it answers an injected message and must not reach the client.
   * DataRow and CopyData are the hot path: no decoding, no allocation.
   */
  backend(type: number, buf: Buffer, start: number, end: number): boolean {
    const cur = this.current();
    if (type === BACKEND.DataRow) {
      if (cur && (cur.kind === 'query' || cur.kind === 'execute')) cur.rows++;
      return true;
    }
    if (type === BACKEND.CopyData) {
      if (cur && (cur.kind === 'query' || cur.kind === 'execute')) cur.bytes += end - start - 5;
      return true;
    }
    if (!cur) {
      // Nothing asked for it: the server is ending the connection (pg_terminate_backend, shutdown, idle timeouts).
      if (type === BACKEND.ErrorResponse) this.asyncError(buf.subarray(start + 5, end));
      return true;
    }
    const body = buf.subarray(start + 5, end);
    switch (type) {
      case BACKEND.ParseComplete:
        if (cur.kind !== 'parse') return true;
        this.pop();
        // The server now holds this statement under this name (ours, for a refusal, is never the client's).
        if (!cur.injected) capSet(this.prepared, cur.statement, { sql: cur.sql, paramTypes: cur.paramTypes }, MAX_PREPARED);
        return !cur.injected;
      case BACKEND.BindComplete: {
        if (cur.kind !== 'bind') return true;
        this.pop();
        if (cur.injected) return false;
        const st = this.prepared.get(cur.statement);
        capSet(this.portals, cur.portalName, { statement: cur.statement, sql: st?.sql ?? '', params: cur.params, prepared: st }, MAX_PORTALS);
        return true;
      }
      case BACKEND.CloseComplete:
        if (cur.kind === 'close') {
          this.pop();
          if (cur.injected) return false;
          (cur.target === 'S' ? this.prepared : this.portals).delete(cur.name);
        }
        return true;
      case BACKEND.NoData:
        if (cur.kind === 'describe') this.pop();
        return true;
      case BACKEND.RowDescription:
        if (cur.kind === 'describe') this.pop();
        return true;
      case BACKEND.ParameterDescription: {
        // First half of the answer to Describe Statement: the server's idea of every parameter's type.
        const st = cur.kind === 'describe' && cur.statement !== null ? this.prepared.get(cur.statement) : undefined;
        const msg = st ? decodeBackend(type, body) : null;
        if (st && msg?.type === 'parameter_description') st.described = msg.types;
        return true;
      }
      case BACKEND.CommandComplete:
      case BACKEND.EmptyQueryResponse:
      case BACKEND.PortalSuspended:
        this.complete(cur, type, body);
        return true;
      case BACKEND.ErrorResponse:
        this.error(cur, body);
        return true;
      case BACKEND.FunctionCallResponse:
        if (cur.kind === 'function_call') {
          this.emit({ type: 'query', step: 'function_call', startedAt: cur.startedAt, durationMs: this.since(cur), sql: `function oid ${cur.oid}`, params: cur.params, rows: null, tag: null, error: null });
        }
        return true;
      case BACKEND.ReadyForQuery:
        this.ready(body[0] ?? 0);
        return true;
      default:
        return true;
    }
  }

  private complete(cur: Pending, type: number, body: Buffer): void {
    const tag = type === BACKEND.CommandComplete ? (decodeBackend(type, body) as { tag: string }).tag : type === BACKEND.PortalSuspended ? 'SUSPENDED' : null;
    if (cur.kind === 'query') {
      if (type !== BACKEND.EmptyQueryResponse) this.recordQueryStatement(cur, tag, null);
      return;
    }
    if (cur.kind === 'execute') {
      this.pop();
      if (cur.injected || type === BACKEND.EmptyQueryResponse) return;
      const portal = this.portals.get(cur.portalName);
      this.emit({
        type: 'query', step: 'execute', startedAt: cur.startedAt, durationMs: this.since(cur), sql: portal?.sql ?? '',
        statement: portal?.statement, portal: cur.portalName, params: portal ? typedParams(portal.params, portal.prepared) : [],
        rows: tag && tag !== 'SUSPENDED' ? commandTagRows(tag) ?? cur.rows : cur.rows, tag, bytes: cur.bytes || undefined, error: null,
      });
    }
  }

  private recordQueryStatement(cur: Extract<Pending, { kind: 'query' }>, tag: string | null, error: { code: string; message: string } | null): void {
    const sql = cur.statements[cur.index] ?? cur.statements[cur.statements.length - 1] ?? '';
    this.emit({
      type: 'query', step: 'query', startedAt: cur.startedAt, durationMs: this.since(cur), sql,
      rows: tag ? commandTagRows(tag) ?? cur.rows : error ? null : cur.rows, tag, bytes: cur.bytes || undefined, error,
    });
    if (tag) this.sqlLevel(tag, sql);
    cur.index++;
    cur.rows = 0;
    cur.bytes = 0;
    cur.startedAt = this.clock.wall();
    cur.t0 = this.clock.mono();
  }

  /**
   * SQL-level PREPARE / DEALLOCATE / DISCARD share the namespace of
   * protocol-level statements: a Bind may execute what PREPARE defined.
   */
  private sqlLevel(tag: string, sql: string): void {
    if (tag === 'DISCARD ALL' || tag === 'DEALLOCATE ALL') {
      this.prepared.clear();
      if (tag === 'DISCARD ALL') this.portals.clear();
      return;
    }
    if (tag !== 'PREPARE' && tag !== 'DEALLOCATE') return;
    const name = sqlStatementName(sql, tag === 'PREPARE' ? PREPARE : DEALLOCATE);
    if (name === null) this.prepared.clear();
    else if (tag === 'DEALLOCATE') this.prepared.delete(name);
    else capSet(this.prepared, name, { sql, paramTypes: [] }, MAX_PREPARED);
  }

  private error(cur: Pending, body: Buffer): void {
    const msg = decodeBackend(BACKEND.ErrorResponse, body);
    const error = msg.type === 'error_response' ? { code: msg.fields.code, message: msg.fields.message } : { code: 'XX000', message: 'error' };
    const severity = msg.type === 'error_response' ? msg.fields.severity : 'ERROR';
    switch (cur.kind) {
      case 'query':
        cur.failed = true;
        this.recordQueryStatement(cur, null, error);
        return;
      case 'function_call':
        this.emit({ type: 'query', step: 'function_call', startedAt: cur.startedAt, durationMs: this.since(cur), sql: `function oid ${cur.oid}`, params: cur.params, rows: null, tag: null, error });
        return;
      case 'sync':
        // Sync commits the implicit transaction; that can fail after every Execute succeeded.
        if (severity === 'ERROR') this.emit({ type: 'query', step: 'other', startedAt: this.clock.wall(), durationMs: 0, sql: IMPLICIT_COMMIT, rows: null, tag: null, error });
        return;
      case 'parse':
        // A failed Parse of the unnamed statement still dropped the previous one; a named one stays as it was.
        if (cur.statement === '') this.prepared.delete('');
        if (cur.injected) break;
        this.emit({ type: 'query', step: 'parse', startedAt: cur.startedAt, durationMs: this.since(cur), sql: cur.sql, statement: cur.statement, error, rows: null, tag: null });
        break;
      case 'bind': {
        if (cur.injected) break;
        const st = this.prepared.get(cur.statement);
        this.emit({ type: 'query', step: 'bind', startedAt: cur.startedAt, durationMs: this.since(cur), sql: st?.sql ?? '', statement: cur.statement, params: typedParams(cur.params, st), error, rows: null, tag: null });
        break;
      }
      case 'execute': {
        if (cur.refusedParse) {
          this.emit({ type: 'query', step: 'parse', startedAt: cur.startedAt, durationMs: this.since(cur), sql: cur.refusedParse.sql, statement: cur.refusedParse.statement, error, rows: null, tag: null });
          break;
        }
        const portal = this.portals.get(cur.portalName);
        this.emit({
          type: 'query', step: 'execute', startedAt: cur.startedAt, durationMs: this.since(cur), sql: portal?.sql ?? '', statement: portal?.statement,
          portal: cur.portalName, params: portal ? typedParams(portal.params, portal.prepared) : [], rows: null, tag: null, error,
        });
        break;
      }
      default:
        break;
    }
    // Extended protocol: the server now skips everything up to the next Sync (also what the client has yet to send).
    while (this.current() && this.current()!.kind !== 'sync') this.pop();
    if (!this.current()) this.skipping = true;
  }

  private asyncError(body: Buffer): void {
    const msg = decodeBackend(BACKEND.ErrorResponse, body);
    if (msg.type !== 'error_response') return;
    this.emit({ type: 'query', step: 'other', startedAt: this.clock.wall(), durationMs: 0, sql: OUTSIDE_STATEMENT, rows: null, tag: null, error: { code: msg.fields.code, message: msg.fields.message } });
  }

  /** ReadyForQuery with the transaction status byte: 'I' idle, 'T' in a block, 'E' in a failed block. */
  private ready(status: number): void {
    // Protocol-level portals live until the end of their transaction.
    if (status === 0x49) this.portals.clear();
    for (let p = this.current(); p; p = this.current()) {
      this.pop();
      if (p.kind === 'query') {
        // A simple Query drops the unnamed statement (exec_simple_query); its portal went with its transaction.
        this.prepared.delete('');
        this.portals.delete('');
        // Statements after a failed one in the same Query string never ran; say so rather than drop them.
        while (p.index < p.statements.length && p.failed) {
          this.recordQueryStatement(p, null, { code: '', message: 'not executed: an earlier statement in the same query failed' });
        }
        return;
      }
      if (p.kind === 'sync' || p.kind === 'function_call') return;
    }
  }
}
