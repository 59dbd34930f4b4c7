/**
 * CastWriter records one terminal channel (shell / exec / pty) as asciicast v2.
 *
 * Text, not bytes: a .cast file is JSON text, so terminal bytes are decoded as
 * UTF-8 with one streaming decoder per direction. A multibyte character split
 * across two chunks is held back until its last byte arrives and is written
 * whole. Bytes that are not UTF-8 (binary output such as `cat /bin/ls`) become
 * U+FFFD, which is what a UTF-8 terminal would have shown the person: the
 * recording replays the screen faithfully; it is not a byte-exact capture.
 *
 * Output and input are the hot path (every byte of a session), so they never
 * become JS strings: a JsonBytesEncoder (json-bytes.ts) turns the bytes
 * straight into the JSON string body, the same bytes StringDecoder +
 * jsonString() would give, chunk for chunk.
 *
 * Fail closed (DESIGN §5): open() writes and fsyncs the header (and the new
 * directory entry) before it returns and throws WICKET_ERR_RECORDING if it
 * cannot, so the broker refuses the session. Later write errors move the
 * writer to `failed`, onError listeners hear once (the broker ends the
 * session), further calls are no-ops and close() rejects. Batching, fsync
 * cadence and backpressure are DurableAppender's (appender.ts).
 *
 * Live watchers (Broker.watch, web/live.ts): subscribe() hears every event
 * line from the moment it is appended, the very bytes the file gets, and
 * returns the byte offset where those lines start. Everything before that
 * offset is the file's prefix: whenWritten(offset) waits until the appender
 * has written it and readCastLines() streams it back. Subscription and offset
 * are taken in one synchronous step, so each line is either in the prefix or
 * heard live, never both, never neither. Listeners run synchronously on the
 * hot path and must only queue (a listener that throws is dropped, the
 * recording goes on).
 */
import { open } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { WicketError, errorMessage } from '../src/errors.js';
import type { TerminalRecorder } from '../src/session.js';
import { DurableAppender, type AppenderOptions } from './appender.js';
import { encodeEvent, encodeEventLine, encodeHeader, type CastEventCode } from './asciicast.js';
import { JsonBytesEncoder } from './json-bytes.js';

export interface CastWriterHeader {
  readonly width: number;
  readonly height: number;
  readonly env?: Readonly<Record<string, string>>;
  readonly title?: string;
  readonly command?: string;
  /** Unix time in seconds; default now. */
  readonly timestamp?: number;
  readonly idleTimeLimit?: number;
}

export interface CastWriterOptions extends AppenderOptions {
  /** Monotonic milliseconds (default performance.now); event times are relative to open(). */
  readonly clock?: () => number;
}

export interface CastDigest {
  /** sha256 hex of the whole file, header included. */
  readonly sha256: string;
  readonly bytes: number;
  readonly path: string;
}

export type CastWriterState = 'open' | 'closing' | 'closed' | 'failed';

/** Hears one recorded event line, `[t,"o",data]\n`, exactly as appended to the file. The buffer is shared: do not modify it. */
export type CastLineListener = (line: Buffer) => void;

export interface CastSubscription {
  /** File bytes (header included) recorded before the subscription; every later line goes to the listener. */
  readonly offset: number;
  unsubscribe(): void;
}

/** How often whenWritten() looks at the appender's progress (it has no write-completion event). */
const WRITTEN_POLL_MS = 10;

const isDim = (n: number): boolean => Number.isInteger(n) && n > 0 && n <= 65_535;

export class CastWriter implements TerminalRecorder {
  private readonly outEncoder = new JsonBytesEncoder();
  private readonly inEncoder = new JsonBytesEncoder();
  private lastTime = 0;
  private closing: Promise<CastDigest> | null = null;
  private failure: WicketError | null = null;
  /** Bytes handed to the appender so far (header included), written or not: where the next line starts. */
  private appended: number;
  private readonly subscribers = new Set<CastLineListener>();

  private constructor(
    readonly path: string,
    private readonly file: DurableAppender,
    private readonly clock: () => number,
    private readonly t0: number,
  ) {
    this.appended = file.bytesWritten;
  }

