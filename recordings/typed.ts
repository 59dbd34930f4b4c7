/**
 * TypedInput sits between an interactive (pty) channel and its CastWriter and
 * does two I/O-free jobs:
 *
 * 1. Redaction (DESIGN §5). A printable keystroke reaches the recorder only
 *    once the remote has drawn that same character (its echo). Until then it is
 *    held. A line ended with Enter or Ctrl-C whose keys were not all echoed is
 *    recorded as "[redacted]" plus the Enter/Ctrl-C byte: neither the bytes nor
 *    their count reach disk, and it yields no command. Held input is bounded in
 *    age (holdMs) and size (maxHeld); overdue input is redacted, never written
 *    verbatim. Control keys need no echo but keep their place in the order.
 * 2. Commands. Each submitted line becomes onCommand(text, time of Enter). The
 *    text is the screen line after the prompt as the echo drew it (so Tab
 *    completion and history recall read as the shell showed them), from a
 *    one-line terminal emulation; a keystroke-only line editor is the fallback.
 *
 * Echo evidence (the remote is untrusted, so rules lean towards redacting):
 * - A "live" line is one begun with nothing else held: the prompt is on screen
 *   and the cursor sits where the input starts. Its echo must be complete at
 *   the line feed that follows its Enter, and if it was still incomplete at
 *   Enter, the first printable output after Enter must continue it; otherwise
 *   (sudo, `read -s`, ssh and getpass prompts) it is redacted. A new line after
 *   a pause with no echo also ends the old line's chance.
 * - A line typed ahead (keys sent while an earlier line is undecided, e.g. a
 *   multi-line paste) may see command output before its echo; it is accepted
 *   at a line feed only once all its keys were seen and the screen line ends
 *   with the text typed, and redacted if that does not happen within holdMs.
 * - On the alternate screen (vim, less, top) there are no lines or commands:
 *   keys are released as their echo appears anywhere, and keys a full-screen
 *   program consumed silently are redacted when a later key's echo shows up.
 *
 * Released keystrokes are written after the output chunk that echoed them.
 * Buffer ownership: chunks passed in are never mutated; bytes kept are copies.
 */

export interface TypedOptions {
  /** Milliseconds; default Date.now. Also the time passed to onCommand. */
  readonly clock?: () => number;
  /** Characters kept per command line (default 4096). */
  readonly maxLine?: number;
  /** How long unechoed input may be held before it is redacted (default 2000 ms). */
  readonly holdMs?: number;
  /** Bytes of undecided input held at most (default 1024); beyond it the oldest is decided. */
  readonly maxHeld?: number;
}

export interface TypedSink {
  input(data: Buffer): void;
  output(data: Buffer): void;
}

export const REDACTED = '[redacted]';

const MARKER = Buffer.from(REDACTED, 'latin1');
const EMPTY = Buffer.alloc(0);
/** Cells of the emulated screen line (wider than any real terminal). */
const WIDTH = 4096;
const MAX_SEQ = 64;
/** A pause after Enter longer than this, with no echo, ends a live line's echo window. */
const STALE_MS = 250;
/** A lone ESC followed by nothing for this long is the Esc key, not the start of a sequence. */
const ESC_MS = 50;
/** How many keys ahead a full-screen program's echo is looked for. */
const GAP = 16;
const ASCII: readonly string[] = Array.from({ length: 128 }, (_, i) => String.fromCharCode(i));

const intOpt = (v: number | undefined, min: number, max: number, def: number): number =>
  v !== undefined && Number.isFinite(v) ? Math.min(max, Math.max(min, Math.floor(v))) : def;

/** Streaming UTF-8: one code point per character; anything malformed is U+FFFD. */
class Utf8 {
  private need = 0;
  private cp = 0;
  private min = 0;

  get pending(): boolean {
    return this.need > 0;
  }

