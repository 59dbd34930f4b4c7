/**
 * Messages sent by PostgreSQL servers (backends): decoding what the upstream
 * says, and encoders for what wicket itself says to clients. Pure: no I/O.
 *
 * Ownership: decoded messages never alias the input body (Buffer fields are
 * copies). Hot path: DataRow and CopyData decode to a count only; a relay
 * that only counts rows should use FrameParser.pushSpans, compare the type
 * byte with BACKEND.DataRow and skip decodeBackend() (no allocation per row).
 */
import { Reader, Writer } from './framing.js';

/** Type bytes of backend messages. */
export const BACKEND = {
  ParseComplete: 0x31, BindComplete: 0x32, CloseComplete: 0x33, // '1' '2' '3'
  NotificationResponse: 0x41, CommandComplete: 0x43, DataRow: 0x44, ErrorResponse: 0x45, // 'A' 'C' 'D' 'E'
  CopyInResponse: 0x47, CopyOutResponse: 0x48, EmptyQueryResponse: 0x49, BackendKeyData: 0x4b, // 'G' 'H' 'I' 'K'
  NoticeResponse: 0x4e, Authentication: 0x52, ParameterStatus: 0x53, RowDescription: 0x54, // 'N' 'R' 'S' 'T'
  FunctionCallResponse: 0x56, CopyBothResponse: 0x57, ReadyForQuery: 0x5a, // 'V' 'W' 'Z'
  CopyDone: 0x63, CopyData: 0x64, NoData: 0x6e, PortalSuspended: 0x73, // 'c' 'd' 'n' 's'
  ParameterDescription: 0x74, NegotiateProtocolVersion: 0x76, // 't' 'v'
} as const;

/** Authentication ('R') request codes: the Int32 that starts the body. */
export const AUTH = { Ok: 0, CleartextPassword: 3, MD5Password: 5, SASL: 10, SASLContinue: 11, SASLFinal: 12 } as const;

/** Error/notice fields by their one-byte code. Always sent: S, V (9.6+), C, M. */
export interface ErrorFields {
  /** Non-localized severity ('V') when present, else the localized 'S'. */
  severity: string;
  code: string;
  message: string;
  detail?: string; hint?: string; position?: string; internalPosition?: string; internalQuery?: string;
  where?: string; schema?: string; table?: string; column?: string; dataType?: string; constraint?: string;
  /** Server source location. */
  file?: string; line?: string; routine?: string;
  /** Every field as received, keyed by its letter. */
  raw: Record<string, string>;
}

/** One RowDescription field. `column` is the attribute number (0 if not a table column); format 0 text, 1 binary. */
export interface RowField {
  name: string; tableOid: number; column: number; typeOid: number; typeSize: number; typeMod: number; format: number;
}

export type CopyFormat = { format: number; columnFormats: number[] };

export type BackendMessage =
  | { type: 'authentication'; code: number; data: Buffer }
  | { type: 'parameter_status'; name: string; value: string }
  | { type: 'backend_key_data'; processId: number; secretKey: Buffer }
  | { type: 'ready_for_query'; status: 'I' | 'T' | 'E' }
  | { type: 'row_description'; fields: RowField[] }
  | { type: 'data_row'; columns: number }
  | { type: 'command_complete'; tag: string }
  | { type: 'error_response'; fields: ErrorFields }
  | { type: 'notice_response'; fields: ErrorFields }
  | { type: 'parse_complete' } | { type: 'bind_complete' } | { type: 'close_complete' } | { type: 'no_data' }
  | { type: 'portal_suspended' } | { type: 'empty_query_response' }
  | { type: 'parameter_description'; types: number[] }
  | ({ type: 'copy_in_response' } & CopyFormat)
  | ({ type: 'copy_out_response' } & CopyFormat)
  | ({ type: 'copy_both_response' } & CopyFormat)
  | { type: 'copy_data'; bytes: number } | { type: 'copy_done' }
  | { type: 'notification_response'; processId: number; channel: string; payload: string }
  | { type: 'function_call_response'; value: Buffer | null }
  | { type: 'negotiate_protocol_version'; minor: number; unsupported: string[] }
  | { type: 'unknown'; code: number };

