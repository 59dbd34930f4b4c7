/**
 * Messages sent by PostgreSQL clients (frontends): the untyped startup
 * packets, the typed messages that follow, and encoders for when wicket is
 * itself the client of an upstream server. Pure: no I/O.
 *
 * Ownership: decoded messages never alias the input. Strings are decoded,
 * and every Buffer field (bind params, function args, password data, cancel
 * key) is a copy, so a message may be kept after the frame callback returns.
 * Field-less messages (sync, flush, terminate, copy_done) are shared frozen objects.
 */
import { Reader, Writer, protocolError, typeName } from './framing.js';

/** Protocol 3.x version code is (3 << 16) | minor; 3.0 = 196608. */
export const PROTOCOL_3_0 = 196608;
/** Special "versions" in the startup slot use major 1234. */
export const CANCEL_REQUEST_CODE = 80877102; // 1234/5678
export const SSL_REQUEST_CODE = 80877103; // 1234/5679
export const GSSENC_REQUEST_CODE = 80877104; // 1234/5680
/** Cancel keys are 4 bytes before protocol 3.2 and at most 256 bytes after. */
export const MAX_CANCEL_KEY_BYTES = 256;

/** Type bytes of frontend messages. */
export const FRONTEND = {
  Bind: 0x42, Close: 0x43, Describe: 0x44, Execute: 0x45, FunctionCall: 0x46, Flush: 0x48, // 'B' 'C' 'D' 'E' 'F' 'H'
  Parse: 0x50, Query: 0x51, Sync: 0x53, Terminate: 0x58, // 'P' 'Q' 'S' 'X'
  CopyDone: 0x63, CopyData: 0x64, CopyFail: 0x66, // 'c' 'd' 'f'
  /** 'p': PasswordMessage, SASLInitialResponse, SASLResponse and GSSResponse share it. */
  Password: 0x70,
} as const;

export type StartupPacket =
  | { type: 'startup'; major: number; minor: number; params: Record<string, string> }
  | { type: 'ssl_request' }
  | { type: 'gssenc_request' }
  | { type: 'cancel'; processId: number; secretKey: Buffer };

export type FrontendMessage =
  | { type: 'query'; sql: string }
  | { type: 'parse'; statement: string; sql: string; paramTypes: number[] }
  | { type: 'bind'; portal: string; statement: string; paramFormats: number[]; params: (Buffer | null)[]; resultFormats: number[] }
  | { type: 'execute'; portal: string; maxRows: number }
  | { type: 'describe'; kind: 'S' | 'P'; name: string }
  | { type: 'close'; kind: 'S' | 'P'; name: string }
  | { type: 'sync' } | { type: 'flush' } | { type: 'terminate' }
  | { type: 'function_call'; oid: number; argFormats: number[]; args: (Buffer | null)[]; resultFormat: number }
  | { type: 'copy_data'; bytes: number } | { type: 'copy_done' } | { type: 'copy_fail'; message: string }
  | { type: 'password'; data: Buffer }
  | { type: 'unknown'; code: number };

/**
 * Parse one startup-phase packet: Int32 length (including itself), Int32
 * version code, then for a StartupMessage `name\0value\0`... pairs ending in
 * a single `\0`. Returns null until the whole packet is in `buf` (bytes past
 * it are left for the caller: `consumed` says where typed messages begin).
 * Only major 3 has its parameters parsed; other majors come back with empty
 * params so the caller can refuse them. Throws WICKET_ERR_PROTOCOL with a
 * message fit for an ErrorResponse.
 */
