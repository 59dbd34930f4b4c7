/**
 * AuditWriter: the hot path between protocol adapters and the hash chain.
 *
 * append() validates and serialises the event (a bad event fails its caller,
 * not a batch) and queues it; a pump writes the queue in call order, in
 * batches of up to `batchSize` per store.appendAudit call (one transaction,
 * one fsync), with up to `pipelineDepth` batches in flight.
 *
 * Backpressure, never drops: append() returns false once `highWaterMark`
 * events are pending (queued + being written); the adapter pauses its socket
 * and awaits drained(), which resolves when the backlog is back down to half
 * the mark. A caller that ignores this hits `hardLimit` and gets a
 * WICKET_ERR_LIMIT throw (a bug in that caller; its session should end).
 *
 * Failure is terminal and fails closed: if the store rejects a write (or the
 * head cannot be sealed), the writer enters `failed`, calls every onFailure
 * listener once with the error (the broker ends all sessions), rejects
 * pending appendNow/flush/drained promises, and every later append throws
 * WICKET_ERR_RECORDING. The queued events of a failed writer are not written.
 *
 * Head lag: the signed head follows the log at most every `headIntervalMs`
 * (default 100 ms) and at close (sealer.ts); verify.ts says how it judges
 * events past the head.
 */
import { WicketError, errorMessage } from '../errors.js';
import type { AuditEvent, AuditInput, Store } from '../store/types.js';
import { prepareAudit, type PreparedAuditInput } from './prepared.js';
import { Fifo } from './fifo.js';
import { HeadSealer } from './sealer.js';

export interface AuditWriterOptions {
  /** append() returns false at or above this many pending events. Default 50_000. */
  readonly highWaterMark?: number;
  /** append() throws WICKET_ERR_LIMIT at this many (a source that ignores backpressure). Default 2 x highWaterMark. */
  readonly hardLimit?: number;
  /** Events per store.appendAudit call. Default 1000. */
  readonly batchSize?: number;
  /**
   * How long events may wait for company before their batch is written
   * (unless a batch is full, or someone awaits them). Default 5 ms. Under
   * load this sets the batch size: sending each batch as soon as the last
   * one committed made batches of ~15 events, and the worker's per-commit
   * work then cost a third more CPU per event than with ~50-100 per batch.
   */
  readonly flushDelayMs?: number;
  /** Minimum time between signed-head writes. Default 100 ms. */
  readonly headIntervalMs?: number;
  /** For the head's writtenAt and its throttle. Default Date.now. */
  readonly clock?: () => number;
  /** Batches in flight at once. Default: what the store declares (appendPipelineDepth), else 1. */
  readonly pipelineDepth?: number;
}

/**
 * A store may declare `appendPipelineDepth: number` (outside the Store
 * interface): concurrent appendAudit calls are applied in call order and a
 * failed one fails those queued behind it, so that many batches may be in
 * flight. SqliteStore does; any other store gets one at a time.
 */
function appendPipelineDepth(store: Store): number {
  const d = (store as { appendPipelineDepth?: unknown }).appendPipelineDepth;
  return typeof d === 'number' && d >= 1 ? d : 1;
}

type WriterState = 'open' | 'closing' | 'closed' | 'failed';

interface Item {
  readonly input: PreparedAuditInput;
  readonly done?: { readonly resolve: (ev: AuditEvent) => void; readonly reject: (err: Error) => void };
}

interface Waiter {
  readonly resolve: () => void;
  readonly reject: (err: Error) => void;
}

/** Resolves once `target` events (counted from the writer's start) are committed. */
type FlushWaiter = Waiter & { readonly target: number };

export class AuditWriter {
  private readonly hwm: number;
  private readonly lowWater: number;
  private readonly hardLimit: number;
  private readonly batchSize: number;
  private readonly flushDelayMs: number;

  private state: WriterState = 'open';
  private cause: Error | null = null;
  private readonly queue = new Fifo<Item>();
  /** Events in batches handed to the store and not yet committed. */
  private inflight = 0;
  private readonly inflightBatches: Item[][] = [];
  private readonly depth: number;
  private enqueued = 0;
  /** Queued items an appendNow caller awaits. */
  private awaitedQueued = 0;
  private committed = 0;
  private kickTimer: NodeJS.Timeout | null = null;
  private kickImmediate: NodeJS.Immediate | null = null;
  private flushWaiters: FlushWaiter[] = [];
  private readonly drainWaiters: Waiter[] = [];
  private readonly failureListeners = new Set<(err: Error) => void>();
  private closing: Promise<void> | null = null;

