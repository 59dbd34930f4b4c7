/**
 * PostgreSQL wire framing (protocol 3.x) and the byte-level Reader/Writer
 * shared by frontend.ts and backend.ts. No I/O happens here.
 *
 * After the startup phase every message in both directions is
 *   Byte1 type | Int32 length (counts itself and the body, not the type byte) | body
 * so a frame is 1 + length bytes and the smallest legal length is 4.
 * All integers on the wire are big-endian (network order).
 */
import { WicketError } from '../../src/errors.js';

/** Bytes of the typed-message header: type byte + Int32 length. */
export const HEADER_BYTES = 5;
const NO_BYTES = Buffer.alloc(0);

/**
 * Called once per complete message. `type` is the type byte, `body` excludes
 * the 5-byte header and `frame` is the whole message. Both are views that are
 * valid ONLY until the callback returns: they alias the pushed chunk (or a
 * buffer the parser assembled), so callers copy whatever they keep.
 */
export type FrameHandler = (type: number, body: Buffer, frame: Buffer) => void;

/**
 * Allocation-free form: the frame is `buf[start, end)` and its body
 * `buf[start + 5, end)`. `buf` is the pushed chunk or an assembled frame;
 * same lifetime rule as FrameHandler (valid only during the callback).
 */
export type FrameSpanHandler = (type: number, buf: Buffer, start: number, end: number) => void;

/**
 * `idle`: no partial frame held. `header`: 1..4 header bytes held in `head`.
 * `body`: header validated, `partial` being filled. `dead`: a protocol error
 * (or a throwing handler) ended the stream.
 */
type FrameState = 'idle' | 'header' | 'body' | 'dead';

export class FrameParser {
  readonly maxMessageBytes: number;
  private state: FrameState = 'idle';
  /** Header bytes of a frame whose header straddles chunks (state `header`). */
  private readonly head = Buffer.alloc(HEADER_BYTES);
  private headLen = 0;
  /**
   * Frame being assembled across chunks (state `body`), owned by the parser.
   * It grows with the bytes that actually arrived (at most 2x, never past
   * `frameLen`), so a header that announces 64 MB costs nothing by itself.
   */
  private partial = NO_BYTES;
  private frameLen = 0;
  private filled = 0;
  private failure = '';

  /** `maxMessageBytes` caps the length field (which includes its own 4 bytes). */
  constructor(opts: { maxMessageBytes: number }) {
    const max = opts.maxMessageBytes;
    if (!Number.isInteger(max) || max < 4 || max > 0x7fffffff) {
      throw new WicketError('WICKET_ERR_INTERNAL', `maxMessageBytes must be an integer from 4 to 2147483647, got ${max}`);
    }
    this.maxMessageBytes = max;
  }

  /** Bytes of an incomplete frame held between pushes (what the cap bounds). */
  get bufferedBytes(): number {
    return this.state === 'header' ? this.headLen : this.state === 'body' ? this.filled : 0;
  }

  /**
   * Feed bytes in arrival order. The chunk is never mutated or retained past
   * this call: frames wholly inside it are handed over as subarrays (zero
   * copy); only a frame spanning chunks is copied into one assembled buffer.
   * Throws WICKET_ERR_PROTOCOL on a bad length; after any throw (including
   * one from `onFrame`) the parser is dead and every later push throws.
   * `onFrame` must not call push() on the same parser.
   */
  push(chunk: Buffer, onFrame: FrameHandler): void {
    this.pushSpans(chunk, (type, buf, start, end) =>
      onFrame(type, buf.subarray(start + HEADER_BYTES, end), buf.subarray(start, end)));
  }

  /**
   * push() without the two subarray views per frame: for hot relay paths
   * (DataRow counting) that only look at the type byte or a few body bytes.
   */
  pushSpans(chunk: Buffer, onFrame: FrameSpanHandler): void {
    if (this.state === 'dead') throw new WicketError('WICKET_ERR_PROTOCOL', `stream already failed: ${this.failure}`);
    try {
      this.consume(chunk, onFrame);
    } catch (e) {
      this.state = 'dead';
      this.partial = NO_BYTES;
      this.failure = e instanceof Error ? e.message : String(e);
      throw e;
    }
  }

