/**
 * The MySQL packet layer, I/O-free: a 4-byte header (3-byte little-endian
 * payload length, 1-byte sequence id) and the payload. A payload of 2^24 - 1
 * bytes or more travels as several wire packets, each full one (0xFFFFFF
 * bytes) followed by the next, the last shorter (possibly empty); together
 * they are one logical packet.
 *
 * PacketSplitter is a push parser in the manner of ws' Receiver: feed it
 * chunks as they arrive, it calls back once per logical packet. It keeps the
 * whole payload only up to `keepBytes` (the rest of a big row is counted,
 * not copied) and refuses a logical packet over `maxBytes`.
 */

export const MAX_CHUNK = 0xffffff;

export class PacketError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PacketError';
  }
}

export interface LogicalPacket {
  /** Sequence id of the first wire packet. */
  readonly seq: number;
  /** Sequence id of the last wire packet (what the peer's next packet follows). */
  readonly lastSeq: number;
  /** Total payload length. */
  readonly length: number;
  /** The payload, or its first `keepBytes` bytes when it is longer. */
  readonly payload: Buffer;
  /** True when `payload` is the whole payload. */
  readonly complete: boolean;
  /**
   * The packet's wire bytes (header included) when they arrived inside one
   * chunk as one wire packet: forward these instead of re-encoding.
   */
  readonly raw: Buffer | null;
}

export interface SplitterOptions {
  /** A logical packet longer than this is refused (PacketError). */
  readonly maxBytes: number;
  /** Payload bytes kept per packet; the default keeps whole packets. */
  readonly keepBytes?: number;
}

export class PacketSplitter {
  private header = Buffer.alloc(4);
  private headerHave = 0;
  /** Bytes of the current wire packet's payload still to come. */
  private chunkLeft = 0;
  private chunkLen = 0;
  private inChunk = false;
  private firstSeq = -1;
  private lastSeq = 0;
  private total = 0;
  private parts: Buffer[] = [];
  private kept = 0;
  /** Offset in the current chunk where this logical packet's header began; -1 when it began earlier or spans wire packets. */
  private rawStart = -1;
  private readonly maxBytes: number;
  private readonly keepBytes: number;

  constructor(opts: SplitterOptions) {
    this.maxBytes = opts.maxBytes;
    this.keepBytes = opts.keepBytes ?? opts.maxBytes;
  }

  /** True when no packet is half-read. */
  get idle(): boolean {
    return this.headerHave === 0 && !this.inChunk && this.firstSeq < 0;
  }

  push(chunk: Buffer, onPacket: (p: LogicalPacket) => void): void {
    // A packet carried over from the previous chunk has no raw bytes in this one.
    if (this.firstSeq >= 0) this.rawStart = -1;
    let off = 0;
    while (off < chunk.length) {
      if (!this.inChunk) {
        const startsHere = this.headerHave === 0;
        const headerAt = off;
        const take = Math.min(4 - this.headerHave, chunk.length - off);
        chunk.copy(this.header, this.headerHave, off, off + take);
        this.headerHave += take;
        off += take;
        if (this.headerHave < 4) return;
        this.headerHave = 0;
        this.chunkLen = this.header.readUIntLE(0, 3);
        const seq = this.header[3]!;
        if (this.firstSeq < 0) {
          this.firstSeq = seq;
          this.rawStart = startsHere ? headerAt : -1;
        } else {
          if (seq !== ((this.lastSeq + 1) & 0xff)) throw new PacketError(`packet continuation out of sequence (expected ${(this.lastSeq + 1) & 0xff}, got ${seq})`);
          this.rawStart = -1;
        }
        this.lastSeq = seq;
        this.total += this.chunkLen;
        if (this.total > this.maxBytes) throw new PacketError(`packet of more than ${this.maxBytes} bytes refused (limit)`);
        this.chunkLeft = this.chunkLen;
        this.inChunk = true;
      }
      const take = Math.min(this.chunkLeft, chunk.length - off);
      if (take > 0) {
        const room = this.keepBytes - this.kept;
        if (room > 0) {
          const keep = Math.min(room, take);
          this.parts.push(chunk.subarray(off, off + keep));
          this.kept += keep;
        }
        off += take;
        this.chunkLeft -= take;
      }
      if (this.chunkLeft === 0) {
        this.inChunk = false;
        if (this.chunkLen < MAX_CHUNK) this.emit(onPacket, this.rawStart >= 0 && this.kept === this.total ? chunk.subarray(this.rawStart, off) : null);
      }
    }
  }