  /** '' while incomplete; null when `b` broke an unfinished sequence (the caller reads `b` again). */
  push(b: number): string | null {
    if (this.need > 0) {
      if ((b & 0xc0) !== 0x80) {
        this.need = 0;
        return null;
      }
      this.cp = (this.cp << 6) | (b & 0x3f);
      if (--this.need > 0) return '';
      const cp = this.cp;
      return cp < this.min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) ? '\ufffd' : String.fromCodePoint(cp);
    }
    if (b >= 0xc2 && b <= 0xdf) this.start(1, b & 0x1f, 0x80);
    else if (b >= 0xe0 && b <= 0xef) this.start(2, b & 0x0f, 0x800);
    else if (b >= 0xf0 && b <= 0xf4) this.start(3, b & 0x07, 0x10000);
    else return '\ufffd';
    return '';
  }

  reset(): void {
    this.need = 0;
  }

  private start(need: number, cp: number, min: number): void {
    this.need = need;
    this.cp = cp;
    this.min = min;
  }
}

interface ScreenHooks {
  /** A character was drawn at the cursor. */
  drawn(ch: string): void;
  /** LF / VT / FF / IND / NEL, called while the line being left still shows. */
  newline(): void;
  /** The alternate screen was entered or left. */
  alt(on: boolean): void;
}

type ScreenState = 'ground' | 'esc' | 'csi' | 'string' | 'stringEsc' | 'skip';

/** The cursor's current screen line: just enough VT100 to follow a shell's line editing. */
class ScreenLine {
  /** One character per cell; a hole is a cell never drawn (a blank). */
  cells: Array<string | undefined> = [];
  col = 0;
  /** Bumped whenever the cursor leaves the line (line feed, cursor up/down, clear, screen switch). */
  gen = 0;
  alt = false;
  private state: ScreenState = 'ground';
  private params = '';
  private savedCol = 0;
  private readonly utf8 = new Utf8();

  constructor(private readonly hooks: ScreenHooks) {}

  /** The line from `from` (at most `max` cells), trailing blanks trimmed. */
  text(from: number, max: number): string {
    return this.prefix(Math.min(this.cells.length, from + max), from).trimEnd();
  }

  prefix(to: number, from = 0): string {
    let s = '';
    for (let i = from; i < Math.min(to, this.cells.length); i++) s += this.cells[i] ?? ' ';
    return s;
  }

  /** Whether the line, trailing blanks ignored, ends with `tail`. */
  endsWith(tail: string): boolean {
    const t = Array.from(tail);
    let i = this.cells.length - 1;
    while (i >= 0 && (this.cells[i] ?? ' ') === ' ') i--;
    for (let j = t.length - 1; j >= 0; j--, i--) if (i < 0 || (this.cells[i] ?? ' ') !== t[j]) return false;
    return true;
  }

  feed(data: Buffer): void {
    for (let i = 0; i < data.length; i++) {
      const b = data[i]!;
      switch (this.state) {
        case 'ground':
          this.ground(b);
          break;
        case 'esc':
          this.escape(b);
          break;
        case 'csi':
          if (b >= 0x40 && b <= 0x7e) {
            this.state = 'ground';
            this.csi(b);
          } else if (b >= 0x20 && b <= 0x3f) {
            if (this.params.length < MAX_SEQ) this.params += ASCII[b];
            else this.params = '\0'; // too long: swallowed, never dispatched
          } else if (b === 0x1b) this.state = 'esc';
          else if (b === 0x18 || b === 0x1a) this.state = 'ground';
          else if (b < 0x20) this.control(b); // C0 inside a CSI is executed (VT rule)
          break;
        case 'string': // OSC / DCS / SOS / PM / APC: ends with BEL or ST (ESC \)
          if (b === 0x07 || b === 0x18 || b === 0x1a) this.state = 'ground';
          else if (b === 0x1b) this.state = 'stringEsc';
          break;
        case 'stringEsc':
          this.state = 'ground';
          if (b !== 0x5c) this.escape(b);
          break;
        case 'skip': // the final byte of a charset designation (ESC ( B) and the like
          this.state = 'ground';
          break;
      }
    }
  }

  private ground(b: number): void {
    if (this.utf8.pending || b >= 0x80) {
      const ch = this.utf8.push(b);
      if (ch !== null) {
        if (ch !== '') this.draw(ch);
        return;
      }
      this.draw('\ufffd');
      if (b >= 0x80) return this.ground(b);
    }
    if (b >= 0x20 && b < 0x7f) this.draw(ASCII[b]!);
    else if (b === 0x1b) this.state = 'esc';
    else this.control(b);
  }