export function parseStartup(buf: Buffer, maxBytes = 10000): { packet: StartupPacket; consumed: number } | null {
  if (buf.length < 4) return null;
  const len = buf.readInt32BE(0);
  if (len < 8 || len > maxBytes) throw protocolError(badStartupLength(buf, len, maxBytes));
  if (buf.length < len) return null;
  const code = buf.readUInt32BE(4);
  const major = code >>> 16;
  const minor = code & 0xffff;
  let packet: StartupPacket;
  if (code === SSL_REQUEST_CODE || code === GSSENC_REQUEST_CODE) {
    const name = code === SSL_REQUEST_CODE ? 'SSLRequest' : 'GSSENCRequest';
    if (len !== 8) throw protocolError(`invalid ${name} length ${len} (must be 8)`);
    packet = { type: code === SSL_REQUEST_CODE ? 'ssl_request' : 'gssenc_request' };
  } else if (code === CANCEL_REQUEST_CODE) {
    if (len < 16 || len > 12 + MAX_CANCEL_KEY_BYTES) {
      throw protocolError(`invalid CancelRequest length ${len} (must be between 16 and ${12 + MAX_CANCEL_KEY_BYTES} bytes)`);
    }
    packet = { type: 'cancel', processId: buf.readInt32BE(8), secretKey: Buffer.from(buf.subarray(12, len)) };
  } else if (major === 1234) {
    throw protocolError(`unsupported startup request code 1234/${minor}`);
  } else {
    packet = { type: 'startup', major, minor, params: major === 3 ? startupParams(buf.subarray(0, len)) : {} };
  }
  return { packet, consumed: len };
}

function startupParams(pkt: Buffer): Record<string, string> {
  const params: Record<string, string> = Object.create(null) as Record<string, string>;
  const last = pkt.length - 1;
  let pos = 8;
  for (;;) {
    if (pos > last) throw protocolError('invalid startup packet layout: missing the final terminator');
    if (pkt[pos] === 0) break;
    const nameEnd = pkt.indexOf(0, pos);
    if (nameEnd < 0) throw protocolError('invalid startup packet layout: parameter name is not NUL-terminated');
    const name = pkt.toString('utf8', pos, nameEnd);
    if (nameEnd === last) throw protocolError(`invalid startup packet layout: parameter "${name}" has no value`);
    const valueEnd = pkt.indexOf(0, nameEnd + 1);
    if (valueEnd < 0) throw protocolError(`invalid startup packet layout: value of parameter "${name}" is not NUL-terminated`);
    params[name] = pkt.toString('utf8', nameEnd + 1, valueEnd);
    pos = valueEnd + 1;
  }
  if (pos !== last) throw protocolError(`invalid startup packet layout: ${last - pos} bytes after the final terminator`);
  return params;
}

function badStartupLength(buf: Buffer, len: number, maxBytes: number): string {
  const base = `invalid startup packet length ${len} (must be between 8 and ${maxBytes} bytes)`;
  if (buf[0] === 0x16 && buf[1] === 0x03) return `${base}: this looks like a TLS handshake sent without an SSLRequest`;
  let text = '';
  for (let i = 0; i < buf.length && i < 32 && buf[i]! >= 0x20 && buf[i]! < 0x7f; i++) text += String.fromCharCode(buf[i]!);
  // Four printable bytes decode to a length of at least 0x20202020.
  return text.length >= 4 ? `${base}: received "${text}", which is not the PostgreSQL protocol` : base;
}

const SYNC: FrontendMessage = Object.freeze({ type: 'sync' });
const FLUSH: FrontendMessage = Object.freeze({ type: 'flush' });
const COPY_DONE: FrontendMessage = Object.freeze({ type: 'copy_done' });
const TERMINATE: FrontendMessage = Object.freeze({ type: 'terminate' });