type EmptyType = 'parse_complete' | 'bind_complete' | 'close_complete' | 'no_data' | 'portal_suspended' | 'empty_query_response' | 'copy_done';
/** Messages whose body is empty decode to shared frozen objects (no allocation). */
const EMPTY = new Map<number, [string, BackendMessage]>();
for (const [code, name, type] of [
  [BACKEND.ParseComplete, 'ParseComplete', 'parse_complete'], [BACKEND.BindComplete, 'BindComplete', 'bind_complete'],
  [BACKEND.CloseComplete, 'CloseComplete', 'close_complete'], [BACKEND.NoData, 'NoData', 'no_data'],
  [BACKEND.PortalSuspended, 'PortalSuspended', 'portal_suspended'], [BACKEND.CopyDone, 'CopyDone', 'copy_done'],
  [BACKEND.EmptyQueryResponse, 'EmptyQueryResponse', 'empty_query_response'],
] as [number, string, EmptyType][]) EMPTY.set(code, [name, Object.freeze({ type })]);

const FIELD_KEYS: Record<string, keyof Omit<ErrorFields, 'raw'>> = {
  C: 'code', M: 'message', D: 'detail', H: 'hint', P: 'position', p: 'internalPosition',
  q: 'internalQuery', W: 'where', s: 'schema', t: 'table', c: 'column', d: 'dataType',
  n: 'constraint', F: 'file', L: 'line', R: 'routine',
};

/** Decode one typed backend message (body excludes the 5-byte header). */
export function decodeBackend(type: number, body: Buffer): BackendMessage {
  switch (type) {
    case BACKEND.DataRow:
      if (body.length < 2) new Reader(body, 'DataRow').u16('column count');
      return { type: 'data_row', columns: body.readUInt16BE(0) };
    case BACKEND.CopyData:
      return { type: 'copy_data', bytes: body.length };
    case BACKEND.Authentication: {
      const r = new Reader(body, 'Authentication');
      const code = r.i32('request code');
      return { type: 'authentication', code, data: r.bytes(r.remaining, 'data') };
    }
    case BACKEND.ParameterStatus: {
      const r = new Reader(body, 'ParameterStatus');
      const name = r.cstr('parameter name');
      const value = r.lastCstr('parameter value');
      return { type: 'parameter_status', name, value };
    }
    case BACKEND.BackendKeyData: {
      const r = new Reader(body, 'BackendKeyData');
      const processId = r.i32('process ID');
      if (r.remaining < 4 || r.remaining > 256) r.fail(`secret key of ${r.remaining} bytes (must be 4 to 256)`);
      return { type: 'backend_key_data', processId, secretKey: r.bytes(r.remaining, 'secret key') };
    }
    case BACKEND.ReadyForQuery: {
      const r = new Reader(body, 'ReadyForQuery');
      const s = r.u8('transaction status');
      r.end();
      if (s !== 0x49 && s !== 0x54 && s !== 0x45) r.fail(`unknown transaction status ${s}`);
      return { type: 'ready_for_query', status: s === 0x49 ? 'I' : s === 0x54 ? 'T' : 'E' };
    }
    case BACKEND.RowDescription: {
      const r = new Reader(body, 'RowDescription');
      const n = r.u16('field count');
      r.counted(n, 19, 'field count'); // shortest field: "\0" + 18 bytes of ints
      const fields = new Array<RowField>(n);
      for (let i = 0; i < n; i++) {
        fields[i] = {
          name: r.cstr('field % name', i + 1), tableOid: r.u32('field % table OID', i + 1),
          column: r.i16('field % column', i + 1), typeOid: r.u32('field % type OID', i + 1),
          typeSize: r.i16('field % type size', i + 1), typeMod: r.i32('field % type modifier', i + 1),
          format: r.i16('field % format', i + 1),
        };
      }
      r.end();
      return { type: 'row_description', fields };
    }
    case BACKEND.CommandComplete:
      return { type: 'command_complete', tag: new Reader(body, 'CommandComplete').lastCstr('command tag') };
    case BACKEND.ErrorResponse:
      return { type: 'error_response', fields: errorFields(new Reader(body, 'ErrorResponse')) };
    case BACKEND.NoticeResponse:
      return { type: 'notice_response', fields: errorFields(new Reader(body, 'NoticeResponse')) };
    case BACKEND.ParameterDescription: {
      const r = new Reader(body, 'ParameterDescription');
      const types = r.ints(r.u16('parameter type count'), 4, 'parameter type');
      r.end();
      return { type: 'parameter_description', types };
    }
    case BACKEND.CopyInResponse:
      return { type: 'copy_in_response', ...copyFormat(new Reader(body, 'CopyInResponse')) };
    case BACKEND.CopyOutResponse:
      return { type: 'copy_out_response', ...copyFormat(new Reader(body, 'CopyOutResponse')) };
    case BACKEND.CopyBothResponse:
      return { type: 'copy_both_response', ...copyFormat(new Reader(body, 'CopyBothResponse')) };
    case BACKEND.NotificationResponse: {
      const r = new Reader(body, 'NotificationResponse');
      const processId = r.i32('process ID');
      const channel = r.cstr('channel');
      const payload = r.lastCstr('payload');
      return { type: 'notification_response', processId, channel, payload };
    }
    case BACKEND.FunctionCallResponse: {
      const r = new Reader(body, 'FunctionCallResponse');
      const len = r.i32('result length'); // -1 = NULL
      if (len < -1) r.fail(`invalid result length ${len}`);
      const value = len === -1 ? null : r.bytes(len, 'result value');
      r.end();
      return { type: 'function_call_response', value };
    }
    case BACKEND.NegotiateProtocolVersion: {
      const r = new Reader(body, 'NegotiateProtocolVersion');
      const minor = r.i32('newest minor version');
      const n = r.i32('option count');
      if (n < 0 || n > r.remaining) r.fail(`option count ${n} exceeds the message length`);
      const unsupported = new Array<string>(n);
      for (let i = 0; i < n; i++) unsupported[i] = r.cstr('option % name', i + 1);
      r.end();
      return { type: 'negotiate_protocol_version', minor, unsupported };
    }
    default: {
      const empty = EMPTY.get(type);
      if (empty === undefined) return { type: 'unknown', code: type };
      if (body.length !== 0) new Reader(body, empty[0]).end();
      return empty[1];
    }
  }
}

