/**
 * SFTP v3 observer (draft-ietf-secsh-filexfer-02, as OpenSSH speaks it).
 * Watches the bytes of a `subsystem sftp` channel in both directions and
 * turns them into FileEvents. It does no I/O and never changes a byte: the
 * relay hands it what it forwards, in arrival order, and it keeps nothing
 * of a chunk past the call (only decoded paths and counters).
 *
 * Wire facts used here:
 *   packet  = uint32 length (counts type + body) | byte type | body
 *   request = uint32 id first (all but INIT); each reply repeats the id
 *   string  = uint32 length | bytes;   uint64 = 8 bytes big-endian
 * OpenSSH's client and sftp-server both refuse packets whose length exceeds
 * 256 KiB, so the default cap matches theirs plus header room.
 *
 * READ/WRITE are never reported per packet: bytes are summed per handle and
 * reported once when the handle is closed (or the channel ends).
 */
import type { FileEvent } from '../../src/session.js';
import { decodeCapped } from '../../src/util/text.js';

export interface SftpObserverOptions {
  readonly clock?: () => number;
  /** Largest whole packet (4-byte length field included) accepted. */
  readonly maxPacket?: number;
}

type Op = FileEvent['op'];

/** Packet types, filexfer-02 §3 / §7. */
const INIT = 1, VERSION = 2, OPEN = 3, CLOSE = 4, READ = 5, WRITE = 6, LSTAT = 7, SETSTAT = 9,
  FSETSTAT = 10, OPENDIR = 11, REMOVE = 13, MKDIR = 14, RMDIR = 15, STAT = 17, RENAME = 18,
  SYMLINK = 20, STATUS = 101, HANDLE = 102, DATA = 103, NAME = 104, ATTRS = 105,
  EXTENDED = 200, EXTENDED_REPLY = 201;

/** OPEN pflags (filexfer-02 §6.3). */
const F_READ = 0x01, F_WRITE = 0x02, F_APPEND = 0x04, F_CREAT = 0x08, F_TRUNC = 0x10, F_EXCL = 0x20;
/** ATTRS flags (filexfer-02 §5). */
const A_SIZE = 0x01, A_UIDGID = 0x02, A_PERMISSIONS = 0x04, A_ACMODTIME = 0x08, A_EXTENDED = 0x80000000;

const STATUS_OK = 0, STATUS_EOF = 1;
const STATUS_NAMES = ['ok', 'eof', 'no such file', 'permission denied', 'failure', 'bad message',
  'no connection', 'connection lost', 'operation unsupported'];

export const DEFAULT_MAX_PACKET = 256 * 1024 + 1024;
/** Requests awaiting a reply; OpenSSH's client keeps at most 64 in flight. */
const MAX_IN_FLIGHT = 4096;
const MAX_HANDLES = 4096;
/** filexfer-02 §3: handles are at most 256 bytes. */
const MAX_HANDLE_BYTES = 256;
const MAX_PATH_CHARS = 4096;
const MAX_TEXT_CHARS = 512;
/** Path characters held across pending requests and open handles. */
const MAX_HELD_CHARS = 4 * 1024 * 1024;
/**
 * Body bytes needed to account for a packet whose payload we only count.
 * WRITE: id, handle (<= 256), uint64 offset, data length. Server replies:
 * DATA needs id + data length; NAME/ATTRS/EXTENDED_REPLY only the id.
 */
const WRITE_PREFIX = 4 + 4 + MAX_HANDLE_BYTES + 8 + 4;
const CLIENT_PREFIX: ReadonlyMap<number, number> = new Map([[WRITE, WRITE_PREFIX]]);
const SERVER_PREFIX: ReadonlyMap<number, number> = new Map([[DATA, 8], [NAME, 4], [ATTRS, 4], [EXTENDED_REPLY, 4]]);

/** Thrown inside parsing only; the public methods turn it into `broken`. */
class Malformed extends Error {}

/** `body` may be the needed prefix of a longer body of `bodyLen` bytes. */
type PacketHandler = (type: number, body: Buffer, bodyLen: number) => void;

/**
 * `header`: collecting the 5-byte length+type header in `head`.
 * `body`: collecting `want` body bytes into `buf` (a copy the framer owns).
 * `skip`: discarding the rest of a packet whose payload we only count.
 */