  /** Creates the file (never overwrites) with a durable header; throws WICKET_ERR_RECORDING on any failure. */
  static async open(path: string, header: CastWriterHeader, opts: CastWriterOptions = {}): Promise<CastWriter> {
    const clock = opts.clock ?? (() => performance.now());
    try {
      const line = encodeHeader({
        version: 2,
        width: header.width,
        height: header.height,
        timestamp: header.timestamp ?? Math.floor(Date.now() / 1000),
        idle_time_limit: header.idleTimeLimit,
        command: header.command,
        title: header.title,
        env: header.env,
      });
      const file = await DurableAppender.create(path, Buffer.from(`${line}\n`, 'utf8'), opts);
      return new CastWriter(path, file, clock, clock());
    } catch (e) {
      throw new WicketError('WICKET_ERR_RECORDING', `cannot write recording ${path}: ${errorMessage(e)}`, { path });
    }
  }

  get state(): CastWriterState {
    const s = this.file.state;
    return s === 'open' && this.closing !== null ? 'closing' : s;
  }

  /** False while the disk lags by more than maxPendingBytes (pause the source), or once closing/failed. */
  get writable(): boolean {
    return this.closing === null && this.file.writable;
  }

  /** Bytes written to the file so far (header included). */
  get bytesWritten(): number {
    return this.file.bytesWritten;
  }

  get error(): WicketError | null {
    const e = this.file.error;
    return e === null ? null : this.wrap(e);
  }

  /** Resolves once the backlog is at most half of maxPendingBytes, or the writer is closing/failed. */
  drained(): Promise<void> {
    return this.file.drained();
  }

  /** Called once when the recording can no longer be written; returns an unsubscribe function. */
  onError(listener: (err: WicketError) => void): () => void {
    return this.file.onError((e) => listener(this.wrap(e)));
  }

  output(data: Buffer): void {
    if (this.closing !== null) return;
    this.recordBytes('o', this.outEncoder.write(data));
  }

  input(data: Buffer): void {
    if (this.closing !== null) return;
    // The single entry point for keystrokes: a redaction filter (input typed while
    // the remote side does not echo, i.e. passwords) belongs here, before decoding.
    this.recordBytes('i', this.inEncoder.write(data));
  }

  resize(cols: number, rows: number): void {
    // Clients may send 0x0 or absurd sizes; players cannot use them, so they are not recorded.
    if (this.closing !== null || !isDim(cols) || !isDim(rows)) return;
    this.record('r', `${cols}x${rows}`);
  }

  /** A marker event (e.g. "statement refused"), shown as a chapter by players. */
  marker(label: string): void {
    if (this.closing !== null) return;
    this.record('m', label);
  }

  /**
   * Live subscription: `listener` hears every event line appended from now on.
   * The returned offset is the length of the file prefix recorded before
   * (read it with whenWritten + readCastLines): together they are the whole
   * recording with no gap and no overlap.
   */
  subscribe(listener: CastLineListener): CastSubscription {
    const wrapped: CastLineListener = (line) => listener(line);
    this.subscribers.add(wrapped);
    return { offset: this.appended, unsubscribe: () => void this.subscribers.delete(wrapped) };
  }

  /**
   * Resolves once the first `offset` bytes are in the file (written, readable
   * through another descriptor; not necessarily fsynced). Rejects with the
   * recording's error if writing failed, or with the signal's reason.
   */
  async whenWritten(offset: number, signal?: AbortSignal): Promise<void> {
    for (;;) {
      signal?.throwIfAborted();
      if (this.file.bytesWritten >= offset) return;
      const st = this.file.state;
      if (st === 'failed') throw this.wrap(this.file.error);
      if (st === 'closed') throw this.wrap(new Error(`closed at ${this.file.bytesWritten} bytes, before byte ${offset} was written`));
      await sleep(WRITTEN_POLL_MS, undefined, { signal });
    }
  }

  /** Writes and fsyncs everything recorded so far (for callers that must not run ahead of the disk). */
  async sync(): Promise<void> {
    await this.file.sync().catch((e: unknown) => {
      throw this.wrap(e);
    });
  }