/** Decode one typed frontend message (body excludes the 5-byte header). */
export function decodeFrontend(type: number, body: Buffer): FrontendMessage {
  switch (type) {
    case FRONTEND.Query:
      return { type: 'query', sql: new Reader(body, 'Query').lastCstr('query string') };
    case FRONTEND.Parse: {
      const r = new Reader(body, 'Parse');
      const statement = r.cstr('statement name');
      const sql = r.cstr('query string');
      const paramTypes = r.ints(r.u16('parameter type count'), 4, 'parameter type');
      r.end();
      return { type: 'parse', statement, sql, paramTypes };
    }
    case FRONTEND.Bind: {
      const r = new Reader(body, 'Bind');
      const portal = r.cstr('portal name');
      const statement = r.cstr('statement name');
      const paramFormats = r.ints(r.u16('parameter format count'), 2, 'parameter format');
      const params = values(r, 'parameter');
      const resultFormats = r.ints(r.u16('result format count'), 2, 'result format');
      r.end();
      return { type: 'bind', portal, statement, paramFormats, params, resultFormats };
    }
    case FRONTEND.Execute: {
      const r = new Reader(body, 'Execute');
      const portal = r.cstr('portal name');
      const maxRows = r.i32('row limit'); // 0 = no limit
      r.end();
      return { type: 'execute', portal, maxRows };
    }
    case FRONTEND.Describe:
    case FRONTEND.Close: {
      const r = new Reader(body, type === FRONTEND.Describe ? 'Describe' : 'Close');
      const k = r.u8('kind');
      if (k !== 0x53 && k !== 0x50) r.fail(`kind must be 'S' or 'P', got ${typeName(k)}`);
      const name = r.cstr('name');
      r.end();
      const kind = k === 0x53 ? 'S' : 'P';
      return type === FRONTEND.Describe ? { type: 'describe', kind, name } : { type: 'close', kind, name };
    }
    case FRONTEND.Sync: return empty(body, 'Sync', SYNC);
    case FRONTEND.Flush: return empty(body, 'Flush', FLUSH);
    case FRONTEND.Terminate: return empty(body, 'Terminate', TERMINATE);
    case FRONTEND.CopyDone: return empty(body, 'CopyDone', COPY_DONE);
    case FRONTEND.CopyData:
      return { type: 'copy_data', bytes: body.length };
    case FRONTEND.CopyFail:
      return { type: 'copy_fail', message: new Reader(body, 'CopyFail').lastCstr('error message') };
    case FRONTEND.FunctionCall: {
      const r = new Reader(body, 'FunctionCall');
      const oid = r.u32('function OID');
      const argFormats = r.ints(r.u16('argument format count'), 2, 'argument format');
      const args = values(r, 'argument');
      const resultFormat = r.i16('result format');
      r.end();
      return { type: 'function_call', oid, argFormats, args, resultFormat };
    }
    case FRONTEND.Password:
      return { type: 'password', data: Buffer.from(body) };
    default:
      return { type: 'unknown', code: type };
  }
}

function empty(body: Buffer, name: string, msg: FrontendMessage): FrontendMessage {
  if (body.length !== 0) new Reader(body, name).end();
  return msg;
}

/**
 * Int16 count, then per value Int32 length (-1 = NULL, no bytes follow) and
 * the bytes. All values are copied into one new buffer and handed out as
 * views of it: one allocation however many values there are.
 */
function values(r: Reader, what: string): (Buffer | null)[] {
  const n = r.u16(`${what} count`);
  r.counted(n, 4, `${what} count`);
  const start = r.pos;
  const lenLabel = `${what} % length`;
  const lens = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const len = r.i32(lenLabel, i + 1);
    if (len < -1) r.fail(`${what} ${i + 1} has invalid length ${len}`);
    if (len > 0) {
      if (len > r.remaining) r.fail(`${what} ${i + 1} value runs past the end of the message`);
      r.pos += len;
    }
    lens[i] = len;
  }
  const copy = Buffer.from(r.buf.subarray(start, r.pos));
  const out = new Array<Buffer | null>(n);
  let at = 0;
  for (let i = 0; i < n; i++) {
    const len = lens[i]!;
    at += 4;
    if (len < 0) out[i] = null;
    else {
      out[i] = copy.subarray(at, at + len);
      at += len;
    }
  }
  return out;
}

/**
 * SASLInitialResponse body: mechanism name (C string), Int32 length of the
 * initial response (-1 = none), then the response bytes. An absent response
 * comes back as an empty buffer (SCRAM always sends one). Data is copied.
 */
