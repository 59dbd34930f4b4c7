/**
 * Legacy scp (the rcp protocol, `scp -O`) observer. The exec command is
 * `scp [opts] -t TARGET` (upload: the server is the sink) or
 * `scp [opts] -f SOURCE...` (download: the server is the source). One side
 * (the sender) writes control lines and file data; the other (the receiver)
 * answers each step with one response:
 *   sender:   T<mtime> 0 <atime> 0\n | C<mode> <size> <name>\n <size bytes> \0
 *             | D<mode> 0 <name>\n ... E\n | \x01msg\n (warning, not answered)
 *   receiver: \0 (ok) | \x01msg\n (error) | \x02msg\n (fatal, then it exits)
 * The receiver also speaks first: one response before the first line. The
 * sender waits for every response before going on, so at most one is ever
 * outstanding; a sender that does not wait would make the two ends disagree
 * on what its bytes mean, so we stop observing (`broken`) instead of guessing.
 * File data is skipped by counting; nothing but one control line is held.
 * No I/O here; chunks are never kept past the call.
 */
import type { FileEvent } from '../../src/session.js';
import { decodeCapped } from '../../src/util/text.js';

export interface ScpCommand {
  readonly direction: 'upload' | 'download';
  readonly recursive: boolean;
  /** The target (upload) or the first source (download). */
  readonly path: string;
  /** Every operand: the one target, or all sources. */
  readonly paths: readonly string[];
  /** `-d`: the target must be a directory. */
  readonly targetIsDir: boolean;
}

/** Options of OpenSSH scp's getopt string; these take an argument. */
const FLAGS = '12346ABCTdfOpqRrstv';
const WITH_ARG = 'DFJMPSXcilo';
/** Unquoted characters that make the command more than one plain scp. */
const SHELL_META = ';&|<>()`$\n';

