/**
 * DurableAppender: an append-only file written in bounded batches, with a
 * running sha256, periodic fsync, backpressure and a one-way failed state.
 * CastWriter (terminal.ts) layers asciicast encoding on top of it.
 *
 * Cadence: appended bytes are written when the batch reaches flushBytes
 * (default 64 KiB) or flushMs (default 50 ms) after the first unwritten byte;
 * fsync follows at most fsyncMs (default 1 s) after a write, and always at
 * sync()/close(). So a crashed process loses at most ~flushMs of data and a
 * crashed host at most ~flushMs + fsyncMs; fsync is not paid per keystroke.
 *
 * One write is in flight at a time and whatever arrives meanwhile is
 * coalesced into the next one. Nothing is ever dropped: when the unwritten
 * backlog exceeds maxPendingBytes (default 4 MiB, i.e. the disk is slower
 * than the session) `writable` turns false so the caller can pause its
 * source until `drained()` resolves.
 */
import { createHash } from 'node:crypto';
import { mkdir, open, unlink, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';

export interface AppenderOptions {
  readonly flushBytes?: number;
  readonly flushMs?: number;
  readonly fsyncMs?: number;
  readonly maxPendingBytes?: number;
}

export type AppenderState = 'open' | 'closed' | 'failed';

/** One writev per batch (no concatenating copy); a short write continues where it stopped. */
async function writeAll(fh: FileHandle, bufs: Buffer[]): Promise<void> {
  let rest = bufs;
  while (rest.length > 0) {
    const { bytesWritten } = await fh.writev(rest);
    if (bytesWritten <= 0) throw new Error('short write');
    let n = bytesWritten;
    let i = 0;
    while (i < rest.length && n >= rest[i]!.length) n -= rest[i++]!.length;
    rest = i < rest.length ? [rest[i]!.subarray(n), ...rest.slice(i + 1)] : [];
  }
}

/**
 * mkdir -p. Node's recursive mkdir reports ENOENT when a parent cannot be
 * created (read-only or unwritable filesystem); going one level at a time
 * surfaces the real reason (EROFS, EACCES) for the operator.
 */
async function ensureDir(dir: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true, mode: 0o750 });
  } catch (e) {
    const parent = dirname(dir);
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT' || parent === dir) throw e;
    await ensureDir(parent);
    await mkdir(dir, { mode: 0o750 }).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'EEXIST') throw err;
    });
  }
}

/** A new file's directory entry is only durable once the directory itself is synced. */
async function syncDir(dir: string): Promise<void> {
  const dh = await open(dir, 'r');
  try {
    await dh.sync();
  } finally {
    await dh.close();
  }
}

export class DurableAppender {
  private readonly hash = createHash('sha256');
  private bytes = 0;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** Appended but not yet confirmed written: pending plus the write in flight. */
  private backlog = 0;
  private pumping = false;
  private pumpDone: Promise<void> = Promise.resolve();
  private flushTimer: NodeJS.Timeout | null = null;
  private syncTimer: NodeJS.Timeout | null = null;
  private syncDue = false;
  private st: AppenderState = 'open';
  private failure: Error | null = null;
  private readonly listeners = new Set<(err: Error) => void>();
  private drainWaiters: (() => void)[] = [];
  private closing: Promise<{ sha256: string; bytes: number }> | null = null;
  private readonly flushBytes: number;
  private readonly flushMs: number;
  private readonly fsyncMs: number;
  private readonly maxPending: number;

  private constructor(
    private readonly fh: FileHandle,
    first: Buffer,
    opts: AppenderOptions,
  ) {
    this.hash.update(first);
    this.bytes = first.length;
    this.flushBytes = opts.flushBytes ?? 64 * 1024;
    this.flushMs = opts.flushMs ?? 50;
    this.fsyncMs = opts.fsyncMs ?? 1000;
    this.maxPending = opts.maxPendingBytes ?? 4 * 1024 * 1024;
  }

  /**
   * mkdir -p, create exclusively (never overwrite evidence) with mode 0640,
   * write `first` and fsync file and directory before resolving. On failure
   * the half-made file is removed and the raw error is thrown.
   */
  static async create(path: string, first: Buffer, opts: AppenderOptions = {}): Promise<DurableAppender> {
    await ensureDir(dirname(path));
    const fh = await open(path, 'wx', 0o640);
    try {
      await writeAll(fh, [first]);
      await fh.sync();
      await syncDir(dirname(path));
      return new DurableAppender(fh, first, opts);
    } catch (e) {
      await fh.close().catch(() => undefined);
      await unlink(path).catch(() => undefined);
      throw e;
    }
  }

