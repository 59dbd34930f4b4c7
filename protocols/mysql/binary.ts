/**
 * MySQL/MariaDB prepared-statement requests: COM_STMT_EXECUTE (0x17) and
 * COM_STMT_SEND_LONG_DATA (0x18), decoded into recorded parameters.
 *
 * Every function takes the payload AFTER the command byte. Nothing here reads
 * past the end of a payload: a malformed or truncated one throws a
 * WicketError (WICKET_ERR_PROTOCOL) whose message starts with the command name.
 *
 * COM_STMT_EXECUTE (stmt_id int<4>, flags int<1>, iteration_count int<4>,
 * then when num_params > 0: NULL bitmap, new_params_bound_flag int<1>,
 * [type int<1> + flags int<1>] x num_params when the flag is set, then the
 * values of the parameters that are neither NULL nor sent as long data).
 *
 * Semantics, checked against the server sources (MySQL 8 Protocol_classic::
 * parse_packet + Prepared_statement::insert_params, MariaDB insert_params)
 * and against a live MariaDB 10.11:
 * - A parameter that received COM_STMT_SEND_LONG_DATA takes the chunks,
 *   concatenated, as its value; it has no bytes in the value section and its
 *   NULL bit is ignored (long data wins). The server clears long data after
 *   each execute and on COM_STMT_RESET: that bookkeeping is the caller's.
 * - new_params_bound_flag: any non-zero byte means types follow (the servers
 *   test it as a boolean). When it is 0 the types of the previous execute of
 *   the same statement apply.
 * - Not supported (wicket advertises neither): CLIENT_QUERY_ATTRIBUTES
 *   (flags & 0x08, PARAMETER_COUNT_AVAILABLE: a parameter count and names
 *   are inserted) and MariaDB bulk/array execution (iteration_count != 1, or
 *   the 0x40 "indicator variable" parameter flag). Each throws a clear error,
 *   as do bytes left over after the last value.
 *
 * Rendering (QueryParam.type is the MySQL type code):
 * - integers as decimal text, honouring the unsigned flag (0x80);
 * - FLOAT as the shortest decimal that reads back as the same float32
 *   (0.1, not 0.10000000149011612), DOUBLE as JavaScript prints it;
 * - DATE 'YYYY-MM-DD' (the server ignores time parts sent with a DATE);
 *   DATETIME/TIMESTAMP 'YYYY-MM-DD HH:MM:SS[.ffffff][+HH:MM]', the fraction
 *   shown only when non-zero, the zone only for the 13-byte MySQL 8.0.19+
 *   form; the 0-byte form is all zeros;
 * - TIME '[-]HH:MM:SS[.ffffff]' with hours = days * 24 + hour, i.e. the way
 *   MySQL shows TIME values ('-838:59:59'). The value is recorded as sent:
 *   the server clamps anything beyond 838:59:59, this decoder does not.
 * - strings, DECIMAL, JSON, ENUM/SET, BLOBs, BIT, GEOMETRY and long data:
 *   UTF-8 text when the bytes are valid UTF-8 without control characters
 *   other than \t \r \n, else format 'binary' with hex; both capped like
 *   recordings/queries.ts paramText (MAX_PARAM_BYTES, marker naming the
 *   full size), decoding only the kept head.
 *
 * Fixed-width integer encodings follow the documented Binary Protocol Value
 * (INT24 as int<4>, YEAR as int<2>). Servers disagree on those two as
 * parameter types: MySQL 8 reads INT24/YEAR/BIT/GEOMETRY parameters as
 * length-encoded strings, MariaDB 10.11 binds them to NULL without consuming
 * any value bytes. Standard client libraries do not send them.
 */
import { StringDecoder } from 'node:string_decoder';
import { MAX_PARAM_BYTES, paramText } from '../../recordings/queries.js';
import { WicketError } from '../../src/errors.js';
import type { QueryParam } from '../../src/session.js';

export interface ParamType {
  readonly type: number;
  readonly unsigned: boolean;
}

export interface ExecuteRequest {
  readonly stmtId: number;
  /** Cursor type byte (0 no cursor, 1 read only, 2 for update, 4 scrollable). */
  readonly flags: number;
  readonly params: QueryParam[];
  /** The types in effect for this execute (sent now, or the previous ones): pass them to the next execute. */
  readonly types: readonly ParamType[];
}

