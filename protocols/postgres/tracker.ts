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
 * the server skips everything up to the next Sync.
 */
import { BACKEND, commandTagRows, decodeBackend } from './backend.js';
import type { FrontendMessage } from './frontend.js';
import type { QueryEvent, QueryParam } from '../../src/session.js';

interface Prepared {
  readonly sql: string;
  readonly paramTypes: number[];
}

interface Portal {
  readonly statement: string;
  readonly sql: string;
  readonly params: QueryParam[];
}

/** What one client message is waiting for. `injected` entries are ours (a refusal), their answers are not forwarded. */
type Pending =
  | { kind: 'query'; statements: readonly string[]; index: number; startedAt: number; t0: number; rows: number; bytes: number; failed: boolean }
  | { kind: 'parse'; statement: string; sql: string; startedAt: number; t0: number; injected: boolean }
  | { kind: 'bind'; portal: Portal; startedAt: number; t0: number; injected: boolean }
  | { kind: 'describe' }
  | { kind: 'close' }
  | { kind: 'execute'; portalName: string; portal: Portal | null; startedAt: number; t0: number; rows: number; bytes: number; injected: boolean; refusedParse?: { statement: string; sql: string } }
  | { kind: 'function_call'; oid: number; params: QueryParam[]; startedAt: number; t0: number }
  | { kind: 'sync' };

export interface TrackerClock {
  wall(): number;
  mono(): number;
}

const defaultClock: TrackerClock = { wall: Date.now, mono: () => performance.now() };

/** Caps what one session keeps in memory for statement bookkeeping. */
const MAX_PREPARED = 10_000;
const MAX_PENDING = 100_000;

export function decodeParams(params: readonly (Buffer | null)[], formats: readonly number[], types: readonly number[]): QueryParam[] {
  return params.map((p, i) => {
    const format = formats.length === 0 ? 0 : formats.length === 1 ? formats[0]! : formats[i] ?? 0;
    const type = types[i] ?? null;
    if (p === null) return { type, format: 'null', value: null };
    return format === 1 ? { type, format: 'binary', value: p.toString('hex') } : { type, format: 'text', value: p.toString('utf8') };
  });
}

export class StatementTracker {
  private readonly prepared = new Map<string, Prepared>();
  private readonly portals = new Map<string, Portal>();
  private readonly pending: Pending[] = [];
  private head = 0;

  constructor(
    private readonly emit: (event: QueryEvent) => void,
    private readonly clock: TrackerClock = defaultClock,
  ) {}

  get inFlight(): number {
    return this.pending.length - this.head;
  }

  private push(p: Pending): void {
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
        if (!injected) {
          if (this.prepared.size >= MAX_PREPARED && !this.prepared.has(msg.statement)) this.prepared.delete(this.prepared.keys().next().value!);
          this.prepared.set(msg.statement, { sql: msg.sql, paramTypes: msg.paramTypes });
        }
        return this.push({ kind: 'parse', statement: msg.statement, sql: msg.sql, startedAt, t0, injected });
      case 'bind': {
        const st = this.prepared.get(msg.statement);
        const portal: Portal = { statement: msg.statement, sql: st?.sql ?? '', params: decodeParams(msg.params, msg.paramFormats, st?.paramTypes ?? []) };
        if (!injected) this.portals.set(msg.portal, portal);
        return this.push({ kind: 'bind', portal, startedAt, t0, injected });
      }
      case 'execute':
        return this.push({ kind: 'execute', portalName: msg.portal, portal: this.portals.get(msg.portal) ?? null, startedAt, t0, rows: 0, bytes: 0, injected });
      case 'describe':
        return this.push({ kind: 'describe' });
      case 'close':
        if (msg.kind === 'S') this.prepared.delete(msg.name);
        else this.portals.delete(msg.name);
        return this.push({ kind: 'close' });
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
    const portal: Portal = { statement: '', sql, params: [] };
    this.push({ kind: 'parse', statement: '', sql, startedAt, t0, injected: true });
    this.push({ kind: 'bind', portal, startedAt, t0, injected: true });
    this.push({ kind: 'execute', portalName: '', portal, startedAt, t0, rows: 0, bytes: 0, injected: true, refusedParse: { statement, sql } });
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
    if (!cur) return true;
    const body = buf.subarray(start + 5, end);
    switch (type) {
      case BACKEND.ParseComplete:
      case BACKEND.BindComplete:
        if (cur.kind === 'parse' || cur.kind === 'bind') {
          this.pop();
          return !cur.injected;
        }
        return true;
      case BACKEND.CloseComplete:
      case BACKEND.NoData:
        if (cur.kind === 'close' || cur.kind === 'describe') this.pop();
        return true;
      case BACKEND.RowDescription:
        if (cur.kind === 'describe') this.pop();
        return true;
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
        this.ready();
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
      this.emit({
        type: 'query', step: 'execute', startedAt: cur.startedAt, durationMs: this.since(cur), sql: cur.portal?.sql ?? '',
        statement: cur.portal?.statement, portal: cur.portalName, params: cur.portal?.params ?? [],
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
    cur.index++;
    cur.rows = 0;
    cur.bytes = 0;
    cur.startedAt = this.clock.wall();
    cur.t0 = this.clock.mono();
  }

  private error(cur: Pending, body: Buffer): void {
    const msg = decodeBackend(BACKEND.ErrorResponse, body);
    const error = msg.type === 'error_response' ? { code: msg.fields.code, message: msg.fields.message } : { code: 'XX000', message: 'error' };
    switch (cur.kind) {
      case 'query':
        cur.failed = true;
        this.recordQueryStatement(cur, null, error);
        return;
      case 'function_call':
        this.emit({ type: 'query', step: 'function_call', startedAt: cur.startedAt, durationMs: this.since(cur), sql: `function oid ${cur.oid}`, params: cur.params, rows: null, tag: null, error });
        return;
      case 'sync':
        return;
      case 'parse':
        if (cur.injected) break;
        this.emit({ type: 'query', step: 'parse', startedAt: cur.startedAt, durationMs: this.since(cur), sql: cur.sql, statement: cur.statement, error, rows: null, tag: null });
        break;
      case 'bind':
        if (!cur.injected) this.emit({ type: 'query', step: 'bind', startedAt: cur.startedAt, durationMs: this.since(cur), sql: cur.portal.sql, statement: cur.portal.statement, params: cur.portal.params, error, rows: null, tag: null });
        break;
      case 'execute':
        if (cur.refusedParse) {
          this.emit({ type: 'query', step: 'parse', startedAt: cur.startedAt, durationMs: this.since(cur), sql: cur.refusedParse.sql, statement: cur.refusedParse.statement, error, rows: null, tag: null });
          break;
        }
        this.emit({
          type: 'query', step: 'execute', startedAt: cur.startedAt, durationMs: this.since(cur), sql: cur.portal?.sql ?? '', statement: cur.portal?.statement,
          portal: cur.portalName, params: cur.portal?.params ?? [], rows: null, tag: null, error,
        });
        break;
      default:
        break;
    }
    // Extended protocol: the server now skips everything up to the next Sync.
    while (this.current() && this.current()!.kind !== 'sync') this.pop();
  }

  private ready(): void {
    for (let p = this.current(); p; p = this.current()) {
      this.pop();
      if (p.kind === 'query') {
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
