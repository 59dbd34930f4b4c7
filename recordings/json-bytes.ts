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
 *
 * Speed: a chunk is first checked with buffer.isAscii / isUtf8 (native,
 * SIMD). Valid UTF-8, the usual case, then only needs escaping: runs with
 * nothing to escape are scanned and copied four bytes at a time, and a chunk
 * with nothing to escape at all is returned as is (no copy). Anything else
 * goes through a full decoding loop, byte by byte.
 */
import { isAscii, isUtf8 } from 'node:buffer';

/** Input bytes per output byte, worst case: a control byte becomes `\u00xx` (6 bytes). */
const MAX_EXPANSION = 6;
/** A scratch buffer up to this size is kept for reuse; larger chunks get a one-off buffer. */
const MAX_RETAINED_SCRATCH = 1024 * 1024;
const EMPTY: Uint8Array = new Uint8Array(0);
const HEX = Uint8Array.from('0123456789abcdef', (c) => c.charCodeAt(0));

/**
 * How an ASCII byte that needs escaping is written: 1 as `\u00xx`, otherwise
 * as a backslash and this character (`\"`, `\\`, `\b`, `\t`, `\n`, `\f`, `\r`).
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

/**
 * In text known to be valid UTF-8, 1 for the bytes that may need escaping:
 * ASCII controls, `"`, `\`, DEL, and the lead bytes of U+0080..U+009F (C2)
 * and U+2028/U+2029 (E2). Every other byte is copied through.
 */
const VALID_SPECIAL = new Uint8Array(256);
for (let b = 0; b < 128; b++) VALID_SPECIAL[b] = ASCII_ESCAPE[b] === 0 ? 0 : 1;
VALID_SPECIAL[0xc2] = 1;
VALID_SPECIAL[0xe2] = 1;

/** For arbitrary bytes: 1 unless printable ASCII other than `"` and `\`. */
const SPECIAL = new Uint8Array(256).fill(1);
for (let b = 0; b < 128; b++) SPECIAL[b] = VALID_SPECIAL[b]!;

/**
 * UTF-8 lead bytes (WHATWG): sequence length and the range the second byte
 * must be in (E0 and F0 exclude overlong forms, ED surrogates, F4 code
 * points above U+10FFFF). Length 0: never valid as a first byte.
 */
const LEAD_LEN = new Uint8Array(256);
const SECOND_LO = new Uint8Array(256);
const SECOND_HI = new Uint8Array(256);
for (let b = 0xc2; b <= 0xf4; b++) {
  LEAD_LEN[b] = b < 0xe0 ? 2 : b < 0xf0 ? 3 : 4;
  SECOND_LO[b] = b === 0xe0 ? 0xa0 : b === 0xf0 ? 0x90 : 0x80;
  SECOND_HI[b] = b === 0xed ? 0x9f : b === 0xf4 ? 0x8f : 0xbf;
}

/** Output space: bytes and a DataView on them for 4-byte stores at any offset. */
interface Output {
  readonly bytes: Uint8Array;
  readonly view: DataView;
}

const output = (bytes: Uint8Array): Output => ({ bytes, view: new DataView(bytes.buffer, bytes.byteOffset, bytes.length) });

/** Shared by all encoders: JS is single-threaded and every result is consumed before the next call. */
let scratch: Output = output(new Uint8Array(4096));

function outputBuffer(size: number): Output {
  if (scratch.bytes.length >= size) return scratch;
  if (size > MAX_RETAINED_SCRATCH) return output(new Uint8Array(size));
  scratch = output(new Uint8Array(Math.min(MAX_RETAINED_SCRATCH, Math.max(size, 2 * scratch.bytes.length))));
  return scratch;
}

/** Words are stored back in the byte order they were read in. */
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/**
 * A chunk viewed as 32-bit words, so plain runs are scanned four bytes at a
 * time: words[k] holds chunk[base + 4k .. base + 4k + 3]. Null for short chunks.
 */
interface WordView {
  readonly words: Int32Array | null;
  readonly base: number;
}

const NO_WORDS: WordView = { words: null, base: 0 };
const MIN_WORD_SCAN = 64;

function wordView(src: Uint8Array): WordView {
  if (src.length < MIN_WORD_SCAN) return NO_WORDS;
  const base = (4 - (src.byteOffset & 3)) & 3;
  return { words: new Int32Array(src.buffer, src.byteOffset + base, (src.length - base) >>> 2), base };
}

/**
 * Might the 32-bit word hold a VALID_SPECIAL byte (below 0x20, `"`, `\`,
 * DEL, C2, E2)? The bit-twiddling "has less than" and "has zero byte" tests:
 * a byte that qualifies is never missed (false positives are possible, and
 * callers re-check bytewise). A "has zero byte" test for x = w ^ c ends with
 * `& ~x & 0x80808080`; when c is below 0x80, ~x and ~w agree on the high bits
 * of every byte (and x and w do for c >= 0x80), so the tests share one mask.
 */
