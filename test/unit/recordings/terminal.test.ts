import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { parseCast } from '../../../recordings/asciicast.js';
import { castToText } from '../../../recordings/reader.js';
import { CastWriter } from '../../../recordings/terminal.js';
import { isWicketError } from '../../../src/errors.js';

let root: string;
const mounts: string[] = [];
const isRoot = process.getuid?.() === 0;

/** Root in a container: chmod does not stop root, a tmpfs mount does. */
function tryMount(dir: string, options: string): boolean {
  if (!isRoot) return false;
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', dir], { stdio: 'ignore' });
    mounts.push(dir);
    return true;
  } catch {
    return false;
  }
}

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'wicket-cast-'));
});

afterAll(() => {
  for (const m of mounts.reverse()) {
    try {
      execFileSync('umount', [m], { stdio: 'ignore' });
    } catch {
      // Left mounted only if something still holds it; the tmp dir removal below then fails quietly.
    }
  }
  rmSync(root, { recursive: true, force: true });
});

/** A clock that moves 1 ms per reading, so event times are deterministic. */
function stepClock(): () => number {
  let t = 1000;
  return () => t++;
}

/** Checks the file line by line as asciicast v2, independently of our parser. */
function checkCastFile(path: string): void {
  const lines = readFileSync(path, 'utf8').split('\n');
  expect(lines.pop()).toBe('');
  const header = JSON.parse(lines[0]!) as Record<string, unknown>;
  expect(header['version']).toBe(2);
  expect(Number.isInteger(header['width']) && Number.isInteger(header['height'])).toBe(true);
  let last = 0;
  for (const [i, line] of lines.slice(1).entries()) {
    const ev = JSON.parse(line) as unknown[];
    expect(ev, `line ${i + 2}`).toHaveLength(3);
    expect(typeof ev[0]).toBe('number');
    expect(ev[0] as number).toBeGreaterThanOrEqual(last);
    last = ev[0] as number;
    expect(['o', 'i', 'r', 'm']).toContain(ev[1]);
    expect(typeof ev[2]).toBe('string');
    if (ev[1] === 'r') expect(ev[2]).toMatch(/^\d+x\d+$/);
    // Well-formed Unicode: nothing changes in a UTF-8 round trip.
    expect(Buffer.from(ev[2] as string, 'utf8').toString('utf8')).toBe(ev[2]);
  }
}

const sha256 = (path: string): string => createHash('sha256').update(readFileSync(path)).digest('hex');