/** Splits a POSIX-shell command line; null if it uses anything beyond quoting. */
function shellWords(command: string): string[] | null {
  const words: string[] = [];
  let cur = '';
  let inWord = false;
  for (let i = 0; i < command.length; i++) {
    const c = command[i]!;
    if (c === ' ' || c === '\t') {
      if (inWord) words.push(cur);
      cur = '';
      inWord = false;
    } else if (c === "'") {
      const close = command.indexOf("'", i + 1);
      if (close < 0) return null;
      cur += command.slice(i + 1, close);
      inWord = true;
      i = close;
    } else if (c === '"') {
      inWord = true;
      for (i++; ; i++) {
        if (i >= command.length) return null;
        const d = command[i]!;
        if (d === '"') break;
        if (d === '$' || d === '`') return null;
        if (d === '\\' && i + 1 < command.length && '$`"\\\n'.includes(command[i + 1]!)) {
          if (command[i + 1] !== '\n') cur += command[i + 1];
          i++;
        } else cur += d;
      }
    } else if (c === '\\') {
      if (i + 1 >= command.length) return null;
      if (command[i + 1] !== '\n') {
        cur += command[i + 1];
        inWord = true;
      }
      i++;
    } else if (SHELL_META.includes(c) || (c === '#' && !inWord)) {
      return null;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (inWord) words.push(cur);
  return words;
}

function parse(command: string): ScpCommand | null {
  const argv = shellWords(command);
  if (argv === null || argv.length < 2) return null;
  if (argv[0] !== 'scp' && !argv[0]!.endsWith('/scp')) return null;
  let sink = false, source = false, recursive = false, targetIsDir = false;
  const operands: string[] = [];
  // glibc getopt permutes: options may follow operands until `--`.
  for (let i = 1; i < argv.length; i++) {
    const w = argv[i]!;
    if (w === '--') {
      operands.push(...argv.slice(i + 1));
      break;
    }
    if (!w.startsWith('-') || w === '-') {
      operands.push(w);
      continue;
    }
    for (let j = 1; j < w.length; j++) {
      const f = w[j]!;
      if (WITH_ARG.includes(f)) {
        if (j === w.length - 1) i++; // the argument is the next word
        if (i >= argv.length) return null;
        break;
      }
      if (!FLAGS.includes(f)) return null;
      if (f === 't') sink = true;
      else if (f === 'f') source = true;
      else if (f === 'r') recursive = true;
      else if (f === 'd') targetIsDir = true;
    }
  }
  if (sink === source || operands.length === 0) return null;
  if (sink && operands.length !== 1) return null; // scp itself answers "ambiguous target"
  return { direction: sink ? 'upload' : 'download', recursive, path: operands[0]!, paths: operands, targetIsDir };
}

/** Parses an exec command; null when it is not a plain `scp -t`/`scp -f`. */
export function parseScpCommand(command: string): ScpCommand | null {
  try {
    return parse(command);
  } catch {
    return null;
  }
}

const MAX_LINE = 2048; // OpenSSH's sink reads control lines into 2048 bytes
const MAX_PATH_CHARS = 4096;
const MAX_TEXT_CHARS = 512;

const decode = decodeCapped;

function join(dir: string, name: string): string {
  const p = dir === '' ? name : dir.endsWith('/') ? dir + name : `${dir}/${name}`;
  return p.length > MAX_PATH_CHARS ? p.slice(0, MAX_PATH_CHARS) : p;
}

function basename(p: string): string {
  const t = p.replace(/\/+$/, '');
  return t.slice(t.lastIndexOf('/') + 1);
}

function dirname(p: string): string {
  const t = p.replace(/\/+$/, '');
  const i = t.lastIndexOf('/');
  return i < 0 ? '' : i === 0 ? '/' : t.slice(0, i);
}

/** A target that can only name a directory. */
function looksLikeDir(p: string): boolean {
  return p === '' || p === '.' || p === '..' || p === '~' || p.endsWith('/') || p.endsWith('/.') || p.endsWith('/..');
}

interface FileStep { readonly path: string; readonly size: number; readonly mode: string; sent: number; sourceError?: string }

/** The one response the sender is waiting for. */
type Awaiting =
  | { readonly k: 'start' }
  | { readonly k: 'time' }
  | { readonly k: 'file'; readonly f: FileStep }
  | { readonly k: 'fileEnd'; readonly f: FileStep }
  | { readonly k: 'dir'; readonly path: string; readonly mode: string }
  | { readonly k: 'end' };

/**
 * Sender side. `line`: reading a control line. `data`: skipping file bytes.
 * `trailer`: the byte after the data (\0, or \x01 + a message line when the
 * source failed to read its file: then `trailerMsg`). `done`: a side exited.
 */
type SenderState = 'line' | 'data' | 'trailer' | 'trailerMsg' | 'done';
/** Receiver side: `ack` expects a response byte, `msg` reads an error line. */
type ReceiverState = 'ack' | 'msg';

const CONTROL = /^([CD])([0-7]{4}) ([0-9]+) /;
const TIMES = /^T[0-9]+ [0-9]+ [0-9]+ [0-9]+$/;

class Malformed extends Error {}

export class ScpObserver {
  private readonly emitFn: (ev: FileEvent) => void;
  private readonly clock: () => number;
  private readonly cmd: ScpCommand | null;
  private reason: string | null = null;
  private ended = false;
  private sender: SenderState = 'line';
  private receiver: ReceiverState = 'ack';
  private awaiting: Awaiting | null = { k: 'start' };
  private current: FileStep | null = null;
  private remaining = 0;
  /** Directories entered with D lines (full paths), innermost last. */
  private readonly dirs: string[] = [];
  private readonly line = Buffer.alloc(MAX_LINE);
  private lineLen = 0;
  private readonly msg = Buffer.alloc(MAX_LINE);
  private msgLen = 0;
  private fatal = false;

  constructor(command: string, emit: (ev: FileEvent) => void, opts: { clock?: () => number } = {}) {
    this.emitFn = emit;
    this.clock = opts.clock ?? Date.now;
    this.cmd = parseScpCommand(command);
    if (this.cmd === null) this.reason = 'not an scp -t/-f command';
  }

  /** Why observation stopped, or null while healthy. */
  get broken(): string | null {
    return this.reason;
  }

  fromClient(chunk: Buffer): void {
    if (this.cmd?.direction === 'upload') this.feed(chunk, true);
    else this.feed(chunk, false);
  }

  fromServer(chunk: Buffer): void {
    if (this.cmd?.direction === 'upload') this.feed(chunk, false);
    else this.feed(chunk, true);
  }

  /** Channel closed: a file or directory still in progress is reported. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    if (this.cmd === null) return;
    try {
      const a = this.awaiting;
      if (this.current !== null && this.sender !== 'line') this.fileEvent(this.current, this.current.sent, 'channel closed');
      else if (a?.k === 'file') this.fileEvent(a.f, 0, 'channel closed');
      else if (a?.k === 'fileEnd') this.fileEvent(a.f, a.f.size, 'channel closed');
      else if (a?.k === 'dir') this.emit(this.dirOp(), a.path, { mode: a.mode, result: 'channel closed' });
    } catch (err) {
      this.reason ??= `internal error: ${(err as Error).message}`;
    }
  }

  private get stopped(): boolean {
    return this.reason !== null || this.ended || this.sender === 'done';
  }

  private feed(chunk: Buffer, fromSender: boolean): void {
    if (this.stopped) return;
    try {
      if (fromSender) this.senderBytes(chunk);
      else this.receiverBytes(chunk);
    } catch (err) {
      this.reason ??= err instanceof Malformed ? `${fromSender ? 'sender' : 'receiver'}: ${err.message}` : `internal error: ${(err as Error).message}`;
    }
  }

  /** Appends up to the next newline to `buf`; returns [next offset, line complete]. */
  private collect(chunk: Buffer, off: number, buf: Buffer, len: number, what: string): [number, number, boolean] {
    const nl = chunk.indexOf(0x0a, off);
    const end = nl < 0 ? chunk.length : nl;
    if (len + end - off > buf.length - 1) throw new Malformed(`${what} longer than ${buf.length - 1} bytes`);
    chunk.copy(buf, len, off, end);
    return [nl < 0 ? end : nl + 1, len + end - off, nl >= 0];
  }

  private senderBytes(chunk: Buffer): void {
    let off = 0;
    while (off < chunk.length && !this.stopped) {
      switch (this.sender) {
        case 'line': {
          if (this.awaiting !== null) throw new Malformed('sent before the previous step was answered');
          const [next, len, done] = this.collect(chunk, off, this.line, this.lineLen, 'control line');
          off = next;
          this.lineLen = len;
          if (done) {
            this.lineLen = 0;
            this.controlLine(this.line.subarray(0, len));
          }
          break;
        }
        case 'data': {
          const n = Math.min(this.remaining, chunk.length - off);
          off += n;
          this.remaining -= n;
          this.current!.sent += n;
          if (this.remaining === 0) this.sender = 'trailer';
          break;
        }
        case 'trailer': {
          const b = chunk[off++]!;
          if (b === 0) this.afterFile();
          else if (b === 1 || b === 2) this.sender = 'trailerMsg';
          else throw new Malformed(`byte ${b} after file data`);
          break;
        }
        case 'trailerMsg': {
          const [next, len, done] = this.collect(chunk, off, this.line, this.lineLen, 'error line');
          off = next;
          this.lineLen = len;
          if (done) {
            this.lineLen = 0;
            this.current!.sourceError = decode(this.line.subarray(0, len), MAX_TEXT_CHARS);
            this.afterFile();
          }
          break;
        }
        case 'done':
          return;
      }
    }
  }

  private afterFile(): void {
    this.awaiting = { k: 'fileEnd', f: this.current! };
    this.current = null;
    this.sender = 'line';
  }

  private controlLine(line: Buffer): void {
    const c = line[0];
    if (c === 1 || c === 2) {
      // A sender-side warning; the receiver does not answer it. In a download
      // it is about a server file (e.g. "scp: /x: No such file or directory").
      if (this.cmd!.direction === 'download') {
        const where = this.dirs.length > 0 ? this.dirs[this.dirs.length - 1]! : this.cmd!.path;
        this.emit('read', where, { bytes: 0, result: decode(line.subarray(1), MAX_TEXT_CHARS) });
      }
      if (c === 2) this.sender = 'done';
      return;
    }
    const text = line.toString('latin1');
    if (c === 0x54 /* T */) {
      if (!TIMES.test(text)) throw new Malformed('malformed T line');
      this.awaiting = { k: 'time' };
      return;
    }
    if (c === 0x45 /* E */) {
      this.dirs.pop();
      this.awaiting = { k: 'end' };
      return;
    }
    const m = CONTROL.exec(text);
    if (m === null) throw new Malformed('expected a control line');
    const size = Number(m[3]);
    if (!Number.isSafeInteger(size)) throw new Malformed('size out of range');
    const name = decode(line.subarray(m[0].length), MAX_PATH_CHARS);
    const path = this.resolve(name);
    if (m[1] === 'D') this.awaiting = { k: 'dir', path, mode: m[2]! };
    else this.awaiting = { k: 'file', f: { path, size, mode: m[2]!, sent: 0 } };
  }

  /**
   * Full path of an entry named in a C/D line. Inside a D it is the
   * directory's path + name. At the top of an upload the sink writes into
   * the target when it is a directory, else to the target itself; we cannot
   * stat, so a target that is not plainly a directory and whose last part
   * differs from the name is reported as target/name (keeping both facts).
   * At the top of a download the name is a source's last part.
   */
  private resolve(name: string): string {
    if (this.dirs.length > 0) return join(this.dirs[this.dirs.length - 1]!, name);
    const cmd = this.cmd!;
    if (cmd.direction === 'upload') {
      if (!cmd.targetIsDir && !looksLikeDir(cmd.path) && basename(cmd.path) === name) return join('', cmd.path);
      return join(cmd.path, name);
    }
    const match = cmd.paths.find((p) => basename(p) === name);
    return match !== undefined ? join('', match) : join(dirname(cmd.path), name);
  }

  private receiverBytes(chunk: Buffer): void {
    let off = 0;
    while (off < chunk.length && !this.stopped) {
      if (this.receiver === 'ack') {
        const b = chunk[off++]!;
        if (b === 0) {
          this.answered(null);
          continue;
        }
        // \x01 warning, \x02 fatal; any other byte is (as scp reads it) the
        // first character of a fatal message.
        this.fatal = b !== 1;
        this.msgLen = 0;
        if (b !== 1 && b !== 2) this.msg[this.msgLen++] = b;
        this.receiver = 'msg';
      } else {
        const [next, len, done] = this.collect(chunk, off, this.msg, this.msgLen, 'error line');
        off = next;
        this.msgLen = len;
        if (done) {
          this.receiver = 'ack';
          this.answered(decode(this.msg.subarray(0, len), MAX_TEXT_CHARS));
        }
      }
    }
  }

  /** The receiver's response (`error` null for \0) to the awaited step. */
  private answered(error: string | null): void {
    const a = this.awaiting;
    if (a === null) throw new Malformed('response with nothing to answer');
    this.awaiting = null;
    switch (a.k) {
      case 'start':
        if (error !== null) this.emit(this.fileOp(), this.cmd!.path, { result: error });
        break;
      case 'file':
        if (error !== null) this.fileEvent(a.f, 0, error);
        else {
          this.current = a.f;
          this.remaining = a.f.size;
          this.sender = a.f.size > 0 ? 'data' : 'trailer';
        }
        break;
      case 'fileEnd':
        this.fileEvent(a.f, a.f.size, error ?? a.f.sourceError ?? 'ok');
        break;
      case 'dir':
        this.emit(this.dirOp(), a.path, { mode: a.mode, result: error ?? 'ok' });
        if (error === null) this.dirs.push(a.path);
        break;
      case 'time':
      case 'end':
        break;
    }
    if (error !== null && this.fatal) this.sender = 'done';
  }

  private fileOp(): 'write' | 'read' {
    return this.cmd!.direction === 'upload' ? 'write' : 'read';
  }

  /** D lines: the sink creates the directory; a source is reading one. */
  private dirOp(): 'mkdir' | 'readdir' {
    return this.cmd!.direction === 'upload' ? 'mkdir' : 'readdir';
  }

  private fileEvent(f: FileStep, bytes: number, result: string): void {
    this.emit(this.fileOp(), f.path, { bytes, mode: f.mode, result });
  }

  private emit(op: FileEvent['op'], path: string, extra: { bytes?: number; mode?: string; result: string }): void {
    const ev: { -readonly [K in keyof FileEvent]: FileEvent[K] } = { type: 'file', at: this.clock(), op, path };
    if (extra.bytes !== undefined) ev.bytes = extra.bytes;
    if (extra.mode !== undefined) ev.mode = extra.mode;
    ev.result = extra.result;
    this.emitFn(ev);
  }
}
