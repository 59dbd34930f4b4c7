/**
 * TypedInput's view of the terminal (typed.ts): a streaming UTF-8 decoder and
 * a one-line emulation of the screen, fed by the remote's output.
 */

/** Cells of the emulated screen line (wider than any real terminal). */
const WIDTH = 4096;
/** Longest escape sequence parsed; longer ones are skipped. */
export const MAX_SEQ = 64;
export const ASCII: readonly string[] = Array.from({ length: 128 }, (_, i) => String.fromCharCode(i));

/** Streaming UTF-8: one code point per character; anything malformed is U+FFFD. */
export class Utf8 {
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

export interface ScreenHooks {
  /** A character was drawn at the cursor. */
  drawn(ch: string): void;
  /** LF / VT / FF / IND / NEL, called while the line being left still shows. */
  newline(): void;
  /** The alternate screen was entered or left. */
  alt(on: boolean): void;
}

type ScreenState = 'ground' | 'esc' | 'csi' | 'string' | 'stringEsc' | 'skip';

/** The cursor's current screen line: just enough VT100 to follow a shell's line editing. */
export class ScreenLine {
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