  private emit(onPacket: (p: LogicalPacket) => void, raw: Buffer | null): void {
    const parts = this.parts;
    const payload = parts.length === 1 ? parts[0]! : Buffer.concat(parts, this.kept);
    const p: LogicalPacket = { seq: this.firstSeq, lastSeq: this.lastSeq, length: this.total, payload, complete: this.kept === this.total, raw };
    this.parts = [];
    this.kept = 0;
    this.total = 0;
    this.firstSeq = -1;
    this.rawStart = -1;
    onPacket(p);
  }
}

/**
 * Wire bytes for one logical packet starting at `seq`; payloads of 0xFFFFFF
 * bytes or more are split (and end with a shorter, possibly empty, packet).
 * Returns the bytes and the sequence id of the last wire packet.
 */
export function encodePacket(seq: number, payload: Buffer): { bytes: Buffer; lastSeq: number } {
  if (payload.length < MAX_CHUNK) {
    const out = Buffer.allocUnsafe(4 + payload.length);
    out.writeUIntLE(payload.length, 0, 3);
    out[3] = seq & 0xff;
    payload.copy(out, 4);
    return { bytes: out, lastSeq: seq & 0xff };
  }
  const parts: Buffer[] = [];
  let s = seq;
  let off = 0;
  for (;;) {
    const len = Math.min(MAX_CHUNK, payload.length - off);
    const h = Buffer.allocUnsafe(4);
    h.writeUIntLE(len, 0, 3);
    h[3] = s & 0xff;
    parts.push(h, payload.subarray(off, off + len));
    off += len;
    if (len < MAX_CHUNK) break;
    s++;
  }
  return { bytes: Buffer.concat(parts), lastSeq: s & 0xff };
}

// ------------------------------------------------------------- field codecs

/** A bounds-checked reader over one payload; every read past the end throws PacketError. */
export class Reader {
  pos: number;
  constructor(readonly buf: Buffer, pos = 0) {
    this.pos = pos;
  }

  get left(): number {
    return this.buf.length - this.pos;
  }

  private need(n: number, what: string): void {
    if (this.pos + n > this.buf.length) throw new PacketError(`truncated packet: ${what} needs ${n} bytes, ${this.left} left`);
  }

  u8(what = 'int<1>'): number {
    this.need(1, what);
    return this.buf[this.pos++]!;
  }

  u16(what = 'int<2>'): number {
    this.need(2, what);
    const v = this.buf.readUInt16LE(this.pos);
    this.pos += 2;
    return v;
  }

  u24(what = 'int<3>'): number {
    this.need(3, what);
    const v = this.buf.readUIntLE(this.pos, 3);
    this.pos += 3;
    return v;
  }

  u32(what = 'int<4>'): number {
    this.need(4, what);
    const v = this.buf.readUInt32LE(this.pos);
    this.pos += 4;
    return v;
  }

  bytes(n: number, what = 'bytes'): Buffer {
    this.need(n, what);
    const v = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }

  /** Length-encoded integer; null for the NULL marker 0xFB. Values over 2^53 throw. */
  lenenc(what = 'length-encoded int'): number | null {
    const first = this.u8(what);
    if (first < 0xfb) return first;
    if (first === 0xfb) return null;
    if (first === 0xfc) return this.u16(what);
    if (first === 0xfd) return this.u24(what);
    if (first === 0xfe) {
      this.need(8, what);
      const v = this.buf.readBigUInt64LE(this.pos);
      this.pos += 8;
      if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new PacketError(`${what} too large`);
      return Number(v);
    }
    throw new PacketError(`invalid ${what} (0xff)`);
  }

  lenencBytes(what = 'length-encoded string'): Buffer | null {
    const n = this.lenenc(what);
    return n === null ? null : this.bytes(n, what);
  }

  /** NUL-terminated string (the NUL is consumed). */
  nulString(what = 'string'): Buffer {
    const end = this.buf.indexOf(0, this.pos);
    if (end < 0) throw new PacketError(`truncated packet: ${what} has no terminating NUL`);
    const v = this.buf.subarray(this.pos, end);
    this.pos = end + 1;
    return v;
  }

  rest(): Buffer {
    const v = this.buf.subarray(this.pos);
    this.pos = this.buf.length;
    return v;
  }
}

export function lenencInt(n: number): Buffer {
  if (n < 0xfb) return Buffer.from([n]);
  if (n < 0x10000) {
    const b = Buffer.allocUnsafe(3);
    b[0] = 0xfc;
    b.writeUInt16LE(n, 1);
    return b;
  }
  if (n < 0x1000000) {
    const b = Buffer.allocUnsafe(4);
    b[0] = 0xfd;
    b.writeUIntLE(n, 1, 3);
    return b;
  }
  const b = Buffer.allocUnsafe(9);
  b[0] = 0xfe;
  b.writeBigUInt64LE(BigInt(n), 1);
  return b;
}

