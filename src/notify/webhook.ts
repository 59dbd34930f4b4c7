/**
 * One webhook endpoint: a bounded FIFO of deliveries and one pump that sends
 * them in order, each with retries, exponential backoff and a per-request
 * timeout. It runs on its own chain of promises: enqueue() returns at once,
 * never throws, and a slow or dead endpoint delays only its own queue.
 *
 * Signature (when `secret` is set), Stripe-style so a captured request cannot
 * be replayed later:
 *   X-Wicket-Timestamp: <unix seconds of this attempt>
 *   X-Wicket-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + body bytes)>
 * Retries of one delivery keep X-Wicket-Delivery and get a fresh timestamp.
 */
import { createHmac, randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { NotifyEvent } from '../config/schema.js';
import { errorMessage } from '../errors.js';
import { renderBody, type NotifyPayload } from './events.js';

/** A webhook with its secrets resolved. */
export interface WebhookSpec {
  /** For log lines: the config `name`, else `notify[i]`. Never the URL (it may be a credential). */
  readonly label: string;
  readonly url: string;
  /** Event kinds, or ['*']. */
  readonly events: readonly (NotifyEvent | '*')[];
  readonly secret?: string;
  readonly format: 'json' | 'slack';
}

export type FetchLike = (url: string, init: {
  method: string;
  headers: Record<string, string>;
  body: Uint8Array;
  signal: AbortSignal;
  redirect: 'manual';
}) => Promise<{ readonly status: number; readonly body?: { cancel(): Promise<void> } | null }>;

export interface DeliveryOptions {
  /** Waits between attempts; attempts = length + 1. Default 1 s, 2 s, 4 s, 8 s (5 attempts). */
  readonly retryDelaysMs?: readonly number[];
  /** Per attempt, connect to response headers. Default 5000. */
  readonly timeoutMs?: number;
  /** Deliveries waiting per webhook; past it the oldest is dropped (with a warning). Default 1000. */
  readonly maxQueue?: number;
  /** Default: Node's global fetch. */
  readonly fetch?: FetchLike;
  /** Seconds for X-Wicket-Timestamp. Default Date.now. */
  readonly clock?: () => number;
  readonly log?: (line: string) => void;
}

export const DEFAULT_RETRY_DELAYS_MS: readonly number[] = [1000, 2000, 4000, 8000];
export const DEFAULT_TIMEOUT_MS = 5000;
export const DEFAULT_MAX_QUEUE = 1000;
const DROP_LOG_EVERY_MS = 10_000;

export interface WebhookStats {
  delivered: number;
  /** Deliveries given up on (attempts exhausted, permanent HTTP error, or shutdown). */
  failed: number;
  /** Dropped from a full queue. */
  dropped: number;
  /** HTTP attempts made, successful or not. */
  attempts: number;
}

interface Job {
  readonly id: string;
  readonly event: NotifyEvent;
  readonly seq: string;
  readonly body: Buffer;
}

/** `sha256=<hex>` over `<timestamp>.<body>`. */
export function sign(secret: string, timestamp: string, body: Uint8Array): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.`).update(body).digest('hex')}`;
}

/** 2xx: done. 408, 425, 429, 5xx: worth another try. Anything else (3xx, 4xx): the endpoint said no. */
function verdict(status: number): 'ok' | 'retry' | 'fail' {
  if (status >= 200 && status < 300) return 'ok';
  if (status === 408 || status === 425 || status === 429 || status >= 500) return 'retry';
  return 'fail';
}

type State = 'open' | 'closing' | 'closed';

export class Webhook {
  readonly spec: WebhookSpec;
  readonly stats: WebhookStats = { delivered: 0, failed: 0, dropped: 0, attempts: 0 };
  readonly #queue: Job[] = [];
  readonly #opts: Required<Omit<DeliveryOptions, 'fetch'>> & { fetch: FetchLike };
  readonly #all: boolean;
  readonly #wanted: ReadonlySet<string>;
  #state: State = 'open';
  /** Set and cleared inside #pump's own synchronous steps, so a job queued as it finishes is never stranded. */
  #running = false;
  #pumping: Promise<void> = Promise.resolve();
  /** Aborted at close(): cuts backoff waits short; requests keep their own timeout until the grace ends. */
  readonly #noRetry = new AbortController();
  /** Aborted when the grace period ends: in-flight requests stop. */
  readonly #abort = new AbortController();
  #droppedSinceLog = 0;
  #lastDropLog = 0;