/** enum_field_types codes. */
export const MysqlType = {
  DECIMAL: 0x00,
  TINY: 0x01,
  SHORT: 0x02,
  LONG: 0x03,
  FLOAT: 0x04,
  DOUBLE: 0x05,
  NULL: 0x06,
  TIMESTAMP: 0x07,
  LONGLONG: 0x08,
  INT24: 0x09,
  DATE: 0x0a,
  TIME: 0x0b,
  DATETIME: 0x0c,
  YEAR: 0x0d,
  VARCHAR: 0x0f,
  BIT: 0x10,
  JSON: 0xf5,
  NEWDECIMAL: 0xf6,
  ENUM: 0xf7,
  SET: 0xf8,
  TINY_BLOB: 0xf9,
  MEDIUM_BLOB: 0xfa,
  LONG_BLOB: 0xfb,
  BLOB: 0xfc,
  VAR_STRING: 0xfd,
  STRING: 0xfe,
  GEOMETRY: 0xff,
} as const;

const T = MysqlType;

/** Types whose value is a length-encoded byte string. */
const LENENC_TYPES: ReadonlySet<number> = new Set([
  T.DECIMAL,
  T.NEWDECIMAL,
  T.VARCHAR,
  T.BIT,
  T.JSON,
  T.ENUM,
  T.SET,
  T.TINY_BLOB,
  T.MEDIUM_BLOB,
  T.LONG_BLOB,
  T.BLOB,
  T.VAR_STRING,
  T.STRING,
  T.GEOMETRY,
]);

const KNOWN_TYPES: ReadonlySet<number> = new Set([
  ...LENENC_TYPES,
  T.TINY,
  T.SHORT,
  T.LONG,
  T.FLOAT,
  T.DOUBLE,
  T.NULL,
  T.TIMESTAMP,
  T.LONGLONG,
  T.INT24,
  T.DATE,
  T.TIME,
  T.DATETIME,
  T.YEAR,
]);

const UNSIGNED_FLAG = 0x80;
/** MariaDB STMT_BULK_OPERATIONS indicator-variable parameter flag. */
const INDICATOR_FLAG = 0x40;
/** enum_cursor_type PARAMETER_COUNT_AVAILABLE: set by clients sending query attributes. */
const PARAMETER_COUNT_AVAILABLE = 0x08;

const hex2 = (n: number): string => `0x${n.toString(16).padStart(2, '0')}`;

/** Bounds-checked little-endian reader: every read checks first, so Buffer never throws RangeError. */
class Reader {
  pos = 0;
  constructor(
    private readonly buf: Buffer,
    private readonly what: string,
  ) {}

  fail(msg: string): never {
    throw new WicketError('WICKET_ERR_PROTOCOL', `${this.what}: ${msg}`);
  }

  get left(): number {
    return this.buf.length - this.pos;
  }

  private need(n: number, field: string): number {
    if (n > this.left) this.fail(`truncated payload: ${field} needs ${n} byte(s) at offset ${this.pos}, ${this.left} left`);
    const at = this.pos;
    this.pos += n;
    return at;
  }

  u8(field: string): number {
    return this.buf.readUInt8(this.need(1, field));
  }
  i8(field: string): number {
    return this.buf.readInt8(this.need(1, field));
  }
  u16(field: string): number {
    return this.buf.readUInt16LE(this.need(2, field));
  }
  i16(field: string): number {
    return this.buf.readInt16LE(this.need(2, field));
  }
  u32(field: string): number {
    return this.buf.readUInt32LE(this.need(4, field));
  }
  i32(field: string): number {
    return this.buf.readInt32LE(this.need(4, field));
  }
  u64(field: string): bigint {
    return this.buf.readBigUInt64LE(this.need(8, field));
  }
  i64(field: string): bigint {
    return this.buf.readBigInt64LE(this.need(8, field));
  }
  f32(field: string): number {
    return this.buf.readFloatLE(this.need(4, field));
  }
  f64(field: string): number {
    return this.buf.readDoubleLE(this.need(8, field));
  }
  bytes(n: number, field: string): Buffer {
    const at = this.need(n, field);
    return this.buf.subarray(at, at + n);
  }

