import { describe, expect, it } from 'vitest';
import { dataRow } from '../../../../protocols/postgres/backend.js';
import { FrameParser, Reader, Writer } from '../../../../protocols/postgres/framing.js';
import { decodeFrontend, encodeBind, encodeQuery, encodeSync } from '../../../../protocols/postgres/frontend.js';
import { bytewise, expectProtocolError, rawFrame, twoPieceSplits } from './helpers.js';

type Seen = { type: number; body: string; frame: string };

function collect(parser: FrameParser, chunks: Buffer[]): Seen[] {
  const out: Seen[] = [];
  for (const c of chunks) {
    parser.push(c, (type, body, frame) => out.push({ type, body: body.toString('hex'), frame: frame.toString('hex') }));
  }
  return out;
}

const stream = Buffer.concat([encodeQuery('select 1'), encodeSync(), rawFrame('Z', []), encodeQuery('x'.repeat(300))]);

describe('FrameParser', () => {
  it('splits a stream into frames with body and whole-frame views', () => {
    const seen = collect(new FrameParser({ maxMessageBytes: 1024 }), [stream]);
    expect(seen.map((s) => String.fromCharCode(s.type))).toEqual(['Q', 'S', 'Z', 'Q']);
    expect(seen[0]).toEqual({
      type: 0x51,
      body: Buffer.from('select 1\0').toString('hex'),
      frame: encodeQuery('select 1').toString('hex'),
    });
    expect(seen[2]!.body).toBe('');
  });

  it('gives the same frames for every two-piece split and for 1-byte pieces', () => {
    const whole = collect(new FrameParser({ maxMessageBytes: 1024 }), [stream]);
    for (const pieces of twoPieceSplits(stream)) expect(collect(new FrameParser({ maxMessageBytes: 1024 }), pieces)).toEqual(whole);
    expect(collect(new FrameParser({ maxMessageBytes: 1024 }), bytewise(stream))).toEqual(whole);
  });

  it('hands frames inside one chunk over zero-copy and assembles only spanning ones', () => {
    const chunk = Buffer.concat([encodeQuery('a'), encodeQuery('b'), encodeQuery('c')]);
    const parser = new FrameParser({ maxMessageBytes: 64 });
    const aliases: boolean[] = [];
    const split = chunk.length - 3;
    const inside = (view: Buffer, c: Buffer): boolean =>
      view.buffer === c.buffer && view.byteOffset >= c.byteOffset && view.byteOffset + view.length <= c.byteOffset + c.length;
    // Buffer.alloc never uses the shared pool, so each chunk owns its ArrayBuffer.
    for (const part of [chunk.subarray(0, split), chunk.subarray(split)]) {
      const c = Buffer.alloc(part.length);
      part.copy(c);
      parser.push(c, (_t, body, frame) => aliases.push(inside(frame, c) && inside(body, c)));
    }
    expect(aliases).toEqual([true, true, false]);
  });

  it('pushSpans reports offsets into the chunk (or the assembled frame)', () => {
    const parser = new FrameParser({ maxMessageBytes: 1024 });
    const spans: string[] = [];
    const cut = 7;
    for (const c of [stream.subarray(0, cut), stream.subarray(cut)]) {
      parser.pushSpans(c, (type, buf, start, end) => spans.push(`${String.fromCharCode(type)}:${buf.subarray(start, end).toString('hex')}`));
    }
    const viaPush = collect(new FrameParser({ maxMessageBytes: 1024 }), [stream]).map((s) => `${String.fromCharCode(s.type)}:${s.frame}`);
    expect(spans).toEqual(viaPush);
  });

  it('tracks bufferedBytes for partial headers and bodies', () => {
    const parser = new FrameParser({ maxMessageBytes: 1024 });
    const frame = encodeQuery('select 1');
    const noop = (): void => {};
    expect(parser.bufferedBytes).toBe(0);
    parser.push(frame.subarray(0, 3), noop);
    expect(parser.bufferedBytes).toBe(3);
    parser.push(frame.subarray(3, 8), noop);
    expect(parser.bufferedBytes).toBe(8);
    parser.push(frame.subarray(8), noop);
    expect(parser.bufferedBytes).toBe(0);
  });

  it('does not allocate the frame a header announces before its bytes arrive', () => {
    const before = process.memoryUsage().arrayBuffers;
    const parsers = Array.from({ length: 8 }, () => new FrameParser({ maxMessageBytes: 64 << 20 }));
    const start = Buffer.concat([rawFrame('d', [], 60_000_004).subarray(0, 5), Buffer.alloc(10)]);
    for (const p of parsers) p.push(start, () => {});
    expect(parsers[0]!.bufferedBytes).toBe(15);
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(16 << 20); // not 8 x 60 MB
  });

  it('assembles a large frame from many small chunks', () => {
    const payload = Buffer.alloc(1 << 20);
    for (let i = 0; i < payload.length; i++) payload[i] = i % 251;
    const frame = rawFrame('d', payload);
    const parser = new FrameParser({ maxMessageBytes: 2 << 20 });
    const got: Buffer[] = [];
    for (let o = 0; o < frame.length; o += 1000) parser.push(frame.subarray(o, o + 1000), (_t, body) => got.push(Buffer.from(body)));
    expect(got).toHaveLength(1);
    expect(got[0]!.equals(payload)).toBe(true);
  });

  it('accepts a length exactly at the cap and an empty chunk', () => {
    const parser = new FrameParser({ maxMessageBytes: 8 });
    const seen: number[] = [];
    parser.push(Buffer.alloc(0), () => seen.push(0));
    parser.push(rawFrame('d', [1, 2, 3, 4]), (_t, body) => seen.push(body.length));
    expect(seen).toEqual([4]);
  });

  describe('malformed lengths', () => {
    const cases: [string, Buffer, string][] = [
      ['negative length', rawFrame('Q', [], -1), "invalid length -1 for message type 'Q' (minimum is 4)"],
      ['length below 4', rawFrame('Q', [], 3), "invalid length 3 for message type 'Q' (minimum is 4)"],
      ['zero length, unprintable type', rawFrame('\u0000', [], 0), 'invalid length 0 for message type 0x00 (minimum is 4)'],
      ['length over the cap', rawFrame('D', [], 70_000_000), 'message of 70000000 bytes exceeds the 67108864-byte limit'],
    ];
    for (const [name, bytes, message] of cases) {
      it(`${name}: throws as soon as the header is complete, at any split`, () => {
        for (const pieces of [[bytes], bytewise(bytes), ...twoPieceSplits(bytes)]) {
          const parser = new FrameParser({ maxMessageBytes: 67_108_864 });
          expectProtocolError(() => {
            for (const p of pieces) parser.push(p, () => {});
          }, message);
        }
      });
    }

    it('is dead after an error: later pushes throw, naming the first failure', () => {
      const parser = new FrameParser({ maxMessageBytes: 16 });
      expectProtocolError(() => parser.push(rawFrame('Q', [], 17), () => {}), 'message of 17 bytes exceeds the 16-byte limit');
      expectProtocolError(() => parser.push(encodeSync(), () => {}), 'stream already failed: message of 17 bytes exceeds the 16-byte limit');
      expect(parser.bufferedBytes).toBe(0);
    });

    it('is dead after the frame handler throws', () => {
      const parser = new FrameParser({ maxMessageBytes: 16 });
      expect(() => parser.push(encodeSync(), () => { throw new Error('handler failed'); })).toThrow('handler failed');
      expectProtocolError(() => parser.push(encodeSync(), () => {}), 'stream already failed: handler failed');
    });

    it('rejects a nonsensical cap', () => {
      expect(() => new FrameParser({ maxMessageBytes: 3 })).toThrow('maxMessageBytes must be an integer from 4 to 2147483647, got 3');
    });
  });

  it('streams 100 MB of DataRow frames without copying frames that sit inside a chunk', () => {
    const row = dataRow(['12345', 'some text value here', null, Buffer.alloc(20, 7)]);
    const block = Buffer.concat(Array.from({ length: 65536 }, () => row)); // a whole number of 64 KiB chunks
    const chunks: Buffer[] = [];
    for (let o = 0; o < block.length; o += 65536) chunks.push(block.subarray(o, o + 65536));
    const rounds = Math.ceil((100 * 1024 * 1024) / block.length);
    const parser = new FrameParser({ maxMessageBytes: 1 << 20 });
    let frames = 0;
    let assembled = 0;
    let columns = 0;
    for (let r = 0; r < rounds; r++) {
      for (const chunk of chunks) {
        parser.pushSpans(chunk, (type, buf, start) => {
          frames++;
          if (buf !== chunk) assembled++;
          if (type === 0x44) columns += buf.readUInt16BE(start + 5);
        });
      }
    }
    expect(frames).toBe(65536 * rounds);
    expect(columns).toBe(4 * frames);
    expect(assembled).toBeLessThanOrEqual(chunks.length * rounds); // at most one spanning frame per chunk
    expect(parser.bufferedBytes).toBe(0);

    // push(): same stream, views instead of offsets; still no copy unless a frame spans chunks.
    const viaPush = new FrameParser({ maxMessageBytes: 1 << 20 });
    let copied = 0;
    for (let r = 0; r < rounds; r++) {
      for (const chunk of chunks) viaPush.push(chunk, (_t, body, frame) => { if (frame.buffer !== block.buffer || body.buffer !== block.buffer) copied++; });
    }
    expect(copied).toBe(assembled);
  });
});

