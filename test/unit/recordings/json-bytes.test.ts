import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeEvent, encodeEventLine, encodeHeader, jsonString, type CastEvent } from '../../../recordings/asciicast.js';
import { JsonBytesEncoder } from '../../../recordings/json-bytes.js';
import { readCast } from '../../../recordings/reader.js';
import { CastWriter } from '../../../recordings/terminal.js';
import { isWicketError } from '../../../src/errors.js';

/** The string path the encoder replaces: StringDecoder, jsonString, UTF-8 bytes, quotes removed. */
function bodyOf(text: string): Buffer {
  const json = Buffer.from(jsonString(text), 'utf8');
  return json.subarray(1, json.length - 1);
}

/** Per call (write per chunk, then end), reference and encoder must give the same bytes. */
function expectSameAsStringPath(chunks: readonly Uint8Array[]): void {
  const decoder = new StringDecoder('utf8');
  const encoder = new JsonBytesEncoder();
  for (const [i, chunk] of chunks.entries()) {
    const want = bodyOf(decoder.write(chunk as Buffer));
    const got = Buffer.from(encoder.write(chunk));
    if (!got.equals(want)) {
      const input = chunks.map((c) => Buffer.from(c).toString('hex')).join(' | ');
      expect.fail(`write #${i} of [${input}]: got ${got.toString('hex')}, want ${want.toString('hex')}`);
    }
  }
  const want = bodyOf(decoder.end());
  const got = Buffer.from(encoder.end());
  if (!got.equals(want)) {
    const input = chunks.map((c) => Buffer.from(c).toString('hex')).join(' | ');
    expect.fail(`end() after [${input}]: got ${got.toString('hex')}, want ${want.toString('hex')}`);
  }
}

/** Both-chunk splits at every offset, and byte by byte. */
function expectSameAtEverySplit(buf: Uint8Array): void {
  expectSameAsStringPath([buf]);
  for (let i = 0; i <= buf.length; i++) expectSameAsStringPath([buf.subarray(0, i), buf.subarray(i)]);
  expectSameAsStringPath(Array.from(buf, (_, i) => buf.subarray(i, i + 1)));
}

/** Deterministic PRNG (mulberry32), so a failure names reproducible input. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Byte sequences that sit on the edges of the rules (escapes, validity ranges, truncations). */
const EDGES: readonly (readonly number[])[] = [
  [0x00], [0x08], [0x09], [0x0a], [0x0b], [0x0c], [0x0d], [0x1b, 0x5b, 0x30, 0x6d], [0x1f], [0x22], [0x5c], [0x7f], [0x2f],
  [0xc2, 0x80], [0xc2, 0x85], [0xc2, 0x9f], [0xc2, 0xa0], [0xc3, 0xa9], [0xdf, 0xbf],
  [0xe2, 0x80, 0xa8], [0xe2, 0x80, 0xa9], [0xe2, 0x80, 0xa7], [0xe2, 0x80, 0xaa], [0xe2, 0x82, 0xac], [0xe2, 0x94, 0x80],
  [0xe0, 0xa0, 0x80], [0xe0, 0x9f, 0xbf], [0xed, 0x9f, 0xbf], [0xed, 0xa0, 0x80], [0xed, 0xbf, 0xbf], [0xee, 0x80, 0x80], [0xef, 0xbf, 0xbd],
  [0xf0, 0x90, 0x80, 0x80], [0xf0, 0x8f, 0xbf, 0xbf], [0xf0, 0x9f, 0x98, 0x80], [0xf4, 0x8f, 0xbf, 0xbf], [0xf4, 0x90, 0x80, 0x80],
  [0xc0, 0x80], [0xc1, 0xbf], [0xe0, 0x80, 0x80], [0xf5, 0x80, 0x80, 0x80], [0xf8, 0x88, 0x80, 0x80, 0x80], [0xfe], [0xff],
  [0x80], [0xbf], [0x80, 0x80, 0x80, 0x80, 0x80], [0xc2], [0xe2, 0x82], [0xf0, 0x9f], [0xf0, 0x9f, 0x98], [0xe0], [0xf4],
];

type Flavour = 'bytes' | 'utf8' | 'ascii' | 'mixed';

/** Valid UTF-8 of one code point from a range that exercises every sequence length and the escaped ones. */
function codePoint(rnd: () => number): number[] {
  const r = rnd();
  let cp: number;
  if (r < 0.5) cp = 0x20 + Math.floor(rnd() * 0x60);
  else if (r < 0.6) cp = Math.floor(rnd() * 0x20);
  else if (r < 0.7) cp = 0x7f + Math.floor(rnd() * 0x30); // DEL, C1, Latin-1
  else if (r < 0.8) cp = [0x2028, 0x2029, 0x2026, 0x2500, 0x2713, 0x20ac][Math.floor(rnd() * 6)]!;
  else if (r < 0.9) cp = 0x800 + Math.floor(rnd() * 0xf800);
  else cp = 0x10000 + Math.floor(rnd() * 0x100000);
  if (cp >= 0xd800 && cp <= 0xdfff) cp = 0xfffd;
  return [...Buffer.from(String.fromCodePoint(cp), 'utf8')];
}