  private consume(chunk: Buffer, onFrame: FrameSpanHandler): void {
    const n = chunk.length;
    let pos = this.state === 'idle' ? 0 : this.resume(chunk, onFrame);
    if (this.state !== 'idle') return; // chunk used up inside a partial frame
    // Fast path: whole frames inside this chunk, no copies.
    while (n - pos >= HEADER_BYTES) {
      const type = chunk[pos]!;
      const len = chunk.readInt32BE(pos + 1);
      this.check(type, len);
      const end = pos + 1 + len;
      if (end > n) break;
      onFrame(type, chunk, pos, end);
      pos = end;
    }
    if (pos === n) return;
    if (n - pos < HEADER_BYTES) {
      this.headLen = chunk.copy(this.head, 0, pos, n);
      this.state = 'header';
    } else {
      this.startPartial(chunk.readInt32BE(pos + 1));
      this.append(chunk, pos, n);
    }
  }

  /** Continue a frame left over from earlier chunks; returns the chunk offset reached. */
  private resume(chunk: Buffer, onFrame: FrameSpanHandler): number {
    let pos = 0;
    if (this.state === 'header') {
      const take = Math.min(HEADER_BYTES - this.headLen, chunk.length);
      chunk.copy(this.head, this.headLen, 0, take);
      this.headLen += take;
      pos = take;
      if (this.headLen < HEADER_BYTES) return pos;
      const len = this.head.readInt32BE(1);
      this.check(this.head[0]!, len);
      this.startPartial(len);
      this.append(this.head, 0, HEADER_BYTES);
    }
    const take = Math.min(this.frameLen - this.filled, chunk.length - pos);
    this.append(chunk, pos, pos + take);
    pos += take;
    if (this.filled === this.frameLen) {
      const frame = this.partial; // capacity never exceeds frameLen, so this is exactly the frame
      this.state = 'idle';
      this.partial = NO_BYTES;
      onFrame(frame[0]!, frame, 0, frame.length);
    }
    return pos;
  }

  private startPartial(len: number): void {
    this.frameLen = 1 + len;
    this.filled = 0;
    this.state = 'body';
  }

  private append(src: Buffer, from: number, to: number): void {
    const need = this.filled + to - from;
    if (need > this.partial.length) {
      const grown = Buffer.allocUnsafe(Math.min(this.frameLen, Math.max(need, this.partial.length * 2, 4096)));
      this.partial.copy(grown, 0, 0, this.filled);
      this.partial = grown;
    }
    this.filled += src.copy(this.partial, this.filled, from, to);
  }

  private check(type: number, len: number): void {
    if (len >= 4 && len <= this.maxMessageBytes) return;
    const message = len < 4
      ? `invalid length ${len} for message type ${typeName(type)} (minimum is 4)`
      : `message of ${len} bytes exceeds the ${this.maxMessageBytes}-byte limit`;
    throw new WicketError('WICKET_ERR_PROTOCOL', message, { type: typeName(type), length: len });
  }
}

/** 'Q' for printable type bytes, 0x00-style hex otherwise (for messages). */
export function typeName(type: number): string {
  return type >= 0x21 && type <= 0x7e ? `'${String.fromCharCode(type)}'` : `0x${type.toString(16).padStart(2, '0')}`;
}

export const protocolError = (message: string): WicketError => new WicketError('WICKET_ERR_PROTOCOL', message);

/**
 * Bounds-checked cursor over one message body; errors read `malformed <Name> message: <detail>`.
 * A `%` in a field label becomes `index` (only on the error path, so labels cost nothing).
 * Buffers it returns are copies; strings are UTF-8 and NUL-terminated.
 */
export class Reader {
  pos = 0;
  constructor(readonly buf: Buffer, readonly name: string) {}

