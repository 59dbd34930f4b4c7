/**
 * Terminal bytes straight to the bytes of a JSON string body, without ever
 * building a JS string (the hot path of CastWriter, terminal.ts).
 *
 * The output is byte-for-byte what the string path produces:
 *
 *     Buffer.from(jsonString(stringDecoder.write(chunk)), 'utf8') minus the quotes
 *
 * i.e. Node's StringDecoder('utf8') followed by jsonString() (asciicast.ts):
 *
 * - Valid UTF-8 is copied through, except U+007F, U+0080..U+009F and
 *   U+2028/U+2029, which become `\u007f`, `\u0080`.., `\u2028`, `\u2029`.
 * - Controls below U+0020 are escaped as JSON.stringify does (`\b \t \n \f \r`
 *   short forms, the rest `\u00xx`, lowercase hex); `"` and `\` get a backslash.
 * - Bytes that are not UTF-8 (stray continuation bytes, C0/C1/F5..FF, overlong
 *   forms, encoded surrogates ED A0..BF, code points above U+10FFFF, truncated
 *   sequences) become U+FFFD, one per "maximal subpart" as in the WHATWG
 *   Encoding Standard, which is what V8 (and so StringDecoder) does.
 * - Chunk boundaries follow StringDecoder exactly, so every write() returns
 *   what the string path returns for the same call, not merely the same
 *   concatenation: a lead byte with its continuation bytes at the end of a
 *   chunk is held back when fewer bytes arrived than its lead announces
 *   (C0..DF: 2, E0..EF: 3, F0..F7: 4); the next chunk contributes
 *   continuation bytes up to that count (stopping at the first byte that is
 *   not one) and the held bytes are then decoded on their own. end() decodes
 *   whatever is still held.
 */

/** Input bytes per output byte, worst case: a control byte becomes `\u00xx` (6 bytes). */
const MAX_EXPANSION = 6;
/** A scratch buffer up to this size is kept for reuse; larger chunks get a one-off buffer. */
const MAX_RETAINED_SCRATCH = 1024 * 1024;
const EMPTY: Uint8Array = new Uint8Array(0);
const HEX = Uint8Array.from('0123456789abcdef', (c) => c.charCodeAt(0));

/**
 * How each ASCII byte is written: 0 as is, 1 as `\u00xx`, otherwise the
 * character that follows a backslash (`\"`, `\\`, `\b`, `\t`, `\n`, `\f`, `\r`).
 */
const ASCII_ESCAPE = new Uint8Array(128);
for (let b = 0; b < 0x20; b++) ASCII_ESCAPE[b] = 1;
ASCII_ESCAPE[0x7f] = 1;
ASCII_ESCAPE[0x08] = 0x62; // b
ASCII_ESCAPE[0x09] = 0x74; // t
ASCII_ESCAPE[0x0a] = 0x6e; // n
ASCII_ESCAPE[0x0c] = 0x66; // f
ASCII_ESCAPE[0x0d] = 0x72; // r
ASCII_ESCAPE[0x22] = 0x22; // "
ASCII_ESCAPE[0x5c] = 0x5c; // \

/** Shared by all encoders: JS is single-threaded and every result is consumed before the next call. */
let scratch: Uint8Array = EMPTY;

function outputBuffer(size: number): Uint8Array {
  if (scratch.length >= size) return scratch;
  if (size > MAX_RETAINED_SCRATCH) return new Uint8Array(size);
  scratch = new Uint8Array(Math.min(MAX_RETAINED_SCRATCH, Math.max(size, 2 * scratch.length, 4096)));
  return scratch;
}

/** Index of the first byte in [i, end) that is not printable ASCII other than `"` and `\`, or end. */
function plainEnd(src: Uint8Array, i: number, end: number): number {
  while (i < end) {
    const b = src[i]!;
    if (b < 0x20 || b > 0x7e || b === 0x22 || b === 0x5c) return i;
    i++;
  }
  return end;
}

