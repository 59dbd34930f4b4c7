import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeEvent, encodeHeader, type CastEvent } from '../../../recordings/asciicast.js';
import { castToText, playCast, readCast, sha256File } from '../../../recordings/reader.js';
import { CastWriter } from '../../../recordings/terminal.js';
import { isWicketError } from '../../../src/errors.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'wicket-reader-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const ev = (time: number, code: CastEvent['code'], data: string): CastEvent => ({ time, code, data });

describe('readCast / sha256File', () => {
  it('reads back what CastWriter wrote, and digests match', async () => {
    const path = join(dir, 'a.cast');
    const w = await CastWriter.open(path, { width: 100, height: 30, title: 'bob@db-1' });
    w.output(Buffer.from('$ echo ✓\r\n✓\r\n'));
    w.input(Buffer.from('exit\r'));
    const digest = await w.close();
    const cast = await readCast(path);
    expect(cast.header).toMatchObject({ version: 2, width: 100, height: 30, title: 'bob@db-1' });
    expect(castToText(cast.events)).toBe('$ echo ✓\r\n✓\r\n');
    expect(cast.truncated).toBe(false);
    expect(await sha256File(path)).toBe(digest.sha256);
    expect(digest.sha256).toBe(createHash('sha256').update(readFileSync(path)).digest('hex'));
  });

  it('names the file and line of damage', async () => {
    const path = join(dir, 'bad.cast');
    writeFileSync(path, `${encodeHeader({ version: 2, width: 80, height: 24 })}\n${encodeEvent(1, 'o', 'x')}\n[0.5,"o","y"]\n`);
    const err = await readCast(path).catch((e: unknown) => e);
    expect(isWicketError(err, 'WICKET_ERR_RECORDING')).toBe(true);
    expect((err as Error).message).toMatch(/bad\.cast: line 3: event time 0.5 is before/);
  });

  it('optionally tolerates a torn last line', async () => {
    const path = join(dir, 'torn.cast');
    writeFileSync(path, `${encodeHeader({ version: 2, width: 80, height: 24 })}\n${encodeEvent(1, 'o', 'x')}\n[2.0,"o","y`);
    await expect(readCast(path)).rejects.toThrow(/line 3/);
    const cast = await readCast(path, { allowTruncatedTail: true });
    expect(cast.truncated).toBe(true);
    expect(cast.events).toHaveLength(1);
  });

  it('reports a missing recording as not found', async () => {
    const err = await readCast(join(dir, 'nope.cast')).catch((e: unknown) => e);
    expect(isWicketError(err, 'WICKET_ERR_NOT_FOUND')).toBe(true);
    expect(isWicketError(await sha256File(join(dir, 'nope.cast')).catch((e: unknown) => e), 'WICKET_ERR_NOT_FOUND')).toBe(true);
  });
});

describe('castToText', () => {
  it('concatenates output only', () => {
    expect(castToText([ev(0, 'o', 'a'), ev(1, 'i', 'x'), ev(1, 'r', '10x10'), ev(1, 'm', 'mark'), ev(2, 'o', 'b')])).toBe('ab');
    expect(castToText([])).toBe('');
  });
});

describe('playCast', () => {
  const events = [ev(0, 'o', 'a'), ev(0.5, 'i', 'k'), ev(1, 'o', 'b'), ev(1, 'r', '90x20'), ev(2, 'o', 'c')];

  it('writes output in order with the recorded timing scaled by speed', async () => {
    const seen: { s: string; at: number }[] = [];
    const resizes: [number, number][] = [];
    const start = performance.now();
    const r = await playCast(events, (s) => seen.push({ s, at: performance.now() - start }), { speed: 20, onResize: (c, rr) => resizes.push([c, rr]) });
    const total = performance.now() - start;
    expect(r).toEqual({ completed: true, played: 3 });
    expect(seen.map((x) => x.s)).toEqual(['a', 'b', 'c']);
    expect(resizes).toEqual([[90, 20]]);
    // 2 s of recording at 20x is 100 ms; event b is due at 50 ms.
    expect(seen[1]!.at).toBeGreaterThanOrEqual(45);
    expect(total).toBeGreaterThanOrEqual(95);
    expect(total).toBeLessThan(1000);
  });

  it('caps idle pauses at idleTimeLimit', async () => {
    const long = [ev(0, 'o', 'a'), ev(3600, 'o', 'b'), ev(7200, 'o', 'c')];
    const start = performance.now();
    const out: string[] = [];
    await playCast(long, (s) => out.push(s), { speed: 10, idleTimeLimit: 0.5 });
    const total = performance.now() - start;
    expect(out.join('')).toBe('abc');
    expect(total).toBeGreaterThanOrEqual(95); // 2 x 0.5 s at 10x
    expect(total).toBeLessThan(1000);
  });

  it('stops when aborted', async () => {
    const ac = new AbortController();
    const out: string[] = [];
    const p = playCast([ev(0, 'o', 'a'), ev(60, 'o', 'b')], (s) => out.push(s), { signal: ac.signal });
    setTimeout(() => ac.abort(), 20);
    expect(await p).toEqual({ completed: false, played: 1 });
    expect(out).toEqual(['a']);
  });

  it('rejects a nonsensical speed', async () => {
    await expect(playCast(events, () => undefined, { speed: 0 })).rejects.toThrow(/speed/);
    await expect(playCast(events, () => undefined, { speed: Number.NaN })).rejects.toThrow(/speed/);
  });
});