  private control(b: number): void {
    if (b === 0x08) this.col = Math.max(0, this.col - 1);
    else if (b === 0x09) this.col = Math.min(WIDTH, (Math.floor(this.col / 8) + 1) * 8);
    else if (b === 0x0a || b === 0x0b || b === 0x0c) this.lineFeed();
    else if (b === 0x0d) this.col = 0;
  }

  private draw(ch: string): void {
    const col = this.col;
    if (col < WIDTH) {
      if (this.cells.length < col) this.cells.length = col;
      this.cells[col] = ch;
      this.col = col + 1;
    }
    this.hooks.drawn(ch);
  }

  private escape(b: number): void {
    this.state = 'ground';
    switch (b) {
      case 0x5b: // [
        this.state = 'csi';
        this.params = '';
        break;
      case 0x5d: case 0x50: case 0x58: case 0x5e: case 0x5f: // ] P X ^ _
        this.state = 'string';
        break;
      case 0x20: case 0x23: case 0x25: case 0x28: case 0x29: case 0x2a: case 0x2b: case 0x2d: case 0x2e: case 0x2f:
        this.state = 'skip';
        break;
      case 0x1b:
        this.state = 'esc';
        break;
      case 0x37: // 7: save cursor
        this.savedCol = this.col;
        break;
      case 0x38: // 8: restore cursor
        this.col = this.savedCol;
        break;
      case 0x44: // D: index
        this.lineFeed();
        break;
      case 0x45: // E: next line
        this.lineFeed();
        this.col = 0;
        break;
      case 0x4d: // M: reverse index
        this.leave(this.col);
        break;
      case 0x63: // c: full reset
        this.setAlt(false);
        this.leave(0);
        break;
    }
  }

  private csi(final: number): void {
    const p = this.params;
    if (p.includes('\0') || /[\x20-\x2f]/.test(p)) return; // overlong, or intermediates (e.g. cursor style)
    const priv = p.startsWith('?');
    const nums = (priv ? p.slice(1) : p).split(';').map((s) => Number.parseInt(s, 10) || 0);
    const first = nums[0] ?? 0;
    const n = Math.min(WIDTH, Math.max(1, first));
    if (priv || /^[<=>]/.test(p)) {
      // DECSET/DECRST 1049, 1047, 47: the alternate screen of full-screen programs.
      if (priv && (final === 0x68 || final === 0x6c) && nums.some((v) => v === 1049 || v === 1047 || v === 47)) {
        this.setAlt(final === 0x68);
      }
      return;
    }
    switch (String.fromCharCode(final)) {
      case 'D':
        this.col = Math.max(0, this.col - n);
        break;
      case 'C':
        this.col = Math.min(WIDTH, this.col + n);
        break;
      case 'G':
      case '`':
        this.col = n - 1;
        break;
      case 'K': // erase in line: 0 to end, 1 from start, 2 all
        if (first === 0) this.cells.length = Math.min(this.cells.length, this.col);
        else if (first === 1) this.blank(0, this.col + 1);
        else this.cells.length = 0;
        break;
      case 'X':
        this.blank(this.col, this.col + n);
        break;
      case 'P':
        this.cells.splice(this.col, n);
        break;
      case '@':
        if (this.col < this.cells.length) {
          this.cells.splice(this.col, 0, ...new Array<string>(n).fill(' '));
          if (this.cells.length > WIDTH) this.cells.length = WIDTH;
        }
        break;
      case 'J': // erase below keeps the line's start; anything else clears the screen
        if (first === 0) this.cells.length = Math.min(this.cells.length, this.col);
        else this.leave(this.col);
        break;
      case 'H':
      case 'f':
        this.leave(Math.min(WIDTH, Math.max(1, nums[1] ?? 1)) - 1);
        break;
      case 'A': case 'B': case 'd': case 'e':
        this.leave(this.col);
        break;
      case 'E': case 'F':
        this.leave(0);
        break;
    }
  }

  private blank(from: number, to: number): void {
    for (let i = from; i < Math.min(to, this.cells.length); i++) this.cells[i] = ' ';
  }

  private lineFeed(): void {
    this.hooks.newline();
    this.leave(this.col);
  }