/** `\u` followed by four lowercase hex digits of cp (cp <= 0xffff). */
function writeU(out: Uint8Array, o: number, cp: number): number {
  out[o] = 0x5c;
  out[o + 1] = 0x75;
  out[o + 2] = HEX[cp >>> 12]!;
  out[o + 3] = HEX[(cp >>> 8) & 15]!;
  out[o + 4] = HEX[(cp >>> 4) & 15]!;
  out[o + 5] = HEX[cp & 15]!;
  return o + 6;
}

function writeFFFD(out: Uint8Array, o: number): number {
  out[o] = 0xef;
  out[o + 1] = 0xbf;
  out[o + 2] = 0xbd;
  return o + 3;
}

/**
 * Decodes src[i, end) as a complete UTF-8 text (a sequence cut off by `end`
 * becomes one U+FFFD) and writes its JSON string body at out[o]; returns the
 * new output offset. out must have room for MAX_EXPANSION * (end - i) bytes.
 */
function encodeRange(src: Uint8Array, i: number, end: number, out: Uint8Array, o: number): number {
  while (i < end) {
    const b0 = src[i]!;
    if (b0 < 0x80) {
      const esc = ASCII_ESCAPE[b0]!;
      if (esc === 0) {
        out[o++] = b0;
      } else if (esc === 1) {
        o = writeU(out, o, b0);
      } else {
        out[o] = 0x5c;
        out[o + 1] = esc;
        o += 2;
      }
      i++;
      continue;
    }
    // -1 past the end: fails every range and continuation-byte test ((-1 & 0xc0) === 0xc0).
    const b1 = i + 1 < end ? src[i + 1]! : -1;
    if (b0 < 0xc2) {
      // Continuation byte without a lead, or an overlong lead (C0, C1).
      o = writeFFFD(out, o);
      i++;
    } else if (b0 < 0xe0) {
      if ((b1 & 0xc0) !== 0x80) {
        o = writeFFFD(out, o);
        i++;
      } else {
        if (b0 === 0xc2 && b1 < 0xa0) {
          o = writeU(out, o, b1); // C1 control U+0080..U+009F
        } else {
          out[o] = b0;
          out[o + 1] = b1;
          o += 2;
        }
        i += 2;
      }
    } else if (b0 < 0xf0) {
      // E0 needs A0..BF (no overlong), ED needs 80..9F (no surrogates).
      const lo = b0 === 0xe0 ? 0xa0 : 0x80;
      const hi = b0 === 0xed ? 0x9f : 0xbf;
      if (b1 < lo || b1 > hi) {
        o = writeFFFD(out, o);
        i++;
      } else {
        const b2 = i + 2 < end ? src[i + 2]! : -1;
        if ((b2 & 0xc0) !== 0x80) {
          o = writeFFFD(out, o);
          i += 2;
        } else {
          if (b0 === 0xe2 && b1 === 0x80 && (b2 === 0xa8 || b2 === 0xa9)) {
            o = writeU(out, o, b2 === 0xa8 ? 0x2028 : 0x2029);
          } else {
            out[o] = b0;
            out[o + 1] = b1;
            out[o + 2] = b2;
            o += 3;
          }
          i += 3;
        }
      }
    } else if (b0 < 0xf5) {
      // F0 needs 90..BF (no overlong), F4 needs 80..8F (nothing above U+10FFFF).
      const lo = b0 === 0xf0 ? 0x90 : 0x80;
      const hi = b0 === 0xf4 ? 0x8f : 0xbf;
      if (b1 < lo || b1 > hi) {
        o = writeFFFD(out, o);
        i++;
      } else {
        const b2 = i + 2 < end ? src[i + 2]! : -1;
        if ((b2 & 0xc0) !== 0x80) {
          o = writeFFFD(out, o);
          i += 2;
        } else {
          const b3 = i + 3 < end ? src[i + 3]! : -1;
          if ((b3 & 0xc0) !== 0x80) {
            o = writeFFFD(out, o);
            i += 3;
          } else {
            out[o] = b0;
            out[o + 1] = b1;
            out[o + 2] = b2;
            out[o + 3] = b3;
            o += 4;
            i += 4;
          }
        }
      }
    } else {
      o = writeFFFD(out, o);
      i++;
    }
  }
  return o;
}