/** Int8 overall format (0 text, 1 binary), Int16 column count, Int16 format per column. */
function copyFormat(r: Reader): CopyFormat {
  const format = r.u8('overall format');
  const columnFormats = r.ints(r.u16('column count'), 2, 'column format');
  r.end();
  return { format, columnFormats };
}

/** Fields are Byte1 code + C string, repeated, ended by a zero byte. */
function errorFields(r: Reader): ErrorFields {
  const raw: Record<string, string> = {};
  for (;;) {
    const code = r.u8('field code');
    if (code === 0) break;
    raw[String.fromCharCode(code)] = r.cstr('field value');
  }
  r.end();
  const out: ErrorFields = { severity: raw.V ?? raw.S ?? '', code: raw.C ?? '', message: raw.M ?? '', raw };
  for (const k in raw) {
    const key = FIELD_KEYS[k];
    if (key !== undefined) out[key] = raw[k]!;
  }
  return out;
}

/** AuthenticationSASL data: mechanism names as C strings, ended by an empty one. */
export function saslMechanisms(data: Buffer): string[] {
  const r = new Reader(data, 'AuthenticationSASL');
  const out: string[] = [];
  for (let m = r.cstr('mechanism name'); m !== ''; m = r.cstr('mechanism name')) out.push(m);
  r.end();
  return out;
}

/**
 * Rows reported by a CommandComplete tag: the trailing number of
 * "SELECT n", "INSERT oid n", "UPDATE n", "DELETE n", "MERGE n", "FETCH n",
 * "MOVE n", "COPY n". Null when the tag carries no count ("CREATE TABLE").
 */
export function commandTagRows(tag: string): number | null {
  let i = tag.length;
  while (i > 0 && tag.charCodeAt(i - 1) >= 0x30 && tag.charCodeAt(i - 1) <= 0x39) i--;
  if (i === tag.length || i === 0 || tag.charCodeAt(i - 1) !== 0x20) return null;
  return Number(tag.slice(i));
}

// ---- encoders: what wicket sends to clients ----