  private leave(col: number): void {
    this.gen++;
    this.cells.length = 0;
    this.col = col;
  }

  private setAlt(on: boolean): void {
    if (on === this.alt) return;
    this.alt = on;
    this.leave(this.col);
    this.hooks.alt(on);
  }
}

type EditOp = 'backspace' | 'delete' | 'eof' | 'left' | 'right' | 'home' | 'end' | 'killStart' | 'killWord' | 'killEnd';

/** One keystroke: `raw` is its exact bytes (a copy). 'noop' keys change no line; 'opaque' ones change it unknowably. */
type Key =
  | { readonly type: 'char'; readonly ch: string; readonly raw: Buffer }
  | { readonly type: 'edit'; readonly op: EditOp; readonly raw: Buffer }
  | { readonly type: 'enter' | 'abort' | 'opaque' | 'noop'; readonly raw: Buffer };

const CTRL: Readonly<Record<number, EditOp>> = {
  0x7f: 'backspace', 0x08: 'backspace', 0x15: 'killStart', 0x17: 'killWord', 0x0b: 'killEnd',
  0x01: 'home', 0x05: 'end', 0x02: 'left', 0x06: 'right', 0x04: 'eof',
};
const CSI_FINAL: Readonly<Record<string, EditOp>> = { C: 'right', D: 'left', H: 'home', F: 'end' };
const CSI_TILDE: Readonly<Record<string, EditOp>> = { '1': 'home', '7': 'home', '4': 'end', '8': 'end', '3': 'delete' };

/** Splits client bytes into keystrokes (xterm/VT220 key encodings, CSI and SS3 forms). */
class KeyParser {
  private state: 'ground' | 'esc' | 'csi' | 'ss3' | 'string' | 'stringEsc' = 'ground';
  private seq: number[] = [];
  private afterCR = false;
  private escAt = 0;
  private readonly utf8 = new Utf8();

  feed(data: Buffer, now: number, emit: (k: Key) => void): void {
    this.expire(now, emit);
    for (let i = 0; i < data.length; i++) this.byte(data[i]!, emit);
    if (this.state === 'esc') this.escAt = now;
  }

  /** An ESC not followed by more bytes within ESC_MS was the Esc key itself (the usual escape timeout). */
  expire(now: number, emit: (k: Key) => void): void {
    if (this.state === 'esc' && !(now - this.escAt < ESC_MS)) this.flush(emit);
  }

  /** Whatever partial sequence is held becomes one opaque key. */
  flush(emit: (k: Key) => void): void {
    const raw = Buffer.from(this.seq);
    const k: Key = this.utf8.pending ? { type: 'char', ch: '\ufffd', raw } : { type: 'opaque', raw };
    this.seq = [];
    this.state = 'ground';
    this.utf8.reset();
    if (raw.length > 0) emit(k);
  }