type FrameState = 'header' | 'body' | 'skip';

class Framer {
  private state: FrameState = 'header';
  private readonly head = Buffer.alloc(5);
  private headLen = 0;
  private type = 0;
  private bodyLen = 0;
  private buf: Buffer = Buffer.alloc(0);
  private filled = 0;
  private skipLeft = 0;

  constructor(private readonly maxPacket: number, private readonly prefix: ReadonlyMap<number, number>) {}

  /** Calls `on` per packet; stops early when `stopped()` turns true. */
  push(chunk: Buffer, on: PacketHandler, stopped: () => boolean): void {
    let off = 0;
    while (off < chunk.length && !stopped()) {
      if (this.state === 'skip') {
        const n = Math.min(this.skipLeft, chunk.length - off);
        off += n;
        this.skipLeft -= n;
        if (this.skipLeft === 0) this.state = 'header';
      } else if (this.state === 'body') {
        const n = Math.min(this.buf.length - this.filled, chunk.length - off);
        chunk.copy(this.buf, this.filled, off, off + n);
        off += n;
        this.filled += n;
        if (this.filled === this.buf.length) {
          const body = this.buf;
          this.buf = Buffer.alloc(0);
          this.deliver(body, on);
        }
      } else {
        let length: number;
        if (this.headLen === 0 && chunk.length - off >= 5) {
          length = chunk.readUInt32BE(off);
          this.type = chunk[off + 4]!;
          off += 5;
        } else {
          const n = Math.min(5 - this.headLen, chunk.length - off);
          chunk.copy(this.head, this.headLen, off, off + n);
          off += n;
          this.headLen += n;
          if (this.headLen < 5) return;
          this.headLen = 0;
          length = this.head.readUInt32BE(0);
          this.type = this.head[4]!;
        }
        if (length < 1 || length > this.maxPacket - 4) throw new Malformed(`bad packet length ${length}`);
        this.bodyLen = length - 1;
        const want = Math.min(this.bodyLen, this.prefix.get(this.type) ?? this.bodyLen);
        if (chunk.length - off >= want) {
          // Zero copy: the needed bytes are all in this chunk.
          const body = chunk.subarray(off, off + want);
          off += want;
          this.deliver(body, on);
        } else {
          this.buf = Buffer.allocUnsafe(want);
          this.filled = 0;
          this.state = 'body';
        }
      }
    }
  }

  private deliver(body: Buffer, on: PacketHandler): void {
    this.skipLeft = this.bodyLen - body.length;
    this.state = this.skipLeft > 0 ? 'skip' : 'header';
    on(this.type, body, this.bodyLen);
  }
}

/** Bounds-checked cursor over one packet body. */
class Reader {
  pos = 0;
  constructor(private readonly b: Buffer) {}
  get left(): number { return this.b.length - this.pos; }
  u32(): number {
    if (this.left < 4) throw new Malformed('truncated packet');
    const v = this.b.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }
  skip(n: number): void {
    if (this.left < n) throw new Malformed('truncated packet');
    this.pos += n;
  }
  bytes(): Buffer {
    const n = this.u32();
    if (n > this.left) throw new Malformed('truncated string');
    this.pos += n;
    return this.b.subarray(this.pos - n, this.pos);
  }
  text(max = MAX_PATH_CHARS): string { return decode(this.bytes(), max); }
  /** ATTRS; only the permissions matter to us. */
  perms(): number | undefined {
    const flags = this.u32();
    let perms: number | undefined;
    if (flags & A_SIZE) this.skip(8);
    if (flags & A_UIDGID) this.skip(8);
    if (flags & A_PERMISSIONS) perms = this.u32();
    if (flags & A_ACMODTIME) this.skip(8);
    if (flags & A_EXTENDED) {
      // Each pair consumes >= 8 bytes or throws, so the loop is bounded by the body.
      for (let n = this.u32(); n > 0; n--) { this.bytes(); this.bytes(); }
    }
    return perms;
  }
}

const decode = decodeCapped;

function octal(perms: number): string {
  return (perms & 0o7777).toString(8).padStart(4, '0');
}