  get state(): AppenderState {
    return this.st;
  }

  get writable(): boolean {
    return this.st === 'open' && this.backlog <= this.maxPending;
  }

  get bytesWritten(): number {
    return this.bytes;
  }

  get error(): Error | null {
    return this.failure;
  }

  /** Resolves once the backlog is at most half of maxPendingBytes, or the appender is closing/failed. */
  drained(): Promise<void> {
    if (this.st !== 'open' || this.closing !== null || this.backlog <= this.maxPending / 2) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  /** Called once on the first write/fsync/close error; a late subscriber still hears about it. */
  onError(listener: (err: Error) => void): () => void {
    if (this.failure !== null) {
      const err = this.failure;
      queueMicrotask(() => listener(err));
      return () => undefined;
    }
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  append(buf: Buffer): void {
    if (this.st !== 'open' || this.closing !== null || buf.length === 0) return;
    this.pending.push(buf);
    this.pendingBytes += buf.length;
    this.backlog += buf.length;
    if (this.pendingBytes >= this.flushBytes) this.kick();
    else this.flushTimer ??= setTimeout(() => this.kick(), this.flushMs);
  }

  /** Writes and fsyncs everything appended so far; rejects with the failure if there was one. */
  async sync(): Promise<void> {
    if (this.st === 'open') {
      this.syncDue = true;
      this.kick();
      while (this.pumping) await this.pumpDone;
    }
    if (this.failure !== null) throw this.failure;
  }

  /** Flush, fsync, close. Idempotent; rejects with the failure if any write failed. */
  close(): Promise<{ sha256: string; bytes: number }> {
    this.closing ??= this.finish();
    return this.closing;
  }

  private async finish(): Promise<{ sha256: string; bytes: number }> {
    this.releaseDrainWaiters();
    await this.sync().catch(() => undefined);
    this.clearTimers();
    try {
      await this.fh.close();
    } catch (e) {
      this.fail(e);
    }
    if (this.failure !== null) throw this.failure;
    this.st = 'closed';
    return { sha256: this.hash.digest('hex'), bytes: this.bytes };
  }

  /** Starts the writer loop unless it is running already (it then picks up new data itself). */
  private kick(): void {
    if (this.flushTimer !== null) clearTimeout(this.flushTimer);
    this.flushTimer = null;
    if (this.pumping || this.st !== 'open') return;
    this.pumping = true;
    this.pumpDone = this.pump();
  }

  private async pump(): Promise<void> {
    try {
      for (;;) {
        if (this.pendingBytes > 0) {
          const bufs = this.pending;
          const size = this.pendingBytes;
          this.pending = [];
          this.pendingBytes = 0;
          // writev takes at most IOV_MAX (1024) buffers per call.
          for (let i = 0; i < bufs.length; i += 1024) await writeAll(this.fh, bufs.slice(i, i + 1024));
          for (const b of bufs) this.hash.update(b);
          this.bytes += size;
          this.backlog -= size;
          if (this.backlog <= this.maxPending / 2) this.releaseDrainWaiters();
          if (!this.syncDue) this.syncTimer ??= setTimeout(() => this.requestSync(), this.fsyncMs);
        } else if (this.syncDue) {
          this.syncDue = false;
          if (this.syncTimer !== null) clearTimeout(this.syncTimer);
          this.syncTimer = null;
          await this.fh.sync();
        } else {
          break;
        }
      }
    } catch (e) {
      this.fail(e);
    }
    // Cleared in the same tick as the final empty check, so no appended data can be stranded.
    this.pumping = false;
  }

  private requestSync(): void {
    this.syncTimer = null;
    this.syncDue = true;
    this.kick();
  }

  private fail(e: unknown): void {
    if (this.failure !== null) return;
    this.failure = e instanceof Error ? e : new Error(String(e));
    this.st = 'failed';
    this.clearTimers();
    this.pending = [];
    this.pendingBytes = 0;
    this.backlog = 0;
    this.releaseDrainWaiters();
    const listeners = [...this.listeners];
    this.listeners.clear();
    for (const l of listeners) {
      try {
        l(this.failure);
      } catch (err) {
        // One listener's bug must not keep the others from learning that recording stopped.
        process.emitWarning(`DurableAppender onError listener threw: ${String(err)}`);
      }
    }
  }

  private clearTimers(): void {
    if (this.flushTimer !== null) clearTimeout(this.flushTimer);
    if (this.syncTimer !== null) clearTimeout(this.syncTimer);
    this.flushTimer = null;
    this.syncTimer = null;
  }

  private releaseDrainWaiters(): void {
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of waiters) w();
  }
}
