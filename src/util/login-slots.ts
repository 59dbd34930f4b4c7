/**
 * Connections still logging in (handshake, TLS, auth, upstream connect),
 * capped in total and per source host, so that one host holding idle
 * half-open logins (each up to the auth timeout) cannot lock everyone else out.
 */
export class LoginSlots {
  private total = 0;
  private readonly perHost = new Map<string, number>();

  constructor(
    readonly maxTotal = 256,
    readonly maxPerHost = 128,
  ) {}

  /** A release function, or a reason the connection must be refused. */
  take(host: string): { ok: true; release: () => void } | { ok: false; why: string } {
    if (this.total >= this.maxTotal) return { ok: false, why: `${this.maxTotal} connections are already logging in` };
    const n = this.perHost.get(host) ?? 0;
    if (n >= this.maxPerHost) return { ok: false, why: `${this.maxPerHost} connections from ${host} are already logging in` };
    this.total++;
    this.perHost.set(host, n + 1);
    let held = true;
    return {
      ok: true,
      release: () => {
        if (!held) return;
        held = false;
        this.total--;
        const left = (this.perHost.get(host) ?? 1) - 1;
        if (left <= 0) this.perHost.delete(host);
        else this.perHost.set(host, left);
      },
    };
  }

  get inUse(): number {
    return this.total;
  }
}