  constructor(spec: WebhookSpec, opts: DeliveryOptions = {}) {
    this.spec = spec;
    this.#all = spec.events.includes('*');
    this.#wanted = new Set(spec.events);
    this.#opts = {
      retryDelaysMs: opts.retryDelaysMs ?? DEFAULT_RETRY_DELAYS_MS,
      timeoutMs: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      maxQueue: Math.max(1, opts.maxQueue ?? DEFAULT_MAX_QUEUE),
      fetch: opts.fetch ?? (globalThis.fetch as unknown as FetchLike),
      clock: opts.clock ?? Date.now,
      log: opts.log ?? (() => undefined),
    };
  }

  wants(event: NotifyEvent): boolean {
    return this.#all || this.#wanted.has(event);
  }

  /** Deliveries waiting (not counting the one in flight). */
  get queued(): number {
    return this.#queue.length;
  }

  /** Queues a delivery; returns at once and never throws. */
  enqueue(payload: NotifyPayload): void {
    if (this.#state !== 'open') return;
    let body: Buffer;
    try {
      body = renderBody(this.spec.format, payload);
    } catch (e) {
      this.#opts.log(`notify: ${this.spec.label}: cannot encode ${payload.event} #${payload.id}: ${errorMessage(e)}`);
      return;
    }
    if (this.#queue.length >= this.#opts.maxQueue) {
      this.#queue.shift();
      this.stats.dropped++;
      this.#droppedSinceLog++;
      const now = Date.now();
      if (now - this.#lastDropLog >= DROP_LOG_EVERY_MS) {
        this.#opts.log(`warning: notify: ${this.spec.label}: queue full (${this.#opts.maxQueue}); dropped the ${this.#droppedSinceLog} oldest undelivered notification(s)`);
        this.#lastDropLog = now;
        this.#droppedSinceLog = 0;
      }
    }
    this.#queue.push({ id: randomUUID(), event: payload.event, seq: payload.id, body });
    if (!this.#running) {
      this.#running = true;
      this.#pumping = this.#pump();
    }
  }

  /** Resolves when the queue is empty and nothing is in flight. */
  async idle(): Promise<void> {
    while (this.#running) await this.#pumping;
  }

  /**
   * Stops taking work; what is queued gets one more attempt each (no further
   * retries) for up to `graceMs`, then in-flight requests are aborted and the
   * rest is dropped. Never throws.
   */
  async close(graceMs = 0): Promise<void> {
    if (this.#state !== 'open') return this.idle();
    this.#state = 'closing';
    this.#noRetry.abort();
    const timer = setTimeout(() => this.#abort.abort(), Math.max(0, graceMs));
    try {
      await this.idle();
    } finally {
      clearTimeout(timer);
      this.#abort.abort();
      this.#state = 'closed';
    }
    if (this.#queue.length > 0) {
      this.stats.failed += this.#queue.length;
      this.#opts.log(`warning: notify: ${this.spec.label}: ${this.#queue.length} notification(s) not delivered at shutdown`);
      this.#queue.length = 0;
    }
  }

  async #pump(): Promise<void> {
    try {
      for (let job = this.#queue.shift(); job !== undefined; job = this.#queue.shift()) {
        if (this.#abort.signal.aborted) {
          this.#queue.unshift(job);
          return;
        }
        try {
          await this.#deliver(job);
        } catch (e) {
          // #deliver handles its own failures; this is a bug guard so the pump never dies.
          this.stats.failed++;
          this.#opts.log(`notify: ${this.spec.label}: ${job.event} #${job.seq}: ${errorMessage(e)}`);
        }
      }
    } finally {
      this.#running = false;
    }
  }

  async #deliver(job: Job): Promise<void> {
    const delays = this.#opts.retryDelaysMs;
    let last = '';
    for (let attempt = 0; ; attempt++) {
      const r = await this.#attempt(job);
      if (r.verdict === 'ok') {
        this.stats.delivered++;
        return;
      }
      last = r.detail;
      const more = attempt < delays.length;
      if (r.verdict === 'fail' || !more || this.#state !== 'open') {
        this.stats.failed++;
        const why = r.verdict === 'fail' ? 'not retried' : !more ? `gave up after ${attempt + 1} attempt(s)` : 'shutting down';
        this.#opts.log(`warning: notify: ${this.spec.label}: ${job.event} #${job.seq} not delivered (${why}): ${last}`);
        return;
      }
      try {
        await sleep(delays[attempt]!, undefined, { signal: this.#noRetry.signal });
      } catch {
        // close() cut the wait short: one last attempt follows unless the grace is over.
        if (this.#abort.signal.aborted) {
          this.stats.failed++;
          this.#opts.log(`warning: notify: ${this.spec.label}: ${job.event} #${job.seq} not delivered (shutting down): ${last}`);
          return;
        }
      }
    }
  }

  async #attempt(job: Job): Promise<{ verdict: 'ok' | 'retry' | 'fail'; detail: string }> {
    const timestamp = String(Math.floor(this.#opts.clock() / 1000));
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'user-agent': 'wicket',
      'x-wicket-event': job.event,
      'x-wicket-delivery': job.id,
      'x-wicket-timestamp': timestamp,
    };
    if (this.spec.secret !== undefined) headers['x-wicket-signature'] = sign(this.spec.secret, timestamp, job.body);
    this.stats.attempts++;
    const signal = AbortSignal.any([this.#abort.signal, AbortSignal.timeout(this.#opts.timeoutMs)]);
    try {
      const res = await this.#opts.fetch(this.spec.url, { method: 'POST', headers, body: job.body, signal, redirect: 'manual' });
      // The response body is not needed; release the connection.
      await res.body?.cancel().catch(() => undefined);
      return { verdict: verdict(res.status), detail: `HTTP ${res.status}` };
    } catch (e) {
      if (this.#abort.signal.aborted) return { verdict: 'retry', detail: 'aborted at shutdown' };
      if (signal.aborted) return { verdict: 'retry', detail: `no response within ${this.#opts.timeoutMs} ms` };
      return { verdict: 'retry', detail: networkError(e) };
    }
  }
}

/** fetch's "fetch failed" hides the reason in `cause` (ECONNREFUSED, ENOTFOUND ...). */
function networkError(e: unknown): string {
  const cause = e instanceof Error ? (e as Error & { cause?: unknown }).cause : undefined;
  if (cause !== null && typeof cause === 'object' && 'code' in cause && typeof cause.code === 'string') return cause.code;
  return errorMessage(cause ?? e);
}