  private byte(b: number, emit: (k: Key) => void): void {
    const afterCR = this.afterCR;
    this.afterCR = false;
    const seq = this.seq;
    if (this.state !== 'ground') {
      if (seq.length < MAX_SEQ * 4) seq.push(b);
      if (this.state === 'esc') {
        if (b === 0x5b) this.state = 'csi';
        else if (b === 0x4f) this.state = 'ss3';
        else if (b === 0x5d || b === 0x50 || b === 0x58 || b === 0x5e || b === 0x5f) this.state = 'string';
        else this.done(emit, { type: 'opaque', raw: Buffer.from(seq) }); // Alt+key, Esc Esc
      } else if (this.state === 'csi') {
        if (b >= 0x40 && b <= 0x7e) this.done(emit, this.csiKey(String.fromCharCode(b)));
        else if (b < 0x20 || b > 0x3f || seq.length > MAX_SEQ) {
          seq.pop();
          this.done(emit, { type: 'opaque', raw: Buffer.from(seq) });
          this.byte(b, emit);
        }
      } else if (this.state === 'ss3') {
        const op = CSI_FINAL[String.fromCharCode(b)];
        this.done(emit, op !== undefined ? { type: 'edit', op, raw: Buffer.from(seq) } : { type: 'opaque', raw: Buffer.from(seq) });
      } else if (this.state === 'string') {
        if (b === 0x07) this.done(emit, { type: 'opaque', raw: Buffer.from(seq) });
        else if (b === 0x1b) this.state = 'stringEsc';
      } else this.done(emit, { type: 'opaque', raw: Buffer.from(seq) }); // stringEsc
      return;
    }
    if (this.utf8.pending || b >= 0x80) {
      const ch = this.utf8.push(b);
      if (ch !== null) {
        seq.push(b);
        if (ch !== '') this.done(emit, { type: 'char', ch, raw: Buffer.from(seq) });
        return;
      }
      this.done(emit, { type: 'char', ch: '\ufffd', raw: Buffer.from(seq) });
      return this.byte(b, emit);
    }
    const raw = Buffer.from([b]);
    if (b >= 0x20 && b < 0x7f) emit({ type: 'char', ch: ASCII[b]!, raw });
    else if (b === 0x1b) {
      this.state = 'esc';
      seq.push(b);
    } else if (b === 0x0d) {
      this.afterCR = true;
      emit({ type: 'enter', raw });
    } else if (b === 0x0a) emit({ type: afterCR ? 'noop' : 'enter', raw }); // CR LF is one Enter
    else if (b === 0x03) emit({ type: 'abort', raw });
    else if (b === 0x0c) emit({ type: 'noop', raw }); // Ctrl-L redraws
    else {
      const op = CTRL[b];
      emit(op !== undefined ? { type: 'edit', op, raw } : { type: 'opaque', raw }); // Tab, Ctrl-R, Ctrl-Y ...
    }
  }

  private csiKey(final: string): Key {
    const p = String.fromCharCode(...this.seq.slice(2, -1));
    const raw = Buffer.from(this.seq);
    if (final === '~' && (p === '200' || p === '201')) return { type: 'noop', raw }; // bracketed paste markers
    const op = final === '~' ? CSI_TILDE[p] : p === '' || p === '1' ? CSI_FINAL[final] : undefined;
    return op !== undefined ? { type: 'edit', op, raw } : { type: 'opaque', raw }; // arrows up/down = history
  }

  private done(emit: (k: Key) => void, k: Key): void {
    this.seq = [];
    this.state = 'ground';
    emit(k);
  }
}

/** Keystroke-only model of a readline line; `exact` is false once a key with unknowable effect was seen. */
class LineEditor {
  private buf: string[] = [];
  cursor = 0;
  exact = true;

  constructor(private readonly max: number) {}

  text(): string {
    return this.buf.join('').trimEnd();
  }

  get empty(): boolean {
    return this.buf.length === 0;
  }

  apply(k: Key): void {
    if (k.type === 'char') {
      if (this.buf.length < this.max) this.buf.splice(this.cursor++, 0, k.ch);
    } else if (k.type === 'opaque') this.exact = false;
    else if (k.type === 'edit') this.edit(k.op);
  }

  private edit(op: EditOp): void {
    const b = this.buf;
    switch (op) {
      case 'backspace':
        if (this.cursor > 0) b.splice(--this.cursor, 1);
        break;
      case 'delete':
      case 'eof': // Ctrl-D deletes forward on a non-empty line (on an empty one it is EOF)
        b.splice(this.cursor, 1);
        break;
      case 'left':
        this.cursor = Math.max(0, this.cursor - 1);
        break;
      case 'right':
        this.cursor = Math.min(b.length, this.cursor + 1);
        break;
      case 'home':
        this.cursor = 0;
        break;
      case 'end':
        this.cursor = b.length;
        break;
      case 'killStart': // bash unix-line-discard: start of line to cursor
        b.splice(0, this.cursor);
        this.cursor = 0;
        break;
      case 'killWord': { // unix-word-rubout: blanks, then the word before them
        let i = this.cursor;
        while (i > 0 && b[i - 1] === ' ') i--;
        while (i > 0 && b[i - 1] !== ' ') i--;
        b.splice(i, this.cursor - i);
        this.cursor = i;
        break;
      }
      case 'killEnd':
        b.length = this.cursor;
        break;
    }
  }
}

/** A FIFO with O(1) removal from the front. */
class Queue<T> {
  private items: T[] = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  at(i: number): T {
    return this.items[this.head + i]!;
  }

  push(v: T): void {
    this.items.push(v);
  }