function randomBuffer(rnd: () => number, flavour: Flavour, length: number): number[] {
  const out: number[] = [];
  while (out.length < length) {
    const r = rnd();
    if (flavour === 'bytes') out.push(Math.floor(rnd() * 256));
    else if (flavour === 'utf8') out.push(...codePoint(rnd));
    else if (flavour === 'ascii') out.push(r < 0.95 ? 0x20 + Math.floor(rnd() * 0x5f) : [0x0d, 0x0a, 0x1b, 0x22, 0x5c, 0x7f, 0x09][Math.floor(rnd() * 7)]!);
    else if (r < 0.6) out.push(0x20 + Math.floor(rnd() * 0x5f));
    else if (r < 0.75) out.push(...EDGES[Math.floor(rnd() * EDGES.length)]!);
    else if (r < 0.9) out.push(...codePoint(rnd));
    else out.push(Math.floor(rnd() * 256));
  }
  return out;
}

describe('JsonBytesEncoder', () => {
  it('escapes exactly what JSON.stringify + jsonString escape, with lowercase hex', () => {
    const text = (bytes: number[]): string => Buffer.from(new JsonBytesEncoder().write(Uint8Array.from(bytes))).toString('latin1');
    expect(text([0x41, 0x22, 0x5c, 0x2f])).toBe('A\\"\\\\/');
    expect(text([0x08, 0x09, 0x0a, 0x0c, 0x0d, 0x00, 0x1b, 0x1f, 0x7f])).toBe('\\b\\t\\n\\f\\r\\u0000\\u001b\\u001f\\u007f');
    expect(text([0xc2, 0x80, 0xc2, 0x9f, 0xe2, 0x80, 0xa8, 0xe2, 0x80, 0xa9])).toBe('\\u0080\\u009f\\u2028\\u2029');
    expect(text([0xc2, 0xa0, 0xe2, 0x80, 0xa6])).toBe(Buffer.from('\u00a0\u2026').toString('latin1'));
    expect(text([0xed, 0xa0, 0x80])).toBe(Buffer.from('\uFFFD\uFFFD\uFFFD').toString('latin1'));
  });

  it('matches the string path on every edge sequence, alone, embedded and split', () => {
    for (const edge of EDGES) {
      expectSameAtEverySplit(Uint8Array.from(edge));
      expectSameAtEverySplit(Uint8Array.from([0x61, ...edge, 0x62]));
      for (const other of EDGES) expectSameAsStringPath([Uint8Array.from(edge), Uint8Array.from(other)]);
      for (const other of EDGES) expectSameAtEverySplit(Uint8Array.from([...edge, ...other]));
    }
  });

  it('matches the string path on thousands of random buffers split at every offset and byte by byte', () => {
    const rnd = prng(0x5eed);
    // A shared backing buffer with a random start, so word-aligned scanning sees every alignment.
    const backing = new Uint8Array(1024);
    const flavours: Flavour[] = ['bytes', 'utf8', 'ascii', 'mixed'];
    for (let n = 0; n < 3000; n++) {
      const flavour = flavours[n % flavours.length]!;
      const length = n % 10 === 0 ? 64 + Math.floor(rnd() * 400) : Math.floor(rnd() * 48);
      const bytes = randomBuffer(rnd, flavour, length);
      const at = Math.floor(rnd() * 8);
      backing.set(bytes, at);
      expectSameAtEverySplit(backing.subarray(at, at + bytes.length));
    }
  });

  it('matches on three-way splits of short mixed buffers', () => {
    const rnd = prng(42);
    for (let n = 0; n < 300; n++) {
      const buf = Uint8Array.from(randomBuffer(rnd, 'mixed', 4 + Math.floor(rnd() * 12)));
      for (let i = 0; i <= buf.length; i++) {
        for (let j = i; j <= buf.length; j++) expectSameAsStringPath([buf.subarray(0, i), buf.subarray(i, j), buf.subarray(j)]);
      }
    }
  });

  it('matches on large chunks, beyond the retained scratch buffer, in Buffers and plain Uint8Arrays', () => {
    const rnd = prng(7);
    for (const flavour of ['bytes', 'utf8', 'ascii', 'mixed'] as const) {
      const big = Buffer.from(randomBuffer(rnd, flavour, 300_000));
      expectSameAsStringPath([big.subarray(0, 200_001), big.subarray(200_001)]);
      expectSameAsStringPath([new Uint8Array(big.buffer, big.byteOffset + 3, 100_000), Buffer.from(big.subarray(100_003, 100_100))]);
    }
  });

  it('returns a chunk with nothing to escape as is (a view of the input, no copy)', () => {
    const chunk = Buffer.from('plain ASCII text, then UTF-8: héllo 日本語 😀 and more plain text to pass 64 bytes');
    const body = new JsonBytesEncoder().write(chunk);
    expect(body.buffer).toBe(chunk.buffer);
    expect(body.byteOffset).toBe(chunk.byteOffset);
    expect(Buffer.from(body).equals(chunk)).toBe(true);
  });

  it('holds a partial character across chunks and flushes it as U+FFFD at end()', () => {
    const enc = new JsonBytesEncoder();
    expect(enc.write(Uint8Array.from([0x61, 0xe2, 0x82]))).toEqual(Uint8Array.from([0x61]));
    expect(enc.pending).toBe(true);
    expect(enc.write(Uint8Array.from([]))).toHaveLength(0);
    expect(Buffer.from(enc.write(Uint8Array.from([0xac, 0x62]))).toString()).toBe('€b');
    expect(enc.pending).toBe(false);
    expect(enc.write(Uint8Array.from([0xf0, 0x9f]))).toHaveLength(0);
    expect(Buffer.from(enc.end()).toString()).toBe('\uFFFD');
    expect(enc.end()).toHaveLength(0);
    expect(enc.pending).toBe(false);
  });
});