function openMode(pflags: number, perms: number | undefined): string {
  const rw = pflags & F_READ ? (pflags & F_WRITE ? 'rw' : 'r') : pflags & F_WRITE ? 'w' : '-';
  let m = rw;
  if (pflags & F_APPEND) m += '+append';
  if (pflags & F_CREAT) m += '+create';
  if (pflags & F_TRUNC) m += '+trunc';
  if (pflags & F_EXCL) m += '+excl';
  return perms === undefined ? m : `${m} ${octal(perms)}`;
}

/** OK and EOF read as their names; errors keep the server's text when it adds something. */
function statusText(code: number, msg: string): string {
  if (code === STATUS_OK || code === STATUS_EOF) return STATUS_NAMES[code]!;
  const name = STATUS_NAMES[code] ?? `status ${code}`;
  return msg === '' || msg.toLowerCase() === name ? name : `${name}: ${msg}`;
}

interface OpenHandle {
  readonly path: string;
  readonly dir: boolean;
  reads: number;
  readBytes: number;
  readError?: string;
  writes: number;
  writeBytes: number;
  writeError?: string;
}

type Pending =
  | { readonly k: 'open'; readonly path: string; readonly mode: string }
  | { readonly k: 'opendir'; readonly path: string }
  | { readonly k: 'read'; readonly h: OpenHandle }
  | { readonly k: 'write'; readonly h: OpenHandle; readonly n: number }
  | { readonly k: 'close'; readonly key: string; readonly h: OpenHandle }
  | { readonly k: 'fsetstat'; readonly h: OpenHandle; readonly mode?: string }
  | { readonly k: 'op'; readonly op: Op; readonly path: string; readonly to?: string; readonly mode?: string };

function heldChars(p: Pending): number {
  return (p.k === 'open' || p.k === 'opendir' || p.k === 'op' ? p.path.length : 0) + (p.k === 'op' ? p.to?.length ?? 0 : 0);
}

export class SftpObserver {
  private readonly emitFn: (ev: FileEvent) => void;
  private readonly clock: () => number;
  private readonly fromClientFrames: Framer;
  private readonly fromServerFrames: Framer;
  private readonly pending = new Map<number, Pending>();
  private readonly handles = new Map<string, OpenHandle>();
  private held = 0;
  private reason: string | null = null;
  private ended = false;
  private readonly stopped = (): boolean => this.reason !== null || this.ended;

  constructor(emit: (ev: FileEvent) => void, opts: SftpObserverOptions = {}) {
    this.emitFn = emit;
    this.clock = opts.clock ?? Date.now;
    const max = opts.maxPacket ?? DEFAULT_MAX_PACKET;
    const maxPacket = Number.isInteger(max) && max >= 16 ? Math.min(max, 0xffffffff) : DEFAULT_MAX_PACKET;
    this.fromClientFrames = new Framer(maxPacket, CLIENT_PREFIX);
    this.fromServerFrames = new Framer(maxPacket, SERVER_PREFIX);
  }

  /** Why observation stopped (protocol error or a cap), or null while healthy. */
  get broken(): string | null {
    return this.reason;
  }

  fromClient(chunk: Buffer): void {
    this.feed(this.fromClientFrames, chunk, 'client', (t, b, n) => this.request(t, b, n));
  }

  fromServer(chunk: Buffer): void {
    this.feed(this.fromServerFrames, chunk, 'server', (t, b, n) => this.reply(t, b, n));
  }