  take(n: number): T[] {
    const out = this.items.slice(this.head, this.head + n);
    this.head += out.length;
    if (this.head > 64 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return out;
  }
}

interface Line {
  /** Begun with nothing else held and not on the alternate screen: the prompt is showing. */
  readonly live: boolean;
  readonly editor: LineEditor;
  /** Screen column where the input starts (-1: typed ahead, unknown), the line generation and the prompt before it. */
  startCol: number;
  startGen: number;
  prompt: string;
  state: 'open' | 'submitted' | 'aborted';
  /** Typed (partly) on the alternate screen: never a command. */
  alt: boolean;
  /** Time of Enter. */
  at: number;
  chars: number;
  /** Printable keys not yet echoed. */
  pending: number;
  /** An echo matched after Enter / output arrived after Enter. */
  progress: boolean;
  outputSinceEnd: boolean;
  redacted: boolean;
  /** Screen text after the prompt when Enter arrived ('' if unusable). */
  snapshot: string;
}

interface Held {
  readonly key: Key;
  readonly line: Line;
  readonly at: number;
  state: 'pending' | 'echoed' | 'dropped';
}

export class TypedInput {
  private readonly screen: ScreenLine;
  private readonly keys = new KeyParser();
  private readonly held = new Queue<Held>();
  private bytes = 0;
  /** Index in `held` from which the head line's next unechoed key is searched. */
  private scan = 0;
  private cur: Line | null = null;
  private lastWasMarker = false;
  /** The prompt before the last live line's input: where typed-ahead lines are looked for. */
  private lastPrompt: { readonly col: number; readonly text: string } | null = null;
  private closed = false;
  private readonly clock: () => number;
  private readonly maxLine: number;
  private readonly holdMs: number;
  private readonly maxHeld: number;

  constructor(
    private readonly sink: TypedSink,
    private readonly onCommand: (command: string, at: number) => void,
    opts: TypedOptions = {},
  ) {
    this.clock = opts.clock ?? Date.now;
    this.maxLine = intOpt(opts.maxLine, 1, 1 << 20, 4096);
    this.holdMs = intOpt(opts.holdMs, 0, 3_600_000, 2000);
    this.maxHeld = intOpt(opts.maxHeld, 1, 1 << 20, 1024);
    this.screen = new ScreenLine({
      drawn: (ch) => this.drawn(ch),
      newline: () => this.newline(),
      alt: (on) => this.altChanged(on),
    });
  }

  /** Bytes of keystrokes held, not yet recorded. */
  get heldBytes(): number {
    return this.bytes;
  }

  /** Keystrokes: tracked, and written to sink.input once decided (verbatim if echoed, else redacted). */
  fromClient(data: Buffer): void {
    if (this.closed) return;
    const now = this.clock();
    this.expire(now);
    this.keys.feed(data, now, (k) => this.key(k, now));
    this.release();
  }

  /** Output: written to sink.output at once, then read for echo and the screen line. */
  fromServer(data: Buffer): void {
    this.sink.output(data);
    if (this.closed) return;
    if (this.held.length > 0) {
      const head = this.held.at(0).line;
      if (head.state !== 'open') head.outputSinceEnd = true;
    }
    this.screen.feed(data);
    this.expire(this.clock());
    this.release();
  }

  /** Decides held input that is overdue (call periodically). */
  flush(): void {
    if (this.closed) return;
    const now = this.clock();
    this.keys.expire(now, (k) => this.key(k, now));
    this.expire(now);
    this.release();
  }

  /** Channel closed: everything held is decided (redacted unless echoed); an unfinished line is no command. */
  end(): void {
    if (this.closed) return;
    const now = this.clock();
    this.keys.flush((k) => this.key(k, now));
    while (this.held.length > 0) this.decide(this.held.at(0).line, 'end');
    this.cur = null;
    this.closed = true;
  }