export function lenencString(s: Buffer | string): Buffer {
  const b = typeof s === 'string' ? Buffer.from(s, 'utf8') : s;
  return Buffer.concat([lenencInt(b.length), b]);
}

// ------------------------------------------------------- generic responses

/** Server status flags (SERVER_STATUS_*) wicket looks at. */
export const STATUS = {
  IN_TRANS: 0x0001,
  AUTOCOMMIT: 0x0002,
  MORE_RESULTS_EXISTS: 0x0008,
  CURSOR_EXISTS: 0x0040,
  LAST_ROW_SENT: 0x0080,
  PS_OUT_PARAMS: 0x1000,
} as const;

export interface OkPacket {
  readonly affectedRows: number;
  readonly lastInsertId: number;
  readonly status: number;
  readonly warnings: number;
  readonly info: string;
}

export interface ErrPacket {
  readonly code: number;
  readonly sqlState: string;
  readonly message: string;
}

/** OK (0x00) or the 0xFE OK that ends a result set under CLIENT_DEPRECATE_EOF. Lenient about trailing fields. */
export function parseOk(payload: Buffer): OkPacket {
  const r = new Reader(payload, 1);
  const affectedRows = r.lenenc('affected rows') ?? 0;
  const lastInsertId = r.lenenc('last insert id') ?? 0;
  const status = r.left >= 2 ? r.u16() : 0;
  const warnings = r.left >= 2 ? r.u16() : 0;
  // Without CLIENT_SESSION_TRACK the info is the rest of the packet; with it a length-encoded string.
  const info = r.left > 0 ? r.rest().toString('utf8') : '';
  return { affectedRows, lastInsertId, status, warnings, info };
}

/** Old-style EOF (0xFE, < 9 bytes): warnings and status. */
export function parseEof(payload: Buffer): { warnings: number; status: number } {
  if (payload.length < 5) return { warnings: 0, status: 0 };
  return { warnings: payload.readUInt16LE(1), status: payload.readUInt16LE(3) };
}

export function parseErr(payload: Buffer): ErrPacket {
  const r = new Reader(payload, 1);
  const code = r.left >= 2 ? r.u16() : 0;
  let sqlState = 'HY000';
  if (r.left >= 6 && payload[r.pos] === 0x23 /* # */) {
    r.pos++;
    sqlState = r.bytes(5).toString('latin1');
  }
  return { code, sqlState, message: r.rest().toString('utf8') };
}

export function okPayload(opts: { affectedRows?: number; lastInsertId?: number; status?: number; warnings?: number; header?: 0x00 | 0xfe } = {}): Buffer {
  const h = Buffer.from([opts.header ?? 0x00]);
  const tail = Buffer.allocUnsafe(4);
  tail.writeUInt16LE(opts.status ?? STATUS.AUTOCOMMIT, 0);
  tail.writeUInt16LE(opts.warnings ?? 0, 2);
  return Buffer.concat([h, lenencInt(opts.affectedRows ?? 0), lenencInt(opts.lastInsertId ?? 0), tail]);
}

export function errPayload(code: number, sqlState: string, message: string): Buffer {
  const head = Buffer.allocUnsafe(3);
  head[0] = 0xff;
  head.writeUInt16LE(code, 1);
  // Keep the message to one short line: clients print it as is.
  const text = message.replace(/[\r\n]+/g, ' ').slice(0, 1000);
  return Buffer.concat([head, Buffer.from(`#${sqlState.slice(0, 5).padEnd(5, '0')}`, 'latin1'), Buffer.from(text, 'utf8')]);
}

/** Error numbers wicket itself sends. */
export const ER = {
  ACCESS_DENIED: 1045, // 28000
  UNKNOWN_COM: 1047, // 08S01
  NET_PACKET_TOO_LARGE: 1153, // 08S01
  NET_PACKETS_OUT_OF_ORDER: 1156, // 08S01
  SPECIFIC_ACCESS_DENIED: 1227, // 42000
  CON_COUNT: 1040, // 08004
  HANDSHAKE: 1043, // 08S01
  CONNECTION_KILLED: 1927, // 70100 (MariaDB ER_CONNECTION_KILLED)
  NOT_SUPPORTED_AUTH_MODE: 1251, // 08004
  SECURE_TRANSPORT_REQUIRED: 3159, // HY000
  BAD_DB: 1044, // 42000 (access denied to database)
  UNKNOWN_ERROR: 1105, // HY000
  UNKNOWN_STMT_HANDLER: 1243, // HY000
} as const;