  /** Channel closed: unanswered requests and open handles are reported once. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    try {
      for (const p of this.pending.values()) {
        if (p.k === 'open') this.emit('open', p.path, { mode: p.mode, result: 'channel closed' });
        else if (p.k === 'opendir') this.emit('readdir', p.path, { result: 'channel closed' });
        else if (p.k === 'op') this.emit(p.op, p.path, { to: p.to, mode: p.mode, result: 'channel closed' });
        else if (p.k === 'fsetstat') this.emit('setstat', p.h.path, { mode: p.mode, result: 'channel closed' });
      }
      for (const h of this.handles.values()) this.flush(h, 'channel closed');
    } catch (err) {
      this.reason ??= `internal error: ${(err as Error).message}`;
    }
    this.pending.clear();
    this.handles.clear();
    this.held = 0;
  }

  private feed(framer: Framer, chunk: Buffer, side: string, on: PacketHandler): void {
    if (this.stopped()) return;
    try {
      framer.push(chunk, on, this.stopped);
    } catch (err) {
      this.reason ??= err instanceof Malformed ? `${side}: ${err.message}` : `internal error: ${(err as Error).message}`;
    }
  }

  private fail(reason: string): never {
    throw new Malformed(reason);
  }

  private emit(op: Op, path: string, extra: { bytes?: number; mode?: string | undefined; to?: string | undefined; result?: string }): void {
    const ev: { -readonly [K in keyof FileEvent]: FileEvent[K] } = { type: 'file', at: this.clock(), op, path };
    if (extra.bytes !== undefined) ev.bytes = extra.bytes;
    if (extra.mode !== undefined) ev.mode = extra.mode;
    if (extra.to !== undefined) ev.to = extra.to;
    if (extra.result !== undefined) ev.result = extra.result;
    this.emitFn(ev);
  }

  private handleOf(r: Reader): OpenHandle | undefined {
    return this.handles.get(r.bytes().toString('latin1'));
  }

  private track(id: number, p: Pending): void {
    this.untrack(id); // a reused id replaces the older request
    if (this.pending.size >= MAX_IN_FLIGHT) this.fail(`more than ${MAX_IN_FLIGHT} requests in flight`);
    this.hold(heldChars(p));
    this.pending.set(id, p);
  }

  private untrack(id: number): Pending | undefined {
    const p = this.pending.get(id);
    if (p !== undefined) {
      this.pending.delete(id);
      this.held -= heldChars(p);
    }
    return p;
  }

  private hold(chars: number): void {
    if (this.held + chars > MAX_HELD_CHARS) this.fail('too many path bytes held');
    this.held += chars;
  }

  /** One packet from the client. */
  private request(type: number, body: Buffer, bodyLen: number): void {
    if (type === INIT) return;
    const r = new Reader(body);
    switch (type) {
      case OPEN: {
        const id = r.u32();
        const path = r.text();
        const pflags = r.u32();
        return this.track(id, { k: 'open', path, mode: openMode(pflags, r.perms()) });
      }
      case OPENDIR: {
        const id = r.u32();
        return this.track(id, { k: 'opendir', path: r.text() });
      }
      case READ:
      case CLOSE: {
        const id = r.u32();
        const key = r.bytes().toString('latin1');
        const h = this.handles.get(key);
        if (h === undefined) return void this.untrack(id);
        return this.track(id, type === READ ? { k: 'read', h } : { k: 'close', key, h });
      }
      case WRITE: {
        const id = r.u32();
        const handleLen = body.length >= 8 ? body.readUInt32BE(4) : 0;
        if (handleLen > MAX_HANDLE_BYTES) this.fail(`handle longer than ${MAX_HANDLE_BYTES} bytes`);
        const h = this.handleOf(r);
        r.skip(8); // offset
        const n = r.u32();
        if (n > bodyLen - r.pos) this.fail('truncated WRITE data');
        if (h === undefined) return void this.untrack(id);
        return this.track(id, { k: 'write', h, n });
      }
      case FSETSTAT: {
        const id = r.u32();
        const h = this.handleOf(r);
        const perms = r.perms();
        if (h === undefined) return void this.untrack(id);
        return this.track(id, { k: 'fsetstat', h, mode: perms === undefined ? undefined : octal(perms) });
      }
      case MKDIR:
      case SETSTAT: {
        const id = r.u32();
        const path = r.text();
        const perms = r.perms();
        const mode = perms === undefined ? undefined : octal(perms);
        return this.track(id, { k: 'op', op: type === MKDIR ? 'mkdir' : 'setstat', path, mode });
      }
      case REMOVE: case RMDIR: case STAT: case LSTAT: {
        const id = r.u32();
        const op: Op = type === REMOVE ? 'remove' : type === RMDIR ? 'rmdir' : 'stat';
        return this.track(id, { k: 'op', op, path: r.text() });
      }
      case RENAME: {
        const id = r.u32();
        const path = r.text();
        return this.track(id, { k: 'op', op: 'rename', path, to: r.text() });
      }
      case SYMLINK: {
        // OpenSSH sends (target, linkpath), the reverse of the draft's order;
        // we follow OpenSSH: `path` is the link created, `to` what it points at.
        const id = r.u32();
        const to = r.text();
        return this.track(id, { k: 'op', op: 'symlink', path: r.text(), to });
      }
      case EXTENDED: {
        const id = r.u32();
        const name = r.bytes().toString('latin1');
        if (name !== 'posix-rename@openssh.com') return void this.untrack(id);
        const path = r.text();
        return this.track(id, { k: 'op', op: 'rename', path, to: r.text() });
      }
      default:
        // REALPATH, READLINK, FSTAT, READDIR, unknown types: not reported, but
        // a reused id must not pair a later reply with an older request.
        if (body.length >= 4) this.untrack(body.readUInt32BE(0));
    }
  }