  private key(k: Key, now: number): void {
    if (k.type === 'noop' && this.cur === null) {
      if (this.held.length === 0) this.write(k.raw);
      else this.hold(k, this.held.at(this.held.length - 1).line, now);
      return;
    }
    let line = this.cur;
    if (line === null) {
      this.closeStale(now);
      line = this.cur = this.newLine();
    } else if (line.live && !line.alt && line.pending === 0 && line.editor.exact && line.editor.empty) {
      // Nothing visible typed yet (only Ctrl-D, arrows, erased text): the input starts where the
      // cursor is now, e.g. after a prompt that appeared since.
      this.anchor(line);
    }
    this.hold(k, line, now);
    if (k.type === 'char') {
      line.chars++;
      line.pending++;
    }
    if (!line.alt) {
      line.editor.apply(k);
      if (k.type === 'enter' || k.type === 'abort') {
        line.state = k.type === 'enter' ? 'submitted' : 'aborted';
        line.at = now;
        line.snapshot = this.shown(line);
        this.cur = null;
      }
    }
    while (this.bytes > this.maxHeld && this.held.length > 0) this.force();
  }

  private hold(key: Key, line: Line, at: number): void {
    const state = key.type === 'char' ? 'pending' : 'echoed';
    this.held.push({ key, line, at, state });
    this.bytes += key.raw.length;
  }

  private newLine(): Line {
    const alt = this.screen.alt;
    const live = this.held.length === 0 && !alt;
    const line: Line = {
      live, alt, editor: new LineEditor(this.maxLine),
      startCol: -1, startGen: 0, prompt: '',
      state: 'open', at: 0, chars: 0, pending: 0,
      progress: false, outputSinceEnd: false, redacted: false, snapshot: '',
    };
    if (live) this.anchor(line);
    return line;
  }

  /** The line's input starts at the cursor, after the prompt now on screen. */
  private anchor(line: Line): void {
    const s = this.screen;
    line.startCol = s.col;
    line.startGen = s.gen;
    line.prompt = s.prefix(s.col);
    if (s.col > 0) this.lastPrompt = { col: s.col, text: line.prompt };
  }

  /**
   * A new line begins while the live line before it has seen no echo since its Enter, though
   * output came or a person's pause passed (a paste split in chunks arrives within milliseconds):
   * that was a silent read, and the new line's echo must not be taken for the old line's.
   */
  private closeStale(now: number): void {
    if (this.held.length === 0) return;
    const head = this.held.at(0).line;
    if (head.live && head.state !== 'open' && head.pending > 0 && !head.progress && (head.outputSinceEnd || now - head.at >= STALE_MS)) {
      this.decide(head, 'force');
    }
  }

  private drawn(ch: string): void {
    if (this.held.length === 0) return;
    const line = this.held.at(0).line;
    const i = this.nextPending(line);
    if (i < 0) return;
    const h = this.held.at(i);
    if (h.key.type === 'char' && h.key.ch === ch) return this.echoed(h);
    if (line.alt) {
      // Full-screen programs take many keys silently (vim's `i`, less's `j`): the echo of a
      // later key settles the skipped ones as unechoed.
      for (let j = i + 1; j < Math.min(this.held.length, i + GAP); j++) {
        const g = this.held.at(j);
        if (g.line !== line) break;
        if (g.state === 'pending' && g.key.type === 'char' && g.key.ch === ch) {
          for (let x = i; x < j; x++) {
            const d = this.held.at(x);
            if (d.state === 'pending') {
              d.state = 'dropped';
              line.pending--;
            }
          }
          return this.echoed(g);
        }
      }
    } else if (line.live && line.state !== 'open' && !line.progress && ch !== ' ') {
      // After Enter, other output came before any echo (a blank may be an erase): none is coming.
      this.decide(line, 'force');
    }
  }

  private nextPending(line: Line): number {
    let i = this.scan;
    for (; i < this.held.length; i++) {
      const h = this.held.at(i);
      if (h.line !== line) break;
      if (h.state === 'pending') {
        this.scan = i;
        return i;
      }
    }
    this.scan = i;
    return -1;
  }

  private echoed(h: Held): void {
    const line = h.line;
    h.state = 'echoed';
    line.pending--;
    if (line.state !== 'open') line.progress = true;
  }

  private newline(): void {
    if (this.held.length === 0) return;
    const line = this.held.at(0).line;
    if (line.state === 'open') return;
    if (line.pending > 0 ? line.live : line.live || line.alt || this.confirmed(line)) this.decide(line, 'lf');
  }