  private readonly sealer: HeadSealer;

  constructor(
    private readonly store: Store,
    dataDir: string,
    opts: AuditWriterOptions = {},
  ) {
    this.hwm = Math.max(1, opts.highWaterMark ?? 50_000);
    this.lowWater = Math.floor(this.hwm / 2);
    this.hardLimit = Math.max(this.hwm, opts.hardLimit ?? this.hwm * 2);
    this.batchSize = Math.max(1, opts.batchSize ?? 1000);
    this.flushDelayMs = Math.max(0, opts.flushDelayMs ?? 5);
    const headIntervalMs = Math.max(0, opts.headIntervalMs ?? 100);
    const clock = opts.clock ?? Date.now;
    this.sealer = new HeadSealer(store, dataDir, headIntervalMs, clock, (err) => this.fail(err));
    this.depth = Math.max(1, Math.floor(opts.pipelineDepth ?? appendPipelineDepth(store)));
  }

  /** Events accepted but not yet committed. */
  get pending(): number {
    return this.queue.size + this.inflight;
  }

  /** The error that failed the writer, or null. */
  get failure(): Error | null {
    return this.cause;
  }

  /** Queues an event. false = pause the source and await drained(). Throws when failed, closed or over hardLimit. */
  append(input: AuditInput): boolean {
    this.assertWritable();
    if (this.pending >= this.hardLimit) {
      throw new WicketError('WICKET_ERR_LIMIT', `audit queue full (${this.hardLimit} events): the source ignored backpressure`);
    }
    // Fire-and-forget: nobody reads this event's data back, so keep only its JSON.
    this.enqueue({ input: this.prepare(input, false) }, false);
    return this.pending < this.hwm;
  }

  /** Queues an event behind everything already queued and resolves once it is committed (chained, fsynced). */
  appendNow(input: AuditInput): Promise<AuditEvent> {
    try {
      this.assertWritable();
      const prepared = this.prepare(input);
      return new Promise<AuditEvent>((resolve, reject) => this.enqueue({ input: prepared, done: { resolve, reject } }, true));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Resolves at once when below the high-water mark, else when the backlog is down to half of it. */
  drained(): Promise<void> {
    if (this.cause) return Promise.reject(this.recordingError());
    if (this.pending < this.hwm) return Promise.resolve();
    return new Promise<void>((resolve, reject) => this.drainWaiters.push({ resolve, reject }));
  }

  /** Resolves when every event appended before this call is committed. */
  flush(): Promise<void> {
    if (this.cause) return Promise.reject(this.recordingError());
    const target = this.enqueued;
    if (this.committed >= target) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.flushWaiters.push({ target, resolve, reject });
      this.kick(true);
    });
  }

  /** Stops accepting events, writes what is queued, seals the head if anything was written. On a failed writer: only stops timers. */
  close(): Promise<void> {
    if (this.state === 'closed') return Promise.resolve();
    if (this.state === 'failed') {
      this.stopTimers();
      return Promise.resolve();
    }
    this.closing ??= (async () => {
      this.state = 'closing';
      await this.flush();
      try {
        await this.sealer.final();
      } catch (err) {
        this.fail(err);
      }
      if (this.cause) throw this.recordingError();
      this.stopTimers();
      this.state = 'closed';
    })();
    return this.closing;
  }

  /** Called once with the error when the writer fails (immediately, on a microtask, if it already has). Returns an unsubscribe. */
  onFailure(cb: (err: Error) => void): () => void {
    this.failureListeners.add(cb);
    const cause = this.cause;
    if (cause) queueMicrotask(() => this.failureListeners.has(cb) && cb(cause));
    return () => void this.failureListeners.delete(cb);
  }

  private prepare(input: AuditInput, keepData = true): PreparedAuditInput {
    try {
      return prepareAudit(input, keepData);
    } catch (err) {
      throw new WicketError('WICKET_ERR_INTERNAL', `audit event cannot be recorded: ${errorMessage(err)}`);
    }
  }

