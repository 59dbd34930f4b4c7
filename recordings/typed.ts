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

import { ScreenLine } from './typed-screen.js';
import { KeyParser, LineEditor, type Key } from './typed-keys.js';

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
/** A pause after Enter longer than this, with no echo, ends a live line's echo window. */
const STALE_MS = 250;
/** How many keys ahead a full-screen program's echo is looked for. */
const GAP = 16;

const intOpt = (v: number | undefined, min: number, max: number, def: number): number =>
  v !== undefined && Number.isFinite(v) ? Math.min(max, Math.max(min, Math.floor(v))) : def;
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