  /** A typed-ahead line is accepted when the screen line it ends shows what was typed. */
  private confirmed(line: Line): boolean {
    return !line.editor.exact || this.screen.endsWith(line.editor.text());
  }

  private altChanged(on: boolean): void {
    if (on) {
      if (this.cur !== null) this.cur.alt = true;
      return;
    }
    if (this.cur?.alt === true) {
      this.cur.state = 'aborted';
      this.cur = null;
    }
    while (this.held.length > 0) {
      const line = this.held.at(0).line;
      if (!line.alt || line.state === 'open') break;
      this.decide(line, 'force');
    }
  }

  /** The column the line's input starts at if the screen still shows its prompt before it, else -1. */
  private inputCol(line: Line): number {
    const s = this.screen;
    if (s.alt) return -1;
    if (line.startCol >= 0) return line.startGen === s.gen && s.prefix(line.startCol) === line.prompt ? line.startCol : -1;
    const p = this.lastPrompt; // typed ahead: prompts repeat
    return p !== null && s.prefix(p.col) === p.text ? p.col : -1;
  }

  private shown(line: Line): string {
    const col = this.inputCol(line);
    return col < 0 ? '' : this.screen.text(col, this.maxLine);
  }

  private expire(now: number): void {
    while (this.held.length > 0 && now - this.held.at(0).at >= this.holdMs) this.force();
  }

  /** Decides the oldest held input now: an open line loses what it holds, an ended line is settled. */
  private force(): void {
    const line = this.held.at(0).line;
    if (line.state !== 'open') return this.decide(line, 'force');
    const keys = this.take(this.held.length); // an open line is the last one: everything held is its
    line.pending = 0;
    line.redacted = true;
    if (keys.length > 0) this.redact(EMPTY);
  }

  private decide(line: Line, why: 'lf' | 'force' | 'end'): void {
    let n = 0;
    while (n < this.held.length && this.held.at(n).line === line) n++;
    const keys = this.take(n);
    // A typed-ahead line never confirmed by its screen line is not trusted to have been echoed.
    const unconfirmed = !line.live && !line.alt && why !== 'lf' && line.chars > 0;
    if (line.redacted || line.pending > 0 || unconfirmed) {
      line.pending = 0;
      line.redacted = true;
      const end = keys.find((h) => h.key.type === 'enter' || h.key.type === 'abort');
      return this.redact(end !== undefined && !line.alt ? end.key.raw : EMPTY);
    }
    this.write(Buffer.concat(keys.map((h) => h.key.raw)));
    if (line.state === 'submitted' && !line.alt) {
      const text = this.commandText(line, why === 'lf');
      if (text !== '') this.onCommand(text, line.at);
    }
  }

  private commandText(line: Line, atLineFeed: boolean): string {
    const shown = atLineFeed ? this.shown(line) : line.snapshot;
    const typed = line.editor.text();
    // Typed-ahead lines have no reliable start column: the keystrokes win where they are exact.
    if (!line.live && line.editor.exact) return typed;
    return shown !== '' ? shown : typed;
  }

  /** Records the resolved front of an open line (keys echoed, or needing no echo). */
  private release(): void {
    if (this.held.length === 0 || this.held.at(0).line.state !== 'open') return;
    let n = 0;
    while (n < this.held.length && this.held.at(n).state !== 'pending') n++;
    let run: Buffer[] = [];
    for (const h of this.take(n)) {
      if (h.state !== 'dropped') {
        run.push(h.key.raw);
        continue;
      }
      this.write(Buffer.concat(run));
      run = [];
      this.redact(EMPTY);
    }
    this.write(Buffer.concat(run));
  }

  private take(n: number): Held[] {
    const keys = this.held.take(n);
    for (const h of keys) this.bytes -= h.key.raw.length;
    this.scan = Math.max(0, this.scan - keys.length);
    return keys;
  }

  private write(data: Buffer): void {
    if (data.length === 0) return;
    this.sink.input(data);
    this.lastWasMarker = false;
  }

  /** The marker (once per run of redactions), then the line's Enter / Ctrl-C byte if any. */
  private redact(end: Buffer): void {
    const out = this.lastWasMarker ? end : Buffer.concat([MARKER, end]);
    if (out.length > 0) this.sink.input(out);
    this.lastWasMarker = end.length === 0;
  }
}