const auth = (code: number, data?: Buffer): Buffer => {
  const w = new Writer(BACKEND.Authentication, 9 + (data?.length ?? 0)).i32(code);
  return (data ? w.bytes(data) : w).finish();
};
export const authOk = (): Buffer => auth(AUTH.Ok);
export const authCleartextPassword = (): Buffer => auth(AUTH.CleartextPassword);
/** The salt is exactly 4 bytes. */
export const authMD5Password = (salt: Buffer): Buffer => auth(AUTH.MD5Password, salt);
export function authSASL(mechanisms: string[]): Buffer {
  const w = new Writer(BACKEND.Authentication).i32(AUTH.SASL);
  for (const m of mechanisms) w.cstr(m);
  return w.u8(0).finish();
}
export const authSASLContinue = (data: Buffer): Buffer => auth(AUTH.SASLContinue, data);
export const authSASLFinal = (data: Buffer): Buffer => auth(AUTH.SASLFinal, data);

export const parameterStatus = (name: string, value: string): Buffer =>
  new Writer(BACKEND.ParameterStatus).cstr(name).cstr(value).finish();
/** The secret key is 4 bytes in protocol 3.0, 4..256 bytes from 3.2. */
export const backendKeyData = (processId: number, secretKey: Buffer): Buffer =>
  new Writer(BACKEND.BackendKeyData, 9 + secretKey.length).i32(processId).bytes(secretKey).finish();
/** I idle, T in a transaction block, E in a failed transaction block. */
export const readyForQuery = (status: 'I' | 'T' | 'E'): Buffer =>
  new Writer(BACKEND.ReadyForQuery, 6).u8(status.charCodeAt(0)).finish();

/** `code` is a 5-character SQLSTATE; `position` a 1-based character offset into the query. */
export interface ErrorInput { code: string; message: string; detail?: string; hint?: string; position?: number }
/** Error/notice strings are C strings on the wire: NUL bytes are dropped. */
function fieldsMessage(type: number, severity: string, e: ErrorInput): Buffer {
  const w = new Writer(type, 128).u8(0x53).cstr(severity).u8(0x56).cstr(severity); // S, V
  w.u8(0x43).cstr(noNul(e.code)).u8(0x4d).cstr(noNul(e.message)); // C, M
  if (e.detail !== undefined) w.u8(0x44).cstr(noNul(e.detail));
  if (e.hint !== undefined) w.u8(0x48).cstr(noNul(e.hint));
  if (e.position !== undefined) w.u8(0x50).cstr(String(e.position));
  return w.u8(0).finish();
}
const noNul = (s: string): string => (s.includes('\0') ? s.replaceAll('\0', '') : s);

export const errorResponse = (e: ErrorInput & { severity: 'ERROR' | 'FATAL' | 'PANIC' }): Buffer =>
  fieldsMessage(BACKEND.ErrorResponse, e.severity, e);
export const noticeResponse = (e: ErrorInput & { severity: 'WARNING' | 'NOTICE' | 'DEBUG' | 'INFO' | 'LOG' }): Buffer =>
  fieldsMessage(BACKEND.NoticeResponse, e.severity, e);

/** Sent after startup when the client asked for a newer minor or unknown `_pq_.` options. */
export function negotiateProtocolVersion(minor: number, unsupported: string[]): Buffer {
  const w = new Writer(BACKEND.NegotiateProtocolVersion).i32(minor).i32(unsupported.length);
  for (const o of unsupported) w.cstr(o);
  return w.finish();
}
export const commandComplete = (tag: string): Buffer => new Writer(BACKEND.CommandComplete, tag.length + 6).cstr(tag).finish();
export const emptyQueryResponse = (): Buffer => new Writer(BACKEND.EmptyQueryResponse, 5).finish();

/** Defaults: no table (0/0), variable size (-1), no modifier (-1), text format. */
export type RowFieldInput = Pick<RowField, 'name' | 'typeOid'> & Partial<RowField>;
export function rowDescription(fields: RowFieldInput[]): Buffer {
  const w = new Writer(BACKEND.RowDescription, 7 + fields.length * 32).u16(fields.length);
  for (const f of fields) {
    w.cstr(f.name).u32(f.tableOid ?? 0).i16(f.column ?? 0).u32(f.typeOid);
    w.i16(f.typeSize ?? -1).i32(f.typeMod ?? -1).i16(f.format ?? 0);
  }
  return w.finish();
}

/** Int16 column count, then per column Int32 length (-1 = NULL) and bytes. */
export const dataRow = (values: (Buffer | string | null)[]): Buffer =>
  new Writer(BACKEND.DataRow, 7 + values.length * 16).values(values).finish();
