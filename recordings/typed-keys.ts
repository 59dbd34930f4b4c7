/**
 * TypedInput's view of the keyboard (typed.ts): keystrokes parsed from the
 * client's bytes, and a keystroke-only line editor (the fallback when the
 * echo gives nothing usable).
 */
import { ASCII, MAX_SEQ, Utf8 } from './typed-screen.js';

/** A lone ESC followed by nothing for this long is the Esc key, not the start of a sequence. */
const ESC_MS = 50;

export type EditOp = 'backspace' | 'delete' | 'eof' | 'left' | 'right' | 'home' | 'end' | 'killStart' | 'killWord' | 'killEnd';

/** One keystroke: `raw` is its exact bytes (a copy). 'noop' keys change no line; 'opaque' ones change it unknowably. */
export type Key =
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
export class KeyParser {
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
export class LineEditor {
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