  private assertWritable(): void {
    if (this.cause) throw this.recordingError();
    if (this.state !== 'open') throw new WicketError('WICKET_ERR_RECORDING', 'recording unavailable: the audit writer is closed');
  }

  private recordingError(): WicketError {
    return new WicketError('WICKET_ERR_RECORDING', `recording unavailable: audit log cannot be written: ${this.cause?.message ?? 'unknown error'}`);
  }

  private enqueue(item: Item, urgent: boolean): void {
    this.queue.push(item);
    this.enqueued++;
    if (item.done) this.awaitedQueued++;
    this.kick(urgent || this.pending >= this.batchSize);
  }

  /** Schedules a pump: on the next turn when urgent or a batch is full, else after flushDelayMs. */
  private kick(urgent: boolean): void {
    if (this.kickImmediate !== null || this.cause) return;
    if (urgent) {
      if (this.kickTimer) clearTimeout(this.kickTimer);
      this.kickTimer = null;
      this.kickImmediate = setImmediate(() => this.pump());
    } else if (this.kickTimer === null) {
      this.kickTimer = setTimeout(() => this.pump(), this.flushDelayMs);
    }
  }

  /** Sends batches, in queue order, until `depth` are in flight (see appendPipelineDepth). */
  private pump(): void {
    if (this.kickTimer) clearTimeout(this.kickTimer);
    this.kickTimer = this.kickImmediate = null;
    while (!this.cause && this.inflightBatches.length < this.depth && this.queue.size > 0) {
      const batch = this.queue.take(this.batchSize);
      for (const i of batch) if (i.done) this.awaitedQueued--;
      this.inflightBatches.push(batch);
      this.inflight += batch.length;
      this.store.appendAudit(batch.map((i) => i.input)).then(
        (events) => this.committedBatch(batch, events),
        (err: unknown) => this.fail(err),
      );
    }
  }

  private committedBatch(batch: Item[], events: AuditEvent[]): void {
    if (this.cause) return; // already failed: its items were rejected then
    if (this.inflightBatches[0] !== batch || events.length !== batch.length) {
      this.fail(new Error(`store committed audit batches out of order or partially (${events.length} of ${batch.length})`));
      return;
    }
    this.inflightBatches.shift();
    this.inflight -= batch.length;
    this.committed += batch.length;
    for (let i = 0; i < batch.length; i++) batch[i]!.done?.resolve(events[i]!);
    this.settleWaiters();
    this.sealer.mark();
    // Via the event loop, not a microtask chain: a store that works synchronously
    // inside appendAudit must not starve sockets and timers. What queued
    // meanwhile waits for company unless a batch is full or someone awaits it.
    if (this.queue.size > 0) this.kick(this.queue.size >= this.batchSize || this.awaited());
  }

  /** An appendNow or flush is waiting on something still queued. */
  private awaited(): boolean {
    return this.flushWaiters.length > 0 || this.awaitedQueued > 0;
  }

  private settleWaiters(): void {
    if (this.flushWaiters.length > 0) {
      const still: FlushWaiter[] = [];
      for (const w of this.flushWaiters) (this.committed >= w.target ? w.resolve() : still.push(w));
      this.flushWaiters = still;
    }
    if (this.drainWaiters.length > 0 && this.pending <= this.lowWater) for (const w of this.drainWaiters.splice(0)) w.resolve();
  }

  private fail(err: unknown): void {
    if (this.cause) return;
    const cause = err instanceof Error ? err : new Error(String(err));
    this.cause = cause;
    this.state = 'failed';
    const rejection = this.recordingError();
    const lost = [...this.inflightBatches.splice(0).flat(), ...this.queue.takeAll()];
    this.inflight = 0;
    this.awaitedQueued = 0;
    for (const item of lost) item.done?.reject(rejection);
    for (const w of [...this.flushWaiters.splice(0), ...this.drainWaiters.splice(0)]) w.reject(rejection);
    this.stopTimers();
    for (const cb of [...this.failureListeners]) {
      try {
        cb(cause);
      } catch {
        // A listener's own failure must not stop the others from failing closed.
      }
    }
  }

  private stopTimers(): void {
    if (this.kickTimer) clearTimeout(this.kickTimer);
    if (this.kickImmediate) clearImmediate(this.kickImmediate);
    this.kickTimer = this.kickImmediate = null;
    this.sealer.stop();
  }
}
