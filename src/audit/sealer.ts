/**
 * Keeps the signed head (head.ts) following the store while an AuditWriter
 * runs: after a committed batch the head is resealed at most once per
 * `intervalMs`; a trailing timer catches the last batch, and final() seals
 * once more at close. So the head lags the log by at most about intervalMs
 * plus one commit while a writer runs (see verify.ts for how that is judged).
 */
import type { Store } from '../store/types.js';
import { loadHeadKey, sealHead } from './head.js';

export class HeadSealer {
  private key: Buffer | null = null;
  private dirty = false;
  private busy: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private lastAt = Number.NEGATIVE_INFINITY;
  private stopped = false;

  constructor(
    private readonly store: Store,
    private readonly dataDir: string,
    private readonly intervalMs: number,
    private readonly clock: () => number,
    /** A seal failed: the writer fails closed. */
    private readonly onError: (err: unknown) => void,
  ) {}

  /** Something was committed: reseal soon. */
  mark(): void {
    this.dirty = true;
    this.kick();
  }

  private kick(): void {
    if (this.stopped || this.busy !== null || this.timer !== null || !this.dirty) return;
    const wait = this.lastAt + this.intervalMs - this.clock();
    if (wait > 0) {
      this.timer = setTimeout(() => {
        this.timer = null;
        this.kick();
      }, wait);
      return;
    }
    this.dirty = false;
    this.busy = this.sealNow().then(
      () => {
        this.busy = null;
        this.kick();
      },
      (err: unknown) => {
        this.busy = null;
        this.stop();
        this.onError(err);
      },
    );
  }

  private async sealNow(): Promise<void> {
    this.lastAt = this.clock();
    this.key ??= loadHeadKey(this.dataDir, true);
    if (this.key === null) throw new Error('audit head key could not be created');
    await sealHead(this.store, this.dataDir, this.key, this.clock());
  }

  /** Waits for a seal in progress, then seals once more if anything was committed since. Throws if that fails. */
  async final(): Promise<void> {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.stopped = true;
    await this.busy; // never rejects: kick() turns a failure into onError
    if (this.dirty) {
      this.dirty = false;
      await this.sealNow();
    }
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }
}