function wordMayBeSpecial(w: number): boolean {
  const q = w ^ 0x22222222;
  const s = w ^ 0x5c5c5c5c;
  const d = w ^ 0x7f7f7f7f;
  const c = w ^ 0xc2c2c2c2;
  const e = w ^ 0xe2e2e2e2;
  const low = ((w - 0x20202020) | (q - 0x01010101) | (s - 0x01010101) | (d - 0x01010101)) & ~w;
  const high = ((c - 0x01010101) | (e - 0x01010101)) & w;
  return ((low | high) & 0x80808080) !== 0;
}

/**
 * The same for a word of an all-ASCII chunk, in fewer operations: DEL is the
 * only byte that sets a high bit when 1 is added (no byte is 0x80 or more).
 */
function asciiWordMayBeSpecial(w: number): boolean {
  const q = w ^ 0x22222222;
  const s = w ^ 0x5c5c5c5c;
  return (((((w - 0x20202020) | (q - 0x01010101) | (s - 0x01010101)) & ~w) | (w + 0x01010101)) & 0x80808080) !== 0;
}

/** Index of the first VALID_SPECIAL byte in src[i, end), or end. `ascii`: src is all ASCII. */
function plainEnd(src: Uint8Array, i: number, end: number, view: WordView, ascii: boolean): number {
  const words = view.words;
  if (words === null) {
    while (i < end && VALID_SPECIAL[src[i]!] === 0) i++;
    return i;
  }
  const base = view.base;
  for (;;) {
    while (((i - base) & 3) !== 0) {
      if (i >= end || VALID_SPECIAL[src[i]!] !== 0) return i;
      i++;
    }
    let k = (i - base) >> 2;
    const kEnd = (end - base) >> 2;
    if (ascii) while (k < kEnd && !asciiWordMayBeSpecial(words[k]!)) k++;
    else while (k < kEnd && !wordMayBeSpecial(words[k]!)) k++;
    i = base + 4 * k;
    // The word that stopped the scan (or the bytes after the last whole word), bytewise.
    const stop = i + 4 < end ? i + 4 : end;
    while (i < stop) {
      if (VALID_SPECIAL[src[i]!] !== 0) return i;
      i++;
    }
    if (i >= end) return end;
  }
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

function writeAsciiEscape(out: Uint8Array, o: number, b: number): number {
  const esc = ASCII_ESCAPE[b]!;
  if (esc === 1) return writeU(out, o, b);
  out[o] = 0x5c;
  out[o + 1] = esc;
  return o + 2;
}

function writeFFFD(out: Uint8Array, o: number): number {
  out[o] = 0xef;
  out[o + 1] = 0xbf;
  out[o + 2] = 0xbd;
  return o + 3;
}

/**
 * Writes the JSON string body of src[i, end), which must be valid UTF-8
 * (whole characters only), at out[o]; returns the new output offset. out must
 * have room for MAX_EXPANSION * (end - i) bytes. Plain runs are copied a
 * word at a time once aligned (unaligned 4-byte stores through out.view).
 */
function encodeValid(src: Uint8Array, i: number, end: number, out: Output, o: number, view: WordView, ascii: boolean): number {
  const bytes = out.bytes;
  const dv = out.view;
  const words = view.words;
  const base = view.base;
  const kEnd = (end - base) >> 2;
  while (i < end) {
    const b0 = src[i]!;
    if (VALID_SPECIAL[b0] === 0) {
      bytes[o++] = b0;
      i++;
      // Bytewise up to a word boundary, then whole words while none holds a special byte.
      while (((i - base) & 3) !== 0 && i < end) {
        const b = src[i]!;
        if (VALID_SPECIAL[b] !== 0) break;
        bytes[o++] = b;
        i++;
      }
      if (words !== null && ((i - base) & 3) === 0) {
        let k = (i - base) >> 2;
        if (ascii) {
          while (k < kEnd) {
            const w = words[k]!;
            if (asciiWordMayBeSpecial(w)) break;
            dv.setInt32(o, w, LITTLE_ENDIAN);
            o += 4;
            k++;
          }
        } else {
          while (k < kEnd) {
            const w = words[k]!;
            if (wordMayBeSpecial(w)) break;
            dv.setInt32(o, w, LITTLE_ENDIAN);
            o += 4;
            k++;
          }
        }
        i = base + 4 * k;
      }
    } else if (b0 < 0x80) {
      o = writeAsciiEscape(bytes, o, b0);
      i++;
    } else if (b0 === 0xc2) {
      const b1 = src[i + 1]!;
      if (b1 < 0xa0) {
        o = writeU(bytes, o, b1); // C1 control U+0080..U+009F
      } else {
        bytes[o] = b0;
        bytes[o + 1] = b1;
        o += 2;
      }
      i += 2;
    } else {
      // E2: U+2000..U+2FFF; only U+2028 (E2 80 A8) and U+2029 (E2 80 A9) are escaped.
      const b1 = src[i + 1]!;
      const b2 = src[i + 2]!;
      if (b1 === 0x80 && (b2 === 0xa8 || b2 === 0xa9)) {
        o = writeU(bytes, o, b2 === 0xa8 ? 0x2028 : 0x2029);
      } else {
        bytes[o] = b0;
        bytes[o + 1] = b1;
        bytes[o + 2] = b2;
        o += 3;
      }
      i += 3;
    }
  }
  return o;
}

/**
 * Decodes src[i, end) as a complete UTF-8 text (a sequence cut off by `end`
 * becomes one U+FFFD) and writes its JSON string body at out[o]; returns the
 * new output offset. out must have room for MAX_EXPANSION * (end - i) bytes.
 */
function encodeAny(src: Uint8Array, i: number, end: number, out: Uint8Array, o: number): number {
  while (i < end) {
    const b0 = src[i]!;
    if (SPECIAL[b0] === 0) {
      out[o++] = b0;
      i++;
      while (i < end) {
        const b = src[i]!;
        if (SPECIAL[b] !== 0) break;
        out[o++] = b;
        i++;
      }
      continue;
    }
    if (b0 < 0x80) {
      o = writeAsciiEscape(out, o, b0);
      i++;
      continue;
    }
    // Multibyte. Past `end` a byte reads as -1, which fails every range and
    // continuation test below ((-1 & 0xc0) === 0xc0), i.e. a cut-off sequence.
    const len = LEAD_LEN[b0]!;
    const b1 = i + 1 < end ? src[i + 1]! : -1;
    if (len === 0 || b1 < SECOND_LO[b0]! || b1 > SECOND_HI[b0]!) {
      o = writeFFFD(out, o);
      i++;
      continue;
    }
    if (len === 2) {
      if (b0 === 0xc2 && b1 < 0xa0) {
        o = writeU(out, o, b1); // C1 control U+0080..U+009F
      } else {
        out[o] = b0;
        out[o + 1] = b1;
        o += 2;
      }
      i += 2;
      continue;
    }
    const b2 = i + 2 < end ? src[i + 2]! : -1;
    if ((b2 & 0xc0) !== 0x80) {
      o = writeFFFD(out, o);
      i += 2;
      continue;
    }
    if (len === 3) {
      if (b0 === 0xe2 && b1 === 0x80 && (b2 === 0xa8 || b2 === 0xa9)) {
        o = writeU(out, o, b2 === 0xa8 ? 0x2028 : 0x2029);
      } else {
        out[o] = b0;
        out[o + 1] = b1;
        out[o + 2] = b2;
        o += 3;
      }
      i += 3;
      continue;
    }
    const b3 = i + 3 < end ? src[i + 3]! : -1;
    if ((b3 & 0xc0) !== 0x80) {
      o = writeFFFD(out, o);
      i += 3;
      continue;
    }
    out[o] = b0;
    out[o + 1] = b1;
    out[o + 2] = b2;
    out[o + 3] = b3;
    o += 4;
    i += 4;
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

  write(data: Uint8Array): Uint8Array {
    // A plain Uint8Array view: Buffer#subarray is slow (it builds a Buffer), and one type keeps the loops monomorphic.
    const chunk = data.constructor === Uint8Array ? data : new Uint8Array(data.buffer, data.byteOffset, data.length);
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

    // 3. Encode the held character (decoded on its own), then chunk[start, end).
    const body = start === 0 && end === n ? chunk : chunk.subarray(start, end);
    const ascii = isAscii(body);
    const valid = ascii || isUtf8(body);
    const view = valid ? wordView(chunk) : NO_WORDS;
    const plain = valid ? plainEnd(chunk, start, end, view, ascii) : start;
    let result: Uint8Array;
    if (this.heldLen === 0 && plain === end) {
      result = start === end ? EMPTY : body;
    } else {
      const out = outputBuffer(MAX_EXPANSION * (end - start + 4));
      let o = 0;
      if (this.heldLen > 0) {
        o = encodeAny(this.held, 0, this.heldLen, out.bytes, 0);
        this.heldLen = 0;
      }
      if (plain > start) {
        out.bytes.set(chunk.subarray(start, plain), o);
        o += plain - start;
      }
      o = valid ? encodeValid(chunk, plain, end, out, o, view, ascii) : encodeAny(chunk, start, end, out.bytes, o);
      result = out.bytes.subarray(0, o);
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
    const out = outputBuffer(MAX_EXPANSION * 4).bytes;
    const o = encodeAny(this.held, 0, this.heldLen, out, 0);
    this.heldLen = 0;
    this.missing = 0;
    return out.subarray(0, o);
  }
}
