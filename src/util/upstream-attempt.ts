/**
 * What every database adapter's upstream connection attempt shares: the
 * target's host and port, errors that start `upstream <target>:` and never
 * carry the target's password, and a failure worded by the phase it
 * happened in (connecting, the TLS handshake, or the protocol's own login).
 */
import type { TargetConfig } from '../config/schema.js';
import { type ErrorCode, WicketError, errorMessage } from '../errors.js';

export type AttemptPhase = 'connect' | 'tls' | 'login';

/** Thrown by an attempt's reader when the server closes the connection before the login finished. */
export const CLOSED = new Error('closed');

export class UpstreamAttempt {
  phase: AttemptPhase = 'connect';
  readonly host: string;
  readonly port: number;
  readonly addr: string;

  /** `loginWord` names the protocol's login phase in messages ("startup" for Postgres, "login" for MySQL). */
  constructor(readonly target: TargetConfig, private readonly loginWord: string) {
    if (!target.address) throw new WicketError('WICKET_ERR_CONFIG', `target ${target.name} has no address`);
    const i = (this.addr = target.address).lastIndexOf(':');
    [this.host, this.port] = [this.addr.slice(0, i).replace(/^\[(.*)\]$/, '$1'), Number(this.addr.slice(i + 1))];
  }

  readonly error = (message: string, code: ErrorCode = 'WICKET_ERR_UPSTREAM', details: Record<string, unknown> = {}): WicketError => {
    const pw = this.target.password;
    const text = `upstream ${this.target.name}: ${message}`;
    return new WicketError(code, pw ? text.split(pw).join('***') : text, { target: this.target.name, ...details });
  };

  /** Words a failure by the phase it happened in; errors already about this target pass unchanged. */
  wrap(e: unknown): WicketError {
    if (e instanceof WicketError) return e.details?.target === this.target.name ? e : this.error(e.message, e.code);
    const code = (e as NodeJS.ErrnoException).code;
    if (this.phase === 'connect') return this.error(`cannot connect to ${this.addr}: ${code ?? errorMessage(e)}`);
    if (this.phase === 'tls') return this.error(`TLS handshake with ${this.addr} failed: ${errorMessage(e)}${code ? ` (${code})` : ''}`);
    if (e === CLOSED) return this.error(`${this.addr} closed the connection during ${this.loginWord}`);
    return this.error(`connection to ${this.addr} failed during ${this.loginWord}: ${code ?? errorMessage(e)}`);
  }

  /** The timeout's error for the current phase. */
  timedOut(ms: number): WicketError {
    return this.phase === 'connect' ? this.error(`cannot connect to ${this.addr}: timed out after ${ms} ms`) : this.error(`${this.addr} did not finish ${this.loginWord} within ${ms} ms`);
  }
}