  fail(detail: string): never { throw protocolError(`malformed ${this.name} message: ${detail}`); }
  get remaining(): number { return this.buf.length - this.pos; }
  /** Claim `n` bytes; returns their offset. */
  private take(n: number, field: string, index: number): number {
    if (this.buf.length - this.pos < n) this.fail(`${label(field, index)} runs past the end of the message`);
    const at = this.pos;
    this.pos += n;
    return at;
  }
  u8(field: string): number { return this.buf[this.take(1, field, 0)]!; }
  i16(field: string, index = 0): number { return this.buf.readInt16BE(this.take(2, field, index)); }
  u16(field: string, index = 0): number { return this.buf.readUInt16BE(this.take(2, field, index)); }
  i32(field: string, index = 0): number { return this.buf.readInt32BE(this.take(4, field, index)); }
  u32(field: string, index = 0): number { return this.buf.readUInt32BE(this.take(4, field, index)); }
  cstr(field: string, index = 0): string {
    const end = this.buf.indexOf(0, this.pos);
    if (end < 0) this.fail(`${label(field, index)} is not NUL-terminated`);
    const s = this.buf.toString('utf8', this.pos, end);
    this.pos = end + 1;
    return s;
  }
  /** A copy of the next `n` bytes. */
  bytes(n: number, field: string, index = 0): Buffer {
    const at = this.take(n, field, index);
    return Buffer.from(this.buf.subarray(at, at + n));
  }
  /** `count` items of `size` bytes each must fit, checked before any array is built. */
  counted(count: number, size: number, field: string): void {
    if (count * size > this.remaining) this.fail(`${field} ${count} exceeds the message length`);
  }
  /** `count` entries of Int16 (size 2: format codes) or UInt32 (size 4: type OIDs). */
  ints(count: number, size: 2 | 4, field: string): number[] {
    this.counted(count, size, `${field} count`);
    const out = new Array<number>(count);
    for (let i = 0; i < count; i++) out[i] = size === 2 ? this.i16(field) : this.u32(field);
    return out;
  }
  /** A C string that must be the last thing in the body. */
  lastCstr(field: string): string { const s = this.cstr(field); this.end(); return s; }
  /** Every byte must have been consumed. */
  end(): void {
    if (this.pos !== this.buf.length) this.fail(`${this.buf.length - this.pos} unexpected byte(s) after the last field`);
  }
}

const label = (field: string, index: number): string => field.replace('%', String(index));

/** Builds one message; `type` null = untyped startup-phase packet. finish() patches the length. */
export class Writer {
  private buf: Buffer;
  private pos: number;
  private readonly lenAt: number;

  constructor(type: number | null, sizeHint = 64) {
    this.buf = Buffer.allocUnsafe(Math.max(sizeHint, 16));
    this.lenAt = type === null ? 0 : 1;
    if (type !== null) this.buf[0] = type;
    this.pos = this.lenAt + 4;
  }
  /** Make room for `n` more bytes; returns the (possibly regrown) buffer. */
  private room(n: number): Buffer {
    if (this.pos + n > this.buf.length) {
      const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
      this.buf.copy(next, 0, 0, this.pos);
      this.buf = next;
    }
    return this.buf;
  }
  u8(v: number): this { this.room(1)[this.pos++] = v; return this; }
  i16(v: number): this { this.pos = this.room(2).writeInt16BE(v, this.pos); return this; }
  /** Counts are Int16 on the wire, read as unsigned: at most 65535 items. */
  u16(v: number): this {
    if (v > 0xffff) throw protocolError(`cannot encode ${v} items: the protocol allows at most 65535`);
    this.pos = this.room(2).writeUInt16BE(v, this.pos);
    return this;
  }
  i32(v: number): this { this.pos = this.room(4).writeInt32BE(v, this.pos); return this; }
  u32(v: number): this { this.pos = this.room(4).writeUInt32BE(v, this.pos); return this; }
  /** UTF-8 + NUL. A NUL inside would end the C string early, so it is refused. */
  cstr(s: string): this {
    if (s.includes('\0')) throw protocolError('cannot encode a string containing a NUL byte');
    this.bytes(s);
    return this.u8(0);
  }
  bytes(b: Buffer | string): this {
    if (typeof b !== 'string') this.pos += b.copy(this.room(b.length), this.pos);
    else this.pos += this.room(Buffer.byteLength(b)).write(b, this.pos, 'utf8');
    return this;
  }
  /** Int16 count, then each Int16 (format codes). */
  i16s(list: readonly number[]): this {
    this.u16(list.length);
    for (const v of list) this.i16(v);
    return this;
  }
  /** Int16 count, then per value Int32 length (-1 = NULL, no bytes) and its bytes (strings as UTF-8). */
  values(list: readonly (Buffer | string | null)[]): this {
    this.u16(list.length);
    for (const v of list) {
      if (v === null) this.i32(-1);
      else this.i32(typeof v === 'string' ? Buffer.byteLength(v) : v.length).bytes(v);
    }
    return this;
  }
  finish(): Buffer {
    this.buf.writeInt32BE(this.pos - this.lenAt, this.lenAt);
    return this.buf.subarray(0, this.pos);
  }
}
