/** What a Postgres connection needs from the running broker, and the cancel-key registry. */
import type { AdapterDeps } from '../../src/adapter.js';

export interface Cancellable {
  readonly processId: number;
  readonly secretKey: Buffer;
  cancel(): void;
}

/**
 * wicket hands each client its own BackendKeyData and maps it to the
 * upstream's; a CancelRequest with an unknown key does nothing (as in
 * Postgres), and each source address gets a small budget of cancels.
 */
export class CancelRegistry {
  private readonly sessions = new Map<string, Cancellable>();
  private readonly budget = new Map<string, { tokens: number; at: number }>();

  constructor(private readonly perAddressPerMinute = 60) {}

  private key(pid: number, secret: Buffer): string {
    return `${pid}:${secret.toString('hex')}`;
  }

  register(c: Cancellable): void {
    this.sessions.set(this.key(c.processId, c.secretKey), c);
  }

  unregister(c: Cancellable): void {
    const k = this.key(c.processId, c.secretKey);
    if (this.sessions.get(k) === c) this.sessions.delete(k);
  }

  /** Returns true when a session was cancelled. */
  request(pid: number, secret: Buffer, addr: string, now = Date.now()): boolean {
    const host = addr.replace(/:\d+$/, '');
    const b = this.budget.get(host) ?? { tokens: this.perAddressPerMinute, at: now };
    b.tokens = Math.min(this.perAddressPerMinute, b.tokens + ((now - b.at) / 60_000) * this.perAddressPerMinute);
    b.at = now;
    if (this.budget.size > 10_000) this.budget.clear();
    this.budget.set(host, b);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    const s = this.sessions.get(this.key(pid, secret));
    if (!s) return false;
    s.cancel();
    return true;
  }
}

export interface PgDeps extends AdapterDeps {
  readonly cancels: CancelRegistry;
  readonly maxMessageBytes: number;
  /** Called once the connection starts relaying (it no longer counts as authenticating). */
  readonly onReady?: () => void;
}

export { splitLogin } from '../../src/util/login.js';
