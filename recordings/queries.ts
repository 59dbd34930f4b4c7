/**
 * Session events (src/session.ts) -> audit inputs, and the human query list
 * shown by `wicket replay ID` for database sessions.
 *
 * Audit rows are hash-chained and kept forever, so everything here is
 * bounded: SQL and typed commands over 1 MiB are cut (with a marker and the
 * original size), bound parameters are capped in count and length. `data`
 * never holds `undefined` or non-finite numbers, so it serialises the same
 * way every time (the chain hashes its canonical JSON).
 */
import { StringDecoder } from 'node:string_decoder';
import type { CommandEvent, FileEvent, ForwardEvent, QueryEvent, RefusedEvent, SessionEvent } from '../src/session.js';

/** Structurally compatible with the store's AuditInput. */
export interface RecordingAuditInput {
  readonly ts: number;
  readonly kind: string;
  readonly actor: string;
  readonly sessionId: string;
  readonly target: string;
  readonly data: Record<string, unknown>;
}

export interface AuditContext {
  readonly actor: string;
  readonly sessionId: string;
  readonly target: string;
}

export const MAX_SQL_BYTES = 1024 * 1024;
export const MAX_PARAMS = 256;
export const MAX_PARAM_BYTES = 4096;
/** Paths, messages, destinations: anything not expected to be long. */
export const MAX_SHORT_BYTES = 16 * 1024;

export interface Truncated {
  readonly text: string;
  readonly truncated: boolean;
  /** UTF-8 length of the original. */
  readonly bytes: number;
}

/** Cuts at a character boundary to at most maxBytes of UTF-8, then appends a marker naming the original size. */
export function truncateText(s: string, maxBytes: number): Truncated {
  const bytes = Buffer.byteLength(s, 'utf8');
  if (bytes <= maxBytes) return { text: s, truncated: false, bytes };
  // StringDecoder holds back a character cut in half, so the head is always whole characters.
  const head = new StringDecoder('utf8').write(Buffer.from(s, 'utf8').subarray(0, maxBytes));
  return { text: `${head}…[truncated by wicket: ${bytes} bytes total]`, truncated: true, bytes };
}

/**
 * A parameter's bytes as recorded text (UTF-8, or hex for binary), at most
 * `maxBytes` long including the marker, decoding only what is kept: a
 * client-sent 64 MiB value never becomes a 128 MB string in memory.
 */
export function paramText(buf: Buffer, encoding: 'utf8' | 'hex', maxBytes = MAX_PARAM_BYTES): string {
  const full = encoding === 'hex' ? buf.length * 2 : buf.length;
  if (full <= maxBytes) return buf.toString(encoding);
  const marker = `…[truncated by wicket: ${buf.length} bytes total]`;
  const room = Math.max(0, maxBytes - Buffer.byteLength(marker));
  const head = encoding === 'hex' ? buf.subarray(0, room >> 1).toString('hex') : new StringDecoder('utf8').write(buf.subarray(0, room));
  return head + marker;
}

const short = (s: string): string => truncateText(s, MAX_SHORT_BYTES).text;
const num = (n: number | null | undefined): number | null => (typeof n === 'number' && Number.isFinite(n) ? n : null);

/** Drops undefined members so the object is plain JSON. */
function compact(o: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) out[k] = v;
  return out;
}

function row(ctx: AuditContext, ts: number, kind: string, data: Record<string, unknown>): RecordingAuditInput {
  return { ts, kind, actor: ctx.actor, sessionId: ctx.sessionId, target: ctx.target, data: compact(data) };
}

/** `seq` is the statement's number within its session, shown as `#seq` by formatQueryList. */
export function queryAudit(ev: QueryEvent, ctx: AuditContext, seq?: number): RecordingAuditInput {
  const sql = truncateText(ev.sql, MAX_SQL_BYTES);
  const params = ev.params?.slice(0, MAX_PARAMS).map((p) => ({
    type: p.type,
    format: p.format,
    value: p.value === null ? null : truncateText(p.value, MAX_PARAM_BYTES).text,
  }));
  return row(ctx, ev.startedAt, 'query', {
    seq,
    step: ev.step,
    sql: sql.text,
    sqlBytes: sql.truncated ? sql.bytes : undefined,
    sqlTruncated: sql.truncated ? true : undefined,
    durationMs: num(ev.durationMs),
    rows: ev.rows === undefined ? undefined : num(ev.rows),
    tag: ev.tag ?? undefined,
    bytes: ev.bytes === undefined ? undefined : num(ev.bytes),
    statement: ev.statement,
    portal: ev.portal,
    params,
    paramsTotal: ev.params !== undefined && ev.params.length > MAX_PARAMS ? ev.params.length : undefined,
    error: ev.error ? { code: short(ev.error.code), message: short(ev.error.message) } : undefined,
  });
}

export function commandAudit(ev: CommandEvent, ctx: AuditContext): RecordingAuditInput {
  const command = truncateText(ev.command, MAX_SQL_BYTES);
  return row(ctx, ev.at, 'command', {
    source: ev.source,
    command: command.text,
    commandBytes: command.truncated ? command.bytes : undefined,
    channel: ev.channel,
  });
}

export function fileAudit(ev: FileEvent, ctx: AuditContext): RecordingAuditInput {
  return row(ctx, ev.at, 'file', {
    op: ev.op,
    path: short(ev.path),
    bytes: ev.bytes === undefined ? undefined : num(ev.bytes),
    mode: ev.mode,
    to: ev.to === undefined ? undefined : short(ev.to),
    result: ev.result === undefined ? undefined : short(ev.result),
  });
}