describe('encodeEventLine', () => {
  it('gives the bytes of encodeEvent plus a newline', () => {
    for (const [t, text] of [
      [0, 'x'],
      [1.5, 'héllo\r\n"\\\u001b[0m\u2028'],
      [123456.000001, ''],
    ] as const) {
      const line = encodeEventLine(t, 'o', bodyOf(text));
      expect(line.equals(Buffer.from(`${encodeEvent(t, 'o', text)}\n`, 'utf8'))).toBe(true);
    }
  });

  it('rejects a bad time or code', () => {
    for (const bad of [() => encodeEventLine(-1, 'o', bodyOf('x')), () => encodeEventLine(0, 'r' as 'o', bodyOf('x'))]) {
      let err: unknown;
      try {
        bad();
      } catch (e) {
        err = e;
      }
      expect(isWicketError(err, 'WICKET_ERR_RECORDING')).toBe(true);
    }
  });
});

describe('CastWriter with the byte encoder', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'wicket-json-bytes-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('writes the same file, byte for byte, as the StringDecoder + encodeEvent path, and reads back the same events', async () => {
    const output = [
      '\u001b[0m\u001b[01;34mdir\u001b[0m  file.txt\r\n',
      Buffer.from([0x68, 0xc3]), // "h" and half of "é"
      Buffer.from([0xa9, 0x6c, 0x6c, 0x6f, 0x20, 0xe2, 0x9c]), // rest of "é", "llo ", 2/3 of "✓"
      Buffer.from([0x93]), // last byte of "✓"
      Buffer.from([0xf0, 0x9f]), // half an emoji: no event
      Buffer.from([0x98, 0x80, 0x0d, 0x0a]),
      'C1 \u0085 and \u2028 "quoted" \\ DEL\u007f',
      Buffer.from([0xed, 0xa0, 0x80, 0xc0, 0xaf, 0xff, 0x41, 0xf4, 0x90, 0x80, 0x80]),
      'x'.repeat(5000),
      Buffer.from([0xe2, 0x82]), // cut off at close(): flushed as U+FFFD
    ].map((c) => (typeof c === 'string' ? Buffer.from(c, 'utf8') : c));
    const input = [Buffer.from('ls -l\r'), Buffer.from([0x03, 0xc3]), Buffer.from([0xa9, 0x1b, 0x5b, 0x41])];

    let t = 1000;
    const path = join(dir, 'same.cast');
    const w = await CastWriter.open(path, { width: 80, height: 24, timestamp: 1_700_000_000 }, { clock: () => t++ });
    for (let i = 0; i < output.length; i++) {
      w.output(output[i]!);
      if (input[i] !== undefined) w.input(input[i]!);
    }
    w.resize(100, 30);
    w.marker('done');
    const digest = await w.close();

    // What the string-based writer wrote for the same calls.
    let clock = 1000;
    const t0 = clock++;
    const events: CastEvent[] = [];
    const out = new StringDecoder('utf8');
    const inp = new StringDecoder('utf8');
    const add = (code: CastEvent['code'], data: string): void => {
      if (data === '' && code !== 'm') return;
      events.push({ time: (clock++ - t0) / 1000, code, data });
    };
    for (let i = 0; i < output.length; i++) {
      add('o', out.write(output[i]!));
      if (input[i] !== undefined) add('i', inp.write(input[i]!));
    }
    add('r', '100x30');
    add('m', 'done');
    add('o', out.end());
    add('i', inp.end());
    const expected = [
      encodeHeader({ version: 2, width: 80, height: 24, timestamp: 1_700_000_000 }),
      ...events.map((e) => encodeEvent(e.time, e.code, e.data)),
      '',
    ].join('\n');

    const file = readFileSync(path);
    expect(file.toString('utf8')).toBe(expected);
    expect(file.equals(Buffer.from(expected, 'utf8'))).toBe(true);
    expect(digest.bytes).toBe(file.length);

    const cast = await readCast(path);
    expect(cast.events).toHaveLength(events.length);
    expect(cast.events.map((e) => [e.code, e.data])).toEqual(events.map((e) => [e.code, e.data]));
    expect(cast.events.at(-1)).toMatchObject({ code: 'o', data: '\uFFFD' });
  });
});