describe('CastWriter: a written recording', () => {
  const TEXT = 'héllo wörld ✓ 😀 日本語 ẞ\r\n';
  const textBytes = Buffer.from(TEXT, 'utf8');

  it('keeps multibyte characters split across chunks at every offset intact', async () => {
    const path = join(root, 'deep', 'er', 'split.cast');
    const w = await CastWriter.open(path, { width: 80, height: 24, env: { TERM: 'xterm-256color' }, title: 'alice@web-1' }, { clock: stepClock() });
    for (let i = 0; i <= textBytes.length; i++) {
      w.output(textBytes.subarray(0, i));
      w.output(textBytes.subarray(i));
      w.input(textBytes.subarray(0, i));
      w.input(textBytes.subarray(i));
    }
    w.resize(120, 40);
    const digest = await w.close();
    checkCastFile(path);
    const cast = parseCast(readFileSync(path, 'utf8'));
    expect(cast.header).toMatchObject({ version: 2, width: 80, height: 24, title: 'alice@web-1', env: { TERM: 'xterm-256color' } });
    expect(castToText(cast.events)).toBe(TEXT.repeat(textBytes.length + 1));
    expect(cast.events.filter((e) => e.code === 'i').map((e) => e.data).join('')).toBe(TEXT.repeat(textBytes.length + 1));
    expect(cast.events.at(-1)).toMatchObject({ code: 'r', data: '120x40' });
    expect(cast.events.every((e) => !e.data.includes('\uFFFD'))).toBe(true);
    expect(digest).toEqual({ path, sha256: sha256(path), bytes: statSync(path).size });
    expect(statSync(path).mode & 0o777).toBe(0o640);
  });

  it('turns binary garbage, control characters and surrogate-encoding bytes into valid text', async () => {
    const path = join(root, 'binary.cast');
    const w = await CastWriter.open(path, { width: 80, height: 24 }, { clock: stepClock(), flushBytes: 512 });
    const chunks = [
      randomBytes(4096),
      Buffer.from([...Array(32).keys(), 0x7f]),
      Buffer.from([0xed, 0xa0, 0x80, 0xed, 0xb0, 0x80]), // CESU-8 surrogates: would be lone surrogates if decoded leniently
      Buffer.from([0xf4, 0x90, 0x80, 0x80, 0xc0, 0xaf, 0xff, 0xfe]), // above U+10FFFF, overlong, never-valid bytes
      Buffer.from([0xe2, 0x82]), // truncated € at the very end
    ];
    const all = Buffer.concat(chunks);
    // Split the whole stream at arbitrary points so invalid sequences straddle chunk boundaries too.
    for (let off = 0; off < all.length; ) {
      const n = 1 + ((off * 7919) % 23);
      w.output(all.subarray(off, off + n));
      off += n;
    }
    w.resize(0, 0); // ignored: not a usable size
    w.resize(100, 30);
    w.input(Buffer.from([0x03, 0x1b, 0x5b, 0x41]));
    const digest = await w.close();
    checkCastFile(path);
    const cast = parseCast(readFileSync(path, 'utf8'));
    // Same text a one-shot UTF-8 decode (what a terminal shows) gives: U+FFFD for every bad sequence.
    expect(castToText(cast.events)).toBe(all.toString('utf8'));
    expect(castToText(cast.events).endsWith('\uFFFD')).toBe(true);
    expect(cast.events.filter((e) => e.code === 'r').map((e) => e.data)).toEqual(['100x30']);
    expect(cast.events.filter((e) => e.code === 'i').map((e) => e.data)).toEqual(['\u0003\u001b[A']);
    // The truncated character still pending at close() is flushed as U+FFFD, not lost.
    expect(cast.events.at(-1)).toMatchObject({ code: 'o', data: '\uFFFD' });
    expect(digest.sha256).toBe(sha256(path));
    expect(digest.bytes).toBe(statSync(path).size);
  });

  it('writes the header durably before open() resolves and batches events by size and time', async () => {
    const path = join(root, 'batch.cast');
    const w = await CastWriter.open(path, { width: 80, height: 24, timestamp: 1700000000 }, { flushBytes: 1024, flushMs: 60_000 });
    const headerSize = statSync(path).size;
    expect(readFileSync(path, 'utf8')).toBe('{"version":2,"width":80,"height":24,"timestamp":1700000000}\n');
    w.output(Buffer.from('small'));
    await new Promise((r) => setTimeout(r, 20));
    expect(statSync(path).size).toBe(headerSize); // below flushBytes, timer far away: still batched
    w.output(Buffer.alloc(2048, 0x41));
    await vi.waitFor(() => expect(w.bytesWritten).toBeGreaterThan(headerSize + 2048));
    expect(w.bytesWritten).toBe(statSync(path).size);
    await w.close();

    const timed = join(root, 'timed.cast');
    const t = await CastWriter.open(timed, { width: 80, height: 24 }, { flushMs: 10, fsyncMs: 5 });
    t.output(Buffer.from('tick'));
    await vi.waitFor(() => expect(readFileSync(timed, 'utf8')).toContain('"tick"'));
    await new Promise((r) => setTimeout(r, 20)); // let the periodic fsync run
    const d = await t.close();
    expect(d.sha256).toBe(sha256(timed));
    expect(await t.close()).toEqual(d); // idempotent
  });

  it('applies backpressure instead of dropping data when the backlog exceeds the cap', async () => {
    const path = join(root, 'backpressure.cast');
    const w = await CastWriter.open(path, { width: 80, height: 24 }, { maxPendingBytes: 1024, flushMs: 30 });
    expect(w.writable).toBe(true);
    for (let i = 0; i < 10; i++) w.output(Buffer.alloc(300, 0x61 + i));
    expect(w.writable).toBe(false);
    let drained = false;
    const p = w.drained().then(() => (drained = true));
    expect(drained).toBe(false);
    await p;
    expect(w.writable).toBe(true);
    await w.close();
    const text = castToText(parseCast(readFileSync(path, 'utf8')).events);
    expect(text).toBe(Array.from({ length: 10 }, (_, i) => String.fromCharCode(0x61 + i).repeat(300)).join(''));
  });

  it('keeps event times non-decreasing even if the clock goes backwards', async () => {
    const path = join(root, 'clock.cast');
    const readings = [0, 5000, 1000, 9000, 2000];
    const w = await CastWriter.open(path, { width: 80, height: 24 }, { clock: () => readings.shift() ?? 2000 });
    for (const s of ['a', 'b', 'c', 'd']) w.output(Buffer.from(s));
    await w.close();
    expect(parseCast(readFileSync(path, 'utf8')).events.map((e) => e.time)).toEqual([5, 5, 9, 9]);
  });
});