  /** int<lenenc>; 0xfb (NULL) and 0xff (undefined) are invalid as a length. */
  lenenc(field: string): number {
    const first = this.u8(field);
    if (first < 0xfb) return first;
    if (first === 0xfc) return this.u16(field);
    if (first === 0xfd) {
      const at = this.need(3, field);
      return this.buf.readUIntLE(at, 3);
    }
    if (first === 0xfe) {
      const n = this.u64(field);
      if (n > BigInt(this.left)) this.fail(`${field}: length ${n} exceeds the ${this.left} byte(s) left in the payload`);
      return Number(n);
    }
    this.fail(`${field}: ${hex2(first)} is not a valid length-encoded integer prefix here`);
  }

  /** string<lenenc> as a view of the payload. */
  lenencBytes(field: string): Buffer {
    const n = this.lenenc(field);
    if (n > this.left) this.fail(`truncated payload: ${field} declares ${n} byte(s) at offset ${this.pos}, ${this.left} left`);
    return this.bytes(n, field);
  }
}

/*
 * UTF-8 validation that also spots control characters, fed chunk by chunk so
 * long data split mid-character still validates. No string is built.
 * Control characters: C0 except \t \n \r, DEL, and C1 (U+0080..U+009F).
 */
class TextCheck {
  private need = 0;
  private lo = 0x80;
  private hi = 0xbf;
  private c2 = false;
  ok = true;

  feed(buf: Buffer): void {
    for (let i = 0; i < buf.length && this.ok; i++) {
      const b = buf[i]!;
      if (this.need > 0) {
        if (b < this.lo || b > this.hi) return this.bad();
        if (this.c2 && b <= 0x9f) return this.bad(); // U+0080..U+009F
        this.c2 = false;
        this.lo = 0x80;
        this.hi = 0xbf;
        this.need--;
        continue;
      }
      if (b < 0x80) {
        if ((b < 0x20 && b !== 0x09 && b !== 0x0a && b !== 0x0d) || b === 0x7f) return this.bad();
      } else if (b >= 0xc2 && b <= 0xdf) {
        this.need = 1;
        this.c2 = b === 0xc2;
      } else if (b >= 0xe0 && b <= 0xef) {
        this.need = 2;
        if (b === 0xe0) this.lo = 0xa0; // no overlongs
        if (b === 0xed) this.hi = 0x9f; // no surrogates
      } else if (b >= 0xf0 && b <= 0xf4) {
        this.need = 3;
        if (b === 0xf0) this.lo = 0x90;
        if (b === 0xf4) this.hi = 0x8f; // <= U+10FFFF
      } else {
        return this.bad();
      }
    }
  }

  /** True when every byte fed is complete, valid, control-free UTF-8. */
  end(): boolean {
    return this.ok && this.need === 0;
  }

  private bad(): void {
    this.ok = false;
  }
}

function bytesParam(type: number, chunks: readonly Buffer[]): QueryParam {
  const check = new TextCheck();
  let total = 0;
  for (const c of chunks) {
    check.feed(c);
    total += c.length;
  }
  const text = check.end();
  const encoding = text ? 'utf8' : 'hex';
  const format = text ? 'text' : 'binary';
  if (chunks.length === 1) return { type, format, value: paramText(chunks[0]!, encoding) };
  // Chunked long data: join only the head that can be kept (never more than MAX_PARAM_BYTES bytes).
  const full = encoding === 'hex' ? total * 2 : total;
  if (full <= MAX_PARAM_BYTES) return { type, format, value: paramText(Buffer.concat(chunks, total), encoding) };
  // Same cut as paramText, with the marker naming the whole long-data length.
  const marker = `…[truncated by wicket: ${total} bytes total]`;
  const room = Math.max(0, MAX_PARAM_BYTES - Buffer.byteLength(marker));
  const want = encoding === 'hex' ? room >> 1 : room;
  const head: Buffer[] = [];
  let have = 0;
  for (const c of chunks) {
    if (have >= want) break;
    const take = c.subarray(0, want - have);
    head.push(take);
    have += take.length;
  }
  const headBuf = Buffer.concat(head, have);
  const kept = encoding === 'hex' ? headBuf.toString('hex') : new StringDecoder('utf8').write(headBuf);
  return { type, format, value: kept + marker };
}

const pad = (n: number, w = 2): string => String(n).padStart(w, '0');