export function parseSASLInitialResponse(data: Buffer): { mechanism: string; response: Buffer } {
  const r = new Reader(data, 'SASLInitialResponse');
  const mechanism = r.cstr('mechanism name');
  const len = r.i32('response length');
  if (len < -1) r.fail(`invalid response length ${len}`);
  const response = len === -1 ? Buffer.alloc(0) : r.bytes(len, 'response');
  r.end();
  return { mechanism, response };
}

// ---- encoders: wicket as the client of an upstream server ----

export function encodeStartup(params: Record<string, string>, minor = 0): Buffer {
  const w = new Writer(null, 128).i32(PROTOCOL_3_0 + minor);
  for (const [k, v] of Object.entries(params)) w.cstr(k).cstr(v);
  return w.u8(0).finish();
}

export const encodeSSLRequest = (): Buffer => new Writer(null, 8).i32(SSL_REQUEST_CODE).finish();
export const encodeCancelRequest = (processId: number, secretKey: Buffer): Buffer =>
  new Writer(null, 12 + secretKey.length).i32(CANCEL_REQUEST_CODE).i32(processId).bytes(secretKey).finish();
/** PasswordMessage: the password (or "md5" + hex digest) as a C string. */
export const encodePassword = (text: string): Buffer => new Writer(FRONTEND.Password).cstr(text).finish();
export const encodeSASLInitialResponse = (mechanism: string, data: Buffer): Buffer =>
  new Writer(FRONTEND.Password, 32 + data.length).cstr(mechanism).i32(data.length).bytes(data).finish();
/** SASLResponse: the raw mechanism bytes, no length prefix inside the body. */
export const encodeSASLResponse = (data: Buffer): Buffer =>
  new Writer(FRONTEND.Password, 5 + data.length).bytes(data).finish();
export const encodeQuery = (sql: string): Buffer => new Writer(FRONTEND.Query, sql.length + 6).cstr(sql).finish();

/** Parameter type OIDs; 0 lets the server infer the type. */
export function encodeParse(statement: string, sql: string, paramTypes: number[] = []): Buffer {
  const w = new Writer(FRONTEND.Parse, sql.length + 16).cstr(statement).cstr(sql).u16(paramTypes.length);
  for (const t of paramTypes) w.u32(t);
  return w.finish();
}

/** Strings are sent as their UTF-8 bytes; null is SQL NULL (length -1). */
export function encodeBind(
  portal: string,
  statement: string,
  paramFormats: number[],
  params: (Buffer | string | null)[],
  resultFormats: number[] = [],
): Buffer {
  const w = new Writer(FRONTEND.Bind, 128).cstr(portal).cstr(statement).i16s(paramFormats);
  return w.values(params).i16s(resultFormats).finish();
}

/** `maxRows` 0 fetches all rows. */
export const encodeExecute = (portal = '', maxRows = 0): Buffer =>
  new Writer(FRONTEND.Execute, 16).cstr(portal).i32(maxRows).finish();
export const encodeDescribe = (kind: 'S' | 'P', name = ''): Buffer =>
  new Writer(FRONTEND.Describe, 16).u8(kind.charCodeAt(0)).cstr(name).finish();
export const encodeClose = (kind: 'S' | 'P', name = ''): Buffer =>
  new Writer(FRONTEND.Close, 16).u8(kind.charCodeAt(0)).cstr(name).finish();
export const encodeSync = (): Buffer => new Writer(FRONTEND.Sync, 5).finish();
export const encodeFlush = (): Buffer => new Writer(FRONTEND.Flush, 5).finish();
export const encodeTerminate = (): Buffer => new Writer(FRONTEND.Terminate, 5).finish();
export const encodeCopyDone = (): Buffer => new Writer(FRONTEND.CopyDone, 5).finish();
export const encodeCopyData = (data: Buffer): Buffer => new Writer(FRONTEND.CopyData, 5 + data.length).bytes(data).finish();
export const encodeCopyFail = (message: string): Buffer => new Writer(FRONTEND.CopyFail).cstr(message).finish();