describe('CastWriter: fail closed', () => {
  async function expectRecordingRejection(p: Promise<unknown>, message: RegExp): Promise<void> {
    const err = await p.then(() => null, (e: unknown) => e);
    expect(isWicketError(err, 'WICKET_ERR_RECORDING'), String(err)).toBe(true);
    expect((err as Error).message).toMatch(message);
  }

  it('refuses to open when the data directory is read-only', async (ctx) => {
    const ro = join(root, 'ro');
    mkdirSync(ro);
    if (!tryMount(ro, 'ro,size=1m')) {
      if (isRoot) ctx.skip(); // root without mount rights: nothing makes a directory read-only for us
      chmodSync(ro, 0o555);
    }
    const path = join(ro, 'recordings', '2026', '01', '02', 'abc.cast');
    await expectRecordingRejection(CastWriter.open(path, { width: 80, height: 24 }), /^cannot write recording .*abc\.cast: .*(EROFS|EACCES)/);
    await expectRecordingRejection(CastWriter.open(join(ro, 'top.cast'), { width: 80, height: 24 }), /(EROFS|EACCES)/);
  });

  it('never overwrites an existing file', async () => {
    const path = join(root, 'exists.cast');
    writeFileSync(path, 'evidence\n');
    await expectRecordingRejection(CastWriter.open(path, { width: 80, height: 24 }), /EEXIST/);
    expect(readFileSync(path, 'utf8')).toBe('evidence\n');
  });

  it('rejects an unusable header or a parent that is a file', async () => {
    await expectRecordingRejection(CastWriter.open(join(root, 'bad.cast'), { width: 0, height: 24 }), /width and height/);
    writeFileSync(join(root, 'plainfile'), '');
    await expectRecordingRejection(CastWriter.open(join(root, 'plainfile', 'x.cast'), { width: 80, height: 24 }), /cannot write recording/);
  });

  it('reports a mid-session write failure once, then ignores calls and rejects close', async () => {
    const path = join(root, 'broken-fd.cast');
    const w = await CastWriter.open(path, { width: 80, height: 24 }, { flushMs: 5 });
    const errors: unknown[] = [];
    w.onError((e) => errors.push(e));
    // Close the descriptor underneath the writer, as a failing disk or a bug elsewhere would.
    const fh = Reflect.get(Reflect.get(w, 'file') as object, 'fh') as FileHandle;
    await fh.close();
    w.output(Buffer.from('lost?'));
    await vi.waitFor(() => expect(errors).toHaveLength(1));
    expect(isWicketError(errors[0], 'WICKET_ERR_RECORDING')).toBe(true);
    expect(w.state).toBe('failed');
    expect(w.writable).toBe(false);
    await w.drained(); // must not hang
    w.output(Buffer.from('after'));
    w.resize(10, 10);
    await new Promise((r) => setTimeout(r, 20));
    expect(errors).toHaveLength(1);
    const late: unknown[] = [];
    w.onError((e) => late.push(e));
    await vi.waitFor(() => expect(late).toEqual(errors)); // late subscribers still hear, with the same error
    await expectRecordingRejection(w.close(), /recording .*broken-fd\.cast failed/);
  });

  it('reports a full disk (64k tmpfs) and rejects close', async (ctx) => {
    const small = join(root, 'small');
    mkdirSync(small);
    if (!tryMount(small, 'size=64k')) ctx.skip();
    const w = await CastWriter.open(join(small, 'full.cast'), { width: 80, height: 24 }, { flushBytes: 8 * 1024 });
    const errors: unknown[] = [];
    w.onError((e) => errors.push(e));
    for (let i = 0; i < 200 && errors.length === 0; i++) {
      w.output(Buffer.alloc(1024, 0x78));
      if (!w.writable) await w.drained();
      await new Promise((r) => setImmediate(r));
    }
    await vi.waitFor(() => expect(errors).toHaveLength(1));
    expect((errors[0] as Error).message).toMatch(/ENOSPC/);
    await expectRecordingRejection(w.close(), /ENOSPC/);
  });
});
