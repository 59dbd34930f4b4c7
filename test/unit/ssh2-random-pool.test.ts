import crypto from 'node:crypto';
import { describe, expect, it } from 'vitest';
import ssh2, { pooledRandomFill } from '../../src/util/ssh2.js';

type Fill = Parameters<typeof pooledRandomFill>[0];

/** A fill that counts its calls and writes a recognisable counter pattern. */
function countingFill(): { fill: Fill; calls: () => number } {
  let calls = 0;
  let next = 1;
  const fill: Fill = (buf, offset = 0, size) => {
    calls++;
    const bytes = new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
    const end = offset + (size ?? buf.byteLength - offset);
    for (let i = offset; i < end; i++) bytes[i] = (next++ % 255) + 1;
    return buf;
  };
  return { fill, calls: () => calls };
}

describe('pooled randomFillSync for ssh2 padding', () => {
  it('fills exactly the requested range and leaves the rest alone', () => {
    const f = pooledRandomFill(crypto.randomFillSync as Fill);
    const buf = Buffer.alloc(64);
    f(buf, 10, 19);
    expect(buf.subarray(0, 10).every((b) => b === 0)).toBe(true);
    expect(buf.subarray(29).every((b) => b === 0)).toBe(true);
    expect(buf.subarray(10, 29).some((b) => b !== 0)).toBe(true);
  });

  it('never hands out the same pool bytes twice and refills when the pool runs out', () => {
    const { fill, calls } = countingFill();
    const f = pooledRandomFill(fill, 32);
    const seen: string[] = [];
    for (let i = 0; i < 10; i++) {
      const b = Buffer.alloc(12);
      f(b, 0, 12);
      seen.push(b.toString('hex'));
    }
    expect(new Set(seen).size).toBe(10);
    // 32-byte pool, 12 bytes a call: two calls per refill, so 5 refills for 10 calls.
    expect(calls()).toBe(5);
  });

  it('passes large, non-Buffer and out-of-range requests to the real function', () => {
    const { fill, calls } = countingFill();
    const f = pooledRandomFill(fill, 1024);
    f(Buffer.alloc(600)); // larger than any padding
    f(new Uint8Array(8));
    expect(() => f(Buffer.alloc(4), 2, 8)).not.toThrow(); // the counting fill does not validate; Node's would
    expect(calls()).toBe(3);
  });

  it('leaves Node crypto.randomFillSync itself untouched once ssh2 has loaded', () => {
    expect(typeof ssh2.Server).toBe('function');
    expect(crypto.randomFillSync.name).toBe('randomFillSync');
    const b = Buffer.alloc(8);
    expect(() => crypto.randomFillSync(b, 4, 8)).toThrow(RangeError);
  });
});