function floatText(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  if (Object.is(v, -0)) return '-0';
  for (let p = 1; p <= 9; p++) {
    const n = Number(v.toPrecision(p));
    if (Math.fround(n) === v) return String(n);
  }
  return String(v);
}

function doubleText(v: number): string {
  return Object.is(v, -0) ? '-0' : String(v);
}

function dateTimeText(r: Reader, type: number): string {
  const len = r.u8('date/time length');
  if (len !== 0 && len !== 4 && len !== 7 && len !== 11 && len !== 13) r.fail(`invalid ${typeName(type)} length ${len} (expected 0, 4, 7, 11 or 13)`);
  if (len > r.left) r.fail(`truncated payload: ${typeName(type)} declares ${len} byte(s) at offset ${r.pos}, ${r.left} left`);
  let year = 0;
  let month = 0;
  let day = 0;
  let hour = 0;
  let minute = 0;
  let second = 0;
  let micro = 0;
  let zone: number | null = null;
  if (len >= 4) {
    year = r.u16('year');
    month = r.u8('month');
    day = r.u8('day');
  }
  if (len >= 7) {
    hour = r.u8('hour');
    minute = r.u8('minute');
    second = r.u8('second');
  }
  if (len >= 11) micro = r.u32('microsecond');
  if (len >= 13) zone = r.i16('time zone');
  const date = `${pad(year, 4)}-${pad(month)}-${pad(day)}`;
  if (type === T.DATE) return date;
  let s = `${date} ${pad(hour)}:${pad(minute)}:${pad(second)}`;
  if (micro !== 0) s += `.${pad(micro, 6)}`;
  if (zone !== null) s += `${zone < 0 ? '-' : '+'}${pad(Math.floor(Math.abs(zone) / 60))}:${pad(Math.abs(zone) % 60)}`;
  return s;
}

function timeText(r: Reader): string {
  const len = r.u8('TIME length');
  if (len !== 0 && len !== 8 && len !== 12) r.fail(`invalid TIME length ${len} (expected 0, 8 or 12)`);
  if (len > r.left) r.fail(`truncated payload: TIME declares ${len} byte(s) at offset ${r.pos}, ${r.left} left`);
  if (len === 0) return '00:00:00';
  const negative = r.u8('TIME sign') !== 0;
  const days = r.u32('TIME days');
  const hours = days * 24 + r.u8('TIME hour');
  const minute = r.u8('TIME minute');
  const second = r.u8('TIME second');
  const micro = len === 12 ? r.u32('TIME microsecond') : 0;
  let s = `${negative ? '-' : ''}${pad(hours)}:${pad(minute)}:${pad(second)}`;
  if (micro !== 0) s += `.${pad(micro, 6)}`;
  return s;
}

const TYPE_NAMES: Readonly<Record<number, string>> = Object.fromEntries(Object.entries(T).map(([k, v]) => [v, k]));
const typeName = (type: number): string => TYPE_NAMES[type] ?? `type ${hex2(type)}`;

function valueParam(r: Reader, p: ParamType, index: number): QueryParam {
  const { type, unsigned } = p;
  const text = (value: string): QueryParam => ({ type, format: 'text', value });
  const f = `parameter ${index + 1} (${typeName(type)})`;
  switch (type) {
    case T.TINY:
      return text(String(unsigned ? r.u8(f) : r.i8(f)));
    case T.SHORT:
    case T.YEAR:
      return text(String(unsigned ? r.u16(f) : r.i16(f)));
    case T.LONG:
    case T.INT24:
      return text(String(unsigned ? r.u32(f) : r.i32(f)));
    case T.LONGLONG:
      return text((unsigned ? r.u64(f) : r.i64(f)).toString());
    case T.FLOAT:
      return text(floatText(r.f32(f)));
    case T.DOUBLE:
      return text(doubleText(r.f64(f)));
    case T.DATE:
    case T.DATETIME:
    case T.TIMESTAMP:
      return text(dateTimeText(r, type));
    case T.TIME:
      return text(timeText(r));
    case T.NULL:
      return r.fail(`${f}: type NULL but its NULL bit is not set`);
    default:
      if (LENENC_TYPES.has(type)) return bytesParam(type, [r.lenencBytes(f)]);
      return r.fail(`${f}: unknown type code`);
  }
}

function checkType(r: Reader, t: ParamType, index: number): void {
  if (!KNOWN_TYPES.has(t.type)) r.fail(`parameter ${index + 1}: unknown type code ${hex2(t.type)}`);
}