  /** Flushes decoders and batch, fsyncs, closes. Idempotent. Rejects with WICKET_ERR_RECORDING if writing failed. */
  close(): Promise<CastDigest> {
    if (this.closing === null) {
      // An incomplete character at the very end becomes U+FFFD rather than vanishing.
      this.recordBytes('o', this.outEncoder.end());
      this.recordBytes('i', this.inEncoder.end());
      this.closing = this.file.close().then(
        (d) => ({ sha256: d.sha256, bytes: d.bytes, path: this.path }),
        (e: unknown) => {
          throw this.wrap(e);
        },
      );
    }
    return this.closing;
  }

  private record(code: CastEventCode, data: string): void {
    if (data === '' && code !== 'm') return;
    if (this.file.state !== 'open') return;
    this.appendLine(Buffer.from(`${encodeEvent(this.tick(), code, data)}\n`, 'utf8'));
  }

  /** body: JSON string body bytes from an encoder, only valid until its next call (encodeEventLine copies). */
  private recordBytes(code: 'o' | 'i', body: Uint8Array): void {
    // Nothing decoded (the chunk only fed a held partial character): no event, as for an empty string.
    if (body.length === 0) return;
    if (this.file.state !== 'open') return;
    this.appendLine(encodeEventLine(this.tick(), code, body));
  }

  /** The one place lines reach the file, so watchers hear exactly what is recorded, in order. */
  private appendLine(line: Buffer): void {
    this.file.append(line);
    this.appended += line.length;
    if (this.subscribers.size === 0) return;
    for (const l of this.subscribers) {
      try {
        l(line);
      } catch (err) {
        // A watcher's bug must never stop or fail the recording: it just stops hearing.
        this.subscribers.delete(l);
        process.emitWarning(`CastWriter subscriber threw: ${errorMessage(err)}`);
      }
    }
  }

  /** Seconds since open() for the next event. */
  private tick(): number {
    const now = (this.clock() - this.t0) / 1000;
    // Times must never go backwards in a cast, whatever the clock does.
    if (Number.isFinite(now) && now > this.lastTime) this.lastTime = now;
    return this.lastTime;
  }

  /** The same WicketError object for every report of the one failure. */
  private wrap(e: unknown): WicketError {
    this.failure ??= new WicketError('WICKET_ERR_RECORDING', `recording ${this.path} failed: ${errorMessage(e)}`, { path: this.path });
    return this.failure;
  }
}

/**
 * The file's first `end` bytes as whole lines (each with its "\n"), in
 * batches of about `chunkBytes`. `end` must be a line boundary, e.g. a
 * CastSubscription offset once whenWritten(offset) resolved; the file may
 * grow meanwhile, only the prefix is read. Memory: one chunk plus at most one
 * line spanning chunks.
 */
export async function* readCastLines(path: string, end: number, opts: { readonly signal?: AbortSignal; readonly chunkBytes?: number } = {}): AsyncGenerator<Buffer[]> {
  const chunkBytes = Math.max(1024, opts.chunkBytes ?? 64 * 1024);
  const fh = await open(path, 'r');
  try {
    let pos = 0;
    let carry: Buffer[] = [];
    while (pos < end) {
      opts.signal?.throwIfAborted();
      const buf = Buffer.allocUnsafe(Math.min(chunkBytes, end - pos));
      const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
      if (bytesRead === 0) throw new WicketError('WICKET_ERR_RECORDING', `${path}: ends at byte ${pos}, expected at least ${end}`, { path });
      pos += bytesRead;
      const data = buf.subarray(0, bytesRead);
      const lines: Buffer[] = [];
      let start = 0;
      for (let nl = data.indexOf(0x0a); nl !== -1; nl = data.indexOf(0x0a, start)) {
        const piece = data.subarray(start, nl + 1);
        lines.push(carry.length > 0 ? Buffer.concat([...carry, piece]) : piece);
        carry = [];
        start = nl + 1;
      }
      if (start < data.length) carry.push(data.subarray(start));
      if (lines.length > 0) yield lines;
    }
    if (carry.length > 0) throw new WicketError('WICKET_ERR_RECORDING', `${path}: byte ${end} is not at the end of a line`, { path });
  } finally {
    await fh.close();
  }
}
