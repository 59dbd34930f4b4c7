/**
 * Failed-login throttling, per user and per source address (both keys are
 * checked; either one being blocked refuses). The `freeFailures`-th failure
 * inside `windowMs` blocks for 1 s and each further one doubles the block, up
 * to `maxBlockMs`: with the default 5, the 6th attempt is refused outright.
 * The table is capped so a spray of random user names cannot grow memory.
 */
export interface ThrottleOptions {
  readonly freeFailures: number;
  readonly windowMs: number;
  readonly maxBlockMs: number;
  readonly maxEntries: number;
}

interface Entry {
  failures: number;
  firstAt: number;
  blockedUntil: number;
}

const DEFAULTS: ThrottleOptions = { freeFailures: 5, windowMs: 15 * 60_000, maxBlockMs: 15 * 60_000, maxEntries: 100_000 };

export class Throttle {
  private readonly entries = new Map<string, Entry>();
  private readonly opts: ThrottleOptions;

  constructor(opts: Partial<ThrottleOptions> = {}) {
    this.opts = { ...DEFAULTS, ...opts };
  }

  /** Milliseconds until these keys may try again; 0 when allowed now. */
  retryAfter(keys: readonly string[], now: number): number {
    let wait = 0;
    for (const k of keys) {
      const e = this.entries.get(k);
      if (e && e.blockedUntil > now) wait = Math.max(wait, e.blockedUntil - now);
    }
    return wait;
  }

  fail(keys: readonly string[], now: number): void {
    for (const k of keys) {
      let e = this.entries.get(k);
      if (!e || now - e.firstAt > this.opts.windowMs) {
        e = { failures: 0, firstAt: now, blockedUntil: 0 };
        this.entries.delete(k);
        this.entries.set(k, e);
      }
      e.failures++;
      const over = e.failures - this.opts.freeFailures;
      if (over >= 0) e.blockedUntil = now + Math.min(1000 * 2 ** Math.min(over, 20), this.opts.maxBlockMs);
    }
    // Map iterates in insertion order: drop the oldest entries past the cap.
    while (this.entries.size > this.opts.maxEntries) {
      const oldest = this.entries.keys().next().value;
      if (oldest === undefined) break;
      this.entries.delete(oldest);
    }
  }

  succeed(keys: readonly string[]): void {
    for (const k of keys) this.entries.delete(k);
  }
}

export const throttleKeys = (user: string, addr: string): string[] => [`user:${user}`, `addr:${addr}`];