/**
 * One per byte stream (direction). write() and end() return the JSON string
 * body bytes for what they were given; an empty result means the decoded
 * text was empty (only a held partial character, or nothing at all).
 *
 * The returned bytes may be a view of the input chunk or of a scratch buffer
 * shared by all encoders: they are valid only until the next write()/end()
 * on any JsonBytesEncoder, so copy them (as CastWriter does) before then.
 */
export class JsonBytesEncoder {
  /** A character cut off at the end of the previous chunk: lead byte and continuation bytes. */
  private readonly held = new Uint8Array(4);
  private heldLen = 0;
  /** Continuation bytes the held character still wants (StringDecoder's count, from the lead byte). */
  private missing = 0;

  /** True while a partial character is held back waiting for the next chunk. */
  get pending(): boolean {
    return this.heldLen > 0;
  }

  write(chunk: Uint8Array): Uint8Array {
    const n = chunk.length;
    let start = 0;
    // 1. Complete the held character with the continuation bytes this chunk starts with.
    if (this.missing > 0) {
      while (start < n && this.missing > 0) {
        const b = chunk[start]!;
        if ((b & 0xc0) !== 0x80) {
          this.missing = 0;
          break;
        }
        this.held[this.heldLen++] = b;
        this.missing--;
        start++;
      }
      if (this.missing > 0) return EMPTY; // the whole chunk went into the held character
    }
    const flushHeld = this.heldLen > 0;

    // 2. Find a character cut off at the end of this chunk (StringDecoder's rule).
    let end = n;
    let want = 0;
    if (start < n && (chunk[n - 1]! & 0x80) !== 0) {
      for (let i = n - 1, count = 1; ; i--, count++) {
        const b = chunk[i]!;
        if ((b & 0xc0) === 0x80) {
          if (count >= 4 || i === start) break;
          continue;
        }
        const need = (b & 0xe0) === 0xc0 ? 2 : (b & 0xf0) === 0xe0 ? 3 : (b & 0xf8) === 0xf0 ? 4 : 0;
        if (count < need) {
          end = i;
          want = need - count;
        }
        break;
      }
    }

    // 3. Encode: held character first, then chunk[start, end).
    let result: Uint8Array;
    const plain = flushHeld ? start : plainEnd(chunk, start, end);
    if (plain === end && !flushHeld) {
      result = start === end ? EMPTY : chunk.subarray(start, end);
    } else {
      const out = outputBuffer(MAX_EXPANSION * (end - start + 4));
      let o = 0;
      if (flushHeld) {
        o = encodeRange(this.held, 0, this.heldLen, out, 0);
        this.heldLen = 0;
      }
      if (plain > start) {
        out.set(chunk.subarray(start, plain), o);
        o += plain - start;
      }
      o = encodeRange(chunk, plain, end, out, o);
      result = out.subarray(0, o);
    }

    // 4. Hold the cut-off character for the next chunk.
    if (end < n) {
      this.held.set(chunk.subarray(end, n), 0);
      this.heldLen = n - end;
      this.missing = want;
    }
    return result;
  }

  /** The held partial character as U+FFFD (one per maximal subpart); resets the encoder. */
  end(): Uint8Array {
    if (this.heldLen === 0) return EMPTY;
    const out = outputBuffer(MAX_EXPANSION * 4);
    const o = encodeRange(this.held, 0, this.heldLen, out, 0);
    this.heldLen = 0;
    this.missing = 0;
    return out.subarray(0, o);
  }
}