/**
 * Decodes a COM_STMT_EXECUTE payload (after the 0x17 byte). `numParams`
 * comes from the statement's COM_STMT_PREPARE_OK; `previousTypes` are the
 * `types` of the previous execute of the same statement (used when the
 * client does not resend them); `longData` maps a parameter index to the
 * COM_STMT_SEND_LONG_DATA chunks received for it since the last
 * execute/reset.
 */
export function decodeExecute(
  payload: Buffer,
  numParams: number,
  previousTypes: readonly ParamType[] | null,
  longData: ReadonlyMap<number, Buffer[]> | null,
): ExecuteRequest {
  const r: Reader = new Reader(payload, 'COM_STMT_EXECUTE');
  if (!Number.isInteger(numParams) || numParams < 0 || numParams > 0xffff) r.fail(`invalid parameter count ${numParams}`);
  const stmtId = r.u32('statement id');
  const flags = r.u8('flags');
  if (flags & PARAMETER_COUNT_AVAILABLE) r.fail(`flags ${hex2(flags)} announce query attributes (CLIENT_QUERY_ATTRIBUTES), which wicket does not support`);
  const iterations = r.u32('iteration count');
  if (iterations !== 1) r.fail(`iteration count ${iterations} is not 1 (MariaDB array/bulk execution is not supported)`);
  const params: QueryParam[] = [];
  let types: readonly ParamType[] = [];
  if (numParams > 0) {
    const nullBitmap = r.bytes((numParams + 7) >> 3, 'NULL bitmap');
    const bound = r.u8('new_params_bound_flag');
    if (bound !== 0) {
      const sent: ParamType[] = [];
      for (let i = 0; i < numParams; i++) {
        const type = r.u8(`parameter ${i + 1} type`);
        const pflags = r.u8(`parameter ${i + 1} type flags`);
        if (pflags & INDICATOR_FLAG) r.fail(`parameter ${i + 1}: indicator-variable flag (MariaDB bulk operations) is not supported`);
        if (pflags & ~UNSIGNED_FLAG) r.fail(`parameter ${i + 1}: unknown type flags ${hex2(pflags)}`);
        sent.push({ type, unsigned: (pflags & UNSIGNED_FLAG) !== 0 });
      }
      types = sent;
    } else {
      if (previousTypes === null) r.fail('new_params_bound_flag is 0 but no earlier execute of this statement supplied parameter types');
      if (previousTypes.length !== numParams) r.fail(`previous parameter types cover ${previousTypes.length} parameter(s), the statement has ${numParams}`);
      types = previousTypes.map((t) => ({ type: t.type, unsigned: t.unsigned }));
    }
    types.forEach((t, i) => checkType(r, t, i));
    for (let i = 0; i < numParams; i++) {
      const t = types[i]!;
      const chunks = longData?.get(i);
      if (chunks !== undefined) {
        // Long data wins over the NULL bit and has no bytes in the value section.
        params.push(bytesParam(t.type, chunks.length > 0 ? chunks : [Buffer.alloc(0)]));
      } else if (nullBitmap[i >> 3]! & (1 << (i & 7))) {
        params.push({ type: t.type, format: 'null', value: null });
      } else {
        params.push(valueParam(r, t, i));
      }
    }
  }
  if (r.left > 0) r.fail(`${r.left} unexpected byte(s) after the parameter values at offset ${r.pos} (query attributes or bulk execution are not supported)`);
  return { stmtId, flags, params, types };
}

/**
 * Decodes a COM_STMT_SEND_LONG_DATA payload (after the 0x18 byte). `data` is
 * a view into `payload`: copy it if the payload's memory is reused.
 */
export function decodeLongData(payload: Buffer): { stmtId: number; paramId: number; data: Buffer } {
  const r = new Reader(payload, 'COM_STMT_SEND_LONG_DATA');
  const stmtId = r.u32('statement id');
  const paramId = r.u16('parameter id');
  return { stmtId, paramId, data: payload.subarray(r.pos) };
}

/** The statement id that starts COM_STMT_CLOSE / RESET / FETCH / EXECUTE / SEND_LONG_DATA payloads. */
export function stmtIdOf(payload: Buffer): number {
  return new Reader(payload, 'COM_STMT statement id').u32('statement id');
}