  /** One packet from the server. */
  private reply(type: number, body: Buffer, bodyLen: number): void {
    const r = new Reader(body);
    if (type === VERSION) {
      const version = r.u32();
      if (version !== 3) this.fail(`unsupported SFTP version ${version}`);
      return;
    }
    if (type !== STATUS && type !== HANDLE && type !== DATA && type !== NAME && type !== ATTRS && type !== EXTENDED_REPLY) return;
    const p = this.untrack(r.u32());
    if (p === undefined) return;
    let code = -1;
    let msg = '';
    if (type === STATUS) {
      code = r.u32();
      if (r.left > 0) msg = r.text(MAX_TEXT_CHARS); // language tag follows; ignored
    }
    const result = type === STATUS ? statusText(code, msg) : 'unexpected reply';
    switch (p.k) {
      case 'open':
      case 'opendir': {
        if (type !== HANDLE) {
          return this.emit(p.k === 'open' ? 'open' : 'readdir', p.path, { mode: p.k === 'open' ? p.mode : undefined, result });
        }
        const handle = r.bytes();
        if (handle.length > MAX_HANDLE_BYTES) this.fail(`handle longer than ${MAX_HANDLE_BYTES} bytes`);
        if (this.handles.size >= MAX_HANDLES) this.fail(`more than ${MAX_HANDLES} open handles`);
        this.hold(p.path.length);
        const key = handle.toString('latin1');
        const old = this.handles.get(key);
        if (old !== undefined) {
          // The server reissued a handle we think is open: report what we had.
          this.held -= old.path.length;
          this.flush(old, 'handle reused');
        }
        this.handles.set(key, { path: p.path, dir: p.k === 'opendir', reads: 0, readBytes: 0, writes: 0, writeBytes: 0 });
        if (p.k === 'open') this.emit('open', p.path, { mode: p.mode, result: 'ok' });
        return;
      }
      case 'read': {
        const h = p.h;
        if (type === DATA) {
          const n = r.u32();
          if (n > bodyLen - r.pos) this.fail('truncated DATA');
          h.reads++;
          h.readBytes += n;
        } else {
          h.reads++;
          if (code !== STATUS_EOF) h.readError ??= result;
        }
        return;
      }
      case 'write':
        p.h.writes++;
        if (code === STATUS_OK) p.h.writeBytes += p.n;
        else p.h.writeError ??= result;
        return;
      case 'close': {
        if (this.handles.get(p.key) === p.h) {
          this.handles.delete(p.key);
          this.held -= p.h.path.length;
        }
        return this.flush(p.h, result);
      }
      case 'fsetstat':
        return this.emit('setstat', p.h.path, { mode: p.mode, result });
      case 'op':
        return this.emit(p.op, p.path, { to: p.to, mode: p.mode, result: p.op === 'stat' && type === ATTRS ? 'ok' : result });
    }
  }

  /** Reports a handle's totals: read/write (if any happened), then close. */
  private flush(h: OpenHandle, result: string): void {
    if (h.dir) return this.emit('readdir', h.path, { result });
    if (h.reads > 0) this.emit('read', h.path, { bytes: h.readBytes, result: h.readError ?? 'ok' });
    if (h.writes > 0) this.emit('write', h.path, { bytes: h.writeBytes, result: h.writeError ?? 'ok' });
    this.emit('close', h.path, { result });
  }
}
