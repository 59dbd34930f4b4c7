/**
 * Server side of SCRAM-SHA-256 (RFC 5802/7677 as PostgreSQL speaks it) over
 * the user's stored SCRAM secrets. I/O-free: feed it the client's messages,
 * send back what it returns.
 *
 * All of a user's secrets (password and tokens) share one salt, because the
 * server must announce the salt before it knows which secret the client
 * holds; the proof is then checked against each StoredKey.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { ScramCandidate } from '../../src/auth/authenticate.js';
import { SCRAM_ITERATIONS } from '../../src/auth/password.js';

export const SCRAM_MECHANISM = 'SCRAM-SHA-256';

export type ScramServerState = 'awaiting_client_first' | 'awaiting_client_final' | 'done';

export type ScramFinal =
  | { readonly ok: true; readonly candidate: ScramCandidate; readonly serverFinal: Buffer }
  | { readonly ok: false; readonly why: string };

const PRINTABLE = /^[\x21-\x2b\x2d-\x7e]+$/; // RFC 5802 nonce: printable ASCII except ','

export class ScramServer {
  private step: ScramServerState = 'awaiting_client_first';
  private gs2Header = '';
  private clientFirstBare = '';
  private serverFirst = '';
  private nonce = '';
  private readonly salt: string;
  private readonly iterations: number;

  get state(): ScramServerState {
    return this.step;
  }

  /** With no candidates (no password set) the exchange runs on a random salt and always fails. */
  constructor(private readonly candidates: readonly ScramCandidate[]) {
    this.salt = candidates[0]?.secret.salt ?? randomBytes(16).toString('base64');
    this.iterations = candidates[0]?.secret.iterations ?? SCRAM_ITERATIONS;
  }

  /** client-first-message → server-first-message. Throws Error with a client-facing reason on malformed input. */
  clientFirst(data: Buffer): Buffer {
    if (this.step !== 'awaiting_client_first') throw new Error('unexpected SCRAM message');
    const text = data.toString('utf8');
    // gs2-header: cbind-flag "," [authzid] ","
    const m = /^(n|y|p=[^,]*),([^,]*),(.*)$/s.exec(text);
    if (!m) throw new Error('malformed SCRAM client-first-message');
    if (m[1]!.startsWith('p=')) throw new Error('channel binding (SCRAM-SHA-256-PLUS) was not offered');
    if (m[2] !== '') throw new Error('SCRAM authorization identity is not supported');
    this.gs2Header = `${m[1]},${m[2]},`;
    this.clientFirstBare = m[3]!;
    const attrs = this.clientFirstBare.split(',');
    // PostgreSQL clients send an empty n= (the user comes from the startup packet).
    const r = attrs.find((a) => a.startsWith('r='))?.slice(2);
    if (!attrs[0]?.startsWith('n=') || !r || !PRINTABLE.test(r) || r.length > 256) throw new Error('malformed SCRAM client-first-message');
    this.nonce = r + randomBytes(18).toString('base64');
    this.serverFirst = `r=${this.nonce},s=${this.salt},i=${this.iterations}`;
    this.step = 'awaiting_client_final';
    return Buffer.from(this.serverFirst, 'utf8');
  }

  /** client-final-message → verdict, and on success the server-final-message. */
  clientFinal(data: Buffer): ScramFinal {
    if (this.step !== 'awaiting_client_final') throw new Error('unexpected SCRAM message');
    this.step = 'done';
    const text = data.toString('utf8');
    const i = text.lastIndexOf(',p=');
    if (i < 0) throw new Error('malformed SCRAM client-final-message');
    const withoutProof = text.slice(0, i);
    const proof = Buffer.from(text.slice(i + 3), 'base64');
    const attrs = withoutProof.split(',');
    const c = attrs.find((a) => a.startsWith('c='))?.slice(2);
    const r = attrs.find((a) => a.startsWith('r='))?.slice(2);
    if (c !== Buffer.from(this.gs2Header).toString('base64')) throw new Error('SCRAM channel binding data does not match');
    if (r !== this.nonce) throw new Error('SCRAM nonce does not match');
    if (proof.length !== 32) return { ok: false, why: 'bad proof' };
    const authMessage = `${this.clientFirstBare},${this.serverFirst},${withoutProof}`;
    for (const candidate of this.candidates) {
      const storedKey = Buffer.from(candidate.secret.storedKey, 'base64');
      const clientSignature = createHmac('sha256', storedKey).update(authMessage).digest();
      const clientKey = Buffer.alloc(32);
      for (let k = 0; k < 32; k++) clientKey[k] = proof[k]! ^ clientSignature[k]!;
      if (timingSafeEqual(createHash('sha256').update(clientKey).digest(), storedKey)) {
        const serverSignature = createHmac('sha256', Buffer.from(candidate.secret.serverKey, 'base64')).update(authMessage).digest('base64');
        return { ok: true, candidate, serverFinal: Buffer.from(`v=${serverSignature}`, 'utf8') };
      }
    }
    return { ok: false, why: 'proof matches no secret' };
  }
}