describe('Reader / Writer', () => {
  it('round-trips integers, strings and value lists', () => {
    const msg = new Writer(0x78).u8(7).i16(-2).u16(65535).i32(-3).u32(0xffffffff).cstr('héllo').i16s([0, 1]).values([null, 'ab', Buffer.from([9])]).finish();
    expect(msg.readInt32BE(1)).toBe(msg.length - 1);
    const r = new Reader(msg.subarray(5), 'Test');
    expect([r.u8('a'), r.i16('b'), r.u16('c'), r.i32('d'), r.u32('e'), r.cstr('f')]).toEqual([7, -2, 65535, -3, 0xffffffff, 'héllo']);
    expect(r.ints(r.u16('n'), 2, 'format')).toEqual([0, 1]);
    expect(r.u16('count')).toBe(3);
    expect(r.i32('len')).toBe(-1);
    expect(r.i32('len')).toBe(2);
    expect(r.bytes(2, 'v').toString()).toBe('ab');
    expect(r.i32('len')).toBe(1);
    expect(r.bytes(1, 'v')).toEqual(Buffer.from([9]));
    r.end();
  });

  it('refuses to encode a C string with a NUL inside', () => {
    expectProtocolError(() => encodeQuery('select 1\0; drop table x'), 'cannot encode a string containing a NUL byte');
  });

  it('refuses counts the Int16 wire field cannot hold', () => {
    expectProtocolError(() => encodeBind('', '', [], new Array<null>(65536).fill(null)), 'cannot encode 65536 items: the protocol allows at most 65535');
    expect(decodeFrontend(0x42, encodeBind('', '', [], new Array<null>(65535).fill(null)).subarray(5))).toMatchObject({ type: 'bind' });
  });

  it('grows past its size hint', () => {
    const big = 'x'.repeat(10_000);
    const msg = new Writer(0x51, 4).cstr(big).finish();
    expect(msg.length).toBe(5 + 10_001);
  });
});