export function forwardAudit(ev: ForwardEvent, ctx: AuditContext): RecordingAuditInput {
  return row(ctx, ev.at, 'forward', {
    kind: ev.kind,
    destination: short(ev.destination),
    bytesIn: num(ev.bytesIn),
    bytesOut: num(ev.bytesOut),
    durationMs: num(ev.durationMs),
  });
}

export function refusedAudit(ev: RefusedEvent, ctx: AuditContext): RecordingAuditInput {
  // `what` is often the refused SQL statement, so it gets the SQL budget.
  return row(ctx, ev.at, 'refused', { what: truncateText(ev.what, MAX_SQL_BYTES).text, rule: ev.rule, message: short(ev.message) });
}

/** Any session event as an audit input; kind is the event's type. `seq` applies to queries only. */
export function sessionEventToAudit(ev: SessionEvent, ctx: AuditContext, seq?: number): RecordingAuditInput {
  switch (ev.type) {
    case 'query':
      return queryAudit(ev, ctx, seq);
    case 'command':
      return commandAudit(ev, ctx);
    case 'file':
      return fileAudit(ev, ctx);
    case 'forward':
      return forwardAudit(ev, ctx);
    case 'refused':
      return refusedAudit(ev, ctx);
  }
}

/** An audit row as read back from the store (AuditEvent fits). */
export interface QueryListEntry {
  readonly ts: number;
  readonly kind: string;
  readonly data: Readonly<Record<string, unknown>>;
}

export interface QueryListOptions {
  /** Shorten SQL to this many characters in the list (the full text stays in the store). Default: no limit. */
  readonly maxSqlChars?: number;
  /** Parameters shown per statement. Default 20. */
  readonly maxParams?: number;
}

/*
 * The list is printed to an operator's terminal, and SQL and parameters come
 * from the recorded client: control characters are shown escaped so a
 * statement cannot inject terminal escape sequences into the reviewer's screen.
 */
const CONTROLS = /[\u0000-\u001f\u007f-\u009f]/g;
const visible = (s: string): string => s.replace(CONTROLS, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);

function clock(ts: number): string {
  const d = new Date(ts);
  if (Number.isNaN(d.getTime())) return '??:??:??.???';
  const p = (n: number, w = 2): string => String(n).padStart(w, '0');
  return `${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())}.${p(d.getUTCMilliseconds(), 3)}`;
}

function ellipsize(s: string, max: number): string {
  if (s.length <= max) return s;
  // Never split a surrogate pair: half a character would print as garbage.
  const cut = max > 0 && /[\uD800-\uDBFF]/.test(s[max - 1]!) ? max - 1 : max;
  return `${s.slice(0, cut)}…`;
}

function formatParam(p: unknown, i: number): string {
  const o = typeof p === 'object' && p !== null ? (p as Record<string, unknown>) : {};
  const value = str(o['value']);
  let shown: string;
  if (value === null || o['format'] === 'null') shown = 'NULL';
  else if (o['format'] === 'binary') shown = `\\x${ellipsize(value, 64)}`;
  else shown = `'${visible(ellipsize(value, 64)).replace(/'/g, "''")}'`;
  return `$${i + 1}=${shown}`;
}

/**
 * One line per statement, in order:
 * `#3  12:00:01.250  execute  12.3ms  rows=5  SELECT ...  [params: $1='x']  ERROR 42P01: ...`
 * Times are UTC. Rows of other kinds than query/refused are skipped.
 */
export function formatQueryList(entries: readonly QueryListEntry[], opts: QueryListOptions = {}): string {
  const maxParams = opts.maxParams ?? 20;
  const lines: string[] = [];
  let position = 0;
  for (const e of entries) {
    if (e.kind !== 'query' && e.kind !== 'refused') continue;
    position++;
    const d = e.data;
    const seq = typeof d['seq'] === 'number' ? d['seq'] : position;
    const oneLine = (s: string): string => {
      const flat = visible(s.replace(/\s+/g, ' ').trim());
      return opts.maxSqlChars !== undefined ? ellipsize(flat, opts.maxSqlChars) : flat;
    };
    const parts = [`#${seq}`, clock(e.ts)];
    if (e.kind === 'refused') {
      parts.push('refused', `rule=${visible(str(d['rule']) ?? '?')}`, oneLine(str(d['what']) ?? ''), `DENIED: ${visible(str(d['message']) ?? '')}`);
      lines.push(parts.join('  '));
      continue;
    }
    parts.push(visible(str(d['step']) ?? 'query'));
    const dur = d['durationMs'];
    parts.push(typeof dur === 'number' ? `${dur.toFixed(1)}ms` : '?ms');
    if (typeof d['rows'] === 'number') parts.push(`rows=${d['rows']}`);
    parts.push(oneLine(str(d['sql']) ?? ''));
    const params = Array.isArray(d['params']) ? (d['params'] as unknown[]) : [];
    if (params.length > 0) {
      const total = typeof d['paramsTotal'] === 'number' ? d['paramsTotal'] : params.length;
      const shown = params.slice(0, maxParams).map(formatParam);
      if (total > shown.length) shown.push(`…(+${total - shown.length} more)`);
      parts.push(`[params: ${shown.join(' ')}]`);
    }
    const err = d['error'];
    if (typeof err === 'object' && err !== null) {
      const o = err as Record<string, unknown>;
      parts.push(`ERROR ${visible(str(o['code']) ?? '?')}: ${visible(str(o['message']) ?? '')}`);
    }
    lines.push(parts.join('  '));
  }
  return lines.join('\n');
}
