import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { diskGate } from '../../../protocols/ssh/pty-recording.js';
import { CastWriter } from '../../../recordings/terminal.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function fakeRecorder(): { writable: boolean; drained(): Promise<void>; drain(): void; waits: number } {
  let release: (() => void) | null = null;
  const r = {
    writable: true,
    waits: 0,
    drained: () => {
      r.waits++;
      return new Promise<void>((resolve) => (release = resolve));
    },
    drain: () => {
      r.writable = true;
      release?.();
    },
  };
  return r;
}

describe('diskGate: a source waits while its recording lags on disk', () => {
  it('does nothing while the recording keeps up', () => {
    const rec = fakeRecorder();
    const calls: string[] = [];
    const check = diskGate(rec, () => calls.push('pause'), () => calls.push('resume'));
    check();
    check();
    expect(calls).toEqual([]);
    expect(rec.waits).toBe(0);
  });

  it('pauses when the recording lags, holds the source even if something else resumed it, and resumes once drained', async () => {
    const rec = fakeRecorder();
    const calls: string[] = [];
    const check = diskGate(rec, () => calls.push('pause'), () => calls.push('resume'));
    rec.writable = false;
    check();
    expect(calls).toEqual(['pause']);
    // A socket drain resumed the source meanwhile and another chunk came: paused again, one wait only.
    check();
    expect(calls).toEqual(['pause', 'pause']);
    expect(rec.waits).toBe(1);
    rec.drain();
    await new Promise((r) => setImmediate(r));
    expect(calls).toEqual(['pause', 'pause', 'resume']);
    check();
    expect(calls).toHaveLength(3);
  });

  it('with a real CastWriter: output past maxPendingBytes pauses the source until the file has caught up', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wicket-gate-'));
    dirs.push(dir);
    const cast = await CastWriter.open(join(dir, 'x.cast'), { width: 80, height: 24 }, { maxPendingBytes: 4096, flushBytes: 1024 });
    let paused = false;
    let resumed: () => void = () => undefined;
    const resumedP = new Promise<void>((r) => (resumed = r));
    const check = diskGate(cast, () => (paused = true), () => {
      paused = false;
      resumed();
    });
    cast.output(Buffer.alloc(64 * 1024, 0x61));
    check();
    expect(paused).toBe(true);
    await resumedP;
    expect(paused).toBe(false);
    expect(cast.writable).toBe(true);
    const digest = await cast.close();
    expect(digest.bytes).toBeGreaterThan(64 * 1024);
  });
});
