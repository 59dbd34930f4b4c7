/**
 * SCRAM-SHA-256 client (RFC 5802 / RFC 7677) as PostgreSQL speaks it. Pure:
 * no I/O, the caller moves the bytes. Wire facts:
 * - gs2 header `n,,`: no channel binding (SCRAM-SHA-256-PLUS is not offered
 *   by this client); `c=biws` is base64("n,,").
 * - Postgres ignores the SCRAM user name and uses the startup `user`, so
 *   client-first is `n,,n=,r=<nonce>`.
 * - The password goes through SASLprep; Postgres falls back to the raw bytes
 *   when SASLprep fails, and so do we (see `saslprep`).
 * - The server proves it knows the verifier in server-final (`v=`); a
 *   mismatch means we talked to an impostor, so it is an error, not a warning.
 */
import { createHash, createHmac, pbkdf2, randomBytes, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';

/** Off the event loop: the upstream chooses the iteration count (up to MAX_ITERATIONS). */
const pbkdf2Async = promisify(pbkdf2);
import { WicketError } from '../../src/errors.js';

/** Postgres's default is 4096, but it accepts any positive count. */
const MIN_ITERATIONS = 1;
/** Bounds the CPU an upstream can make us spend in PBKDF2 (runs synchronously). */
const MAX_ITERATIONS = 10_000_000;

type State = 'initial' | 'awaiting-server-first' | 'deriving' | 'awaiting-server-final' | 'done';

export interface ScramClientOptions {
  /** Client nonce; random by default. Only tests pin it. */
  readonly nonce?: string;
  /** SCRAM user name; Postgres ignores it, so empty by default. */
  readonly username?: string;
}

function fail(message: string): never {
  throw new WicketError('WICKET_ERR_UPSTREAM', message);
}

const hmac = (key: Buffer, data: string | Buffer): Buffer => createHmac('sha256', key).update(data).digest();

/** RFC 4013 in brief: non-ASCII spaces → U+0020, "mapped to nothing" removed, NFKC. */
function saslprep(password: string): string {
  if (/^[\x20-\x7e]*$/.test(password)) return password;
  const mapped = password
    .replace(/[\u00a0\u1680\u2000-\u200b\u202f\u205f\u3000]/g, ' ')
    .replace(/[\u00ad\u034f\u1806\u180b-\u180d\u200c\u200d\u2060\ufe00-\ufe0f\ufeff]/g, '')
    .normalize('NFKC');
  // Prohibited output (controls, private use, surrogates...): use the raw password, like Postgres.
  return /[\u0000-\u001f\u007f-\u009f\ue000-\uf8ff\ufff9-\ufffd]/.test(mapped) ? password : mapped;
}

/** Splits `a=1,b=2` into ordered [key, value] pairs; values may contain '='. */
function attributes(message: string): Array<[string, string]> {
  return message.split(',').map((part) => {
    if (part.length < 2 || part[1] !== '=') fail(`malformed SCRAM message from server`);
    return [part[0]!, part.slice(2)];
  });
}

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

export class ScramClient {
  private state: State = 'initial';
  private readonly nonce: string;
  private readonly clientFirstBare: string;
  private expectedServerSignature: Buffer | undefined;

  constructor(private readonly password: string, opts: ScramClientOptions = {}) {
    this.nonce = opts.nonce ?? randomBytes(18).toString('base64');
    // RFC 5802 §5.1: ',' and '=' in the user name are escaped as =2C and =3D.
    const user = (opts.username ?? '').replace(/=/g, '=3D').replace(/,/g, '=2C');
    this.clientFirstBare = `n=${user},r=${this.nonce}`;
  }

  /** The SASLInitialResponse payload. */
  clientFirst(): Buffer {
    if (this.state !== 'initial') fail('SCRAM client-first sent twice');
    this.state = 'awaiting-server-first';
    return Buffer.from(`n,,${this.clientFirstBare}`, 'utf8');
  }

  /** Takes AuthenticationSASLContinue's payload; resolves to the SASLResponse payload (client-final). */
  async serverFirst(data: Buffer): Promise<Buffer> {
    if (this.state !== 'awaiting-server-first') fail('unexpected SCRAM server-first message');
    const serverFirst = data.toString('utf8');
    const attrs = attributes(serverFirst);
    if (attrs[0]?.[0] === 'e') fail(`SCRAM error from server: ${attrs[0][1]}`);
    if (attrs[0]?.[0] === 'm') fail('server requires an unsupported SCRAM extension');
    const [r, s, i] = attrs;
    if (r?.[0] !== 'r' || s?.[0] !== 's' || i?.[0] !== 'i') fail('malformed SCRAM server-first message');
    const serverNonce = r[1];
    if (!serverNonce.startsWith(this.nonce) || serverNonce.length === this.nonce.length) {
      fail('SCRAM server nonce does not extend the client nonce');
    }
    if (!BASE64.test(s[1])) fail('malformed SCRAM salt');
    const salt = Buffer.from(s[1], 'base64');
    if (!/^\d{1,9}$/.test(i[1])) fail('malformed SCRAM iteration count');
    const iterations = Number(i[1]);
    if (iterations < MIN_ITERATIONS || iterations > MAX_ITERATIONS) {
      fail(`SCRAM iteration count ${iterations} is outside ${MIN_ITERATIONS}..${MAX_ITERATIONS}`);
    }

    this.state = 'deriving';
    const salted = await pbkdf2Async(Buffer.from(saslprep(this.password), 'utf8'), salt, iterations, 32, 'sha256');
    const clientKey = hmac(salted, 'Client Key');
    const storedKey = createHash('sha256').update(clientKey).digest();
    const withoutProof = `c=biws,r=${serverNonce}`;
    const authMessage = `${this.clientFirstBare},${serverFirst},${withoutProof}`;
    const clientSignature = hmac(storedKey, authMessage);
    const proof = Buffer.alloc(clientKey.length);
    for (let k = 0; k < proof.length; k++) proof[k] = clientKey[k]! ^ clientSignature[k]!;
    this.expectedServerSignature = hmac(hmac(salted, 'Server Key'), authMessage);
    this.state = 'awaiting-server-final';
    return Buffer.from(`${withoutProof},p=${proof.toString('base64')}`, 'utf8');
  }

  /** Takes AuthenticationSASLFinal's payload; throws unless the server proved it holds the verifier. */
  serverFinal(data: Buffer): void {
    if (this.state !== 'awaiting-server-final' || this.expectedServerSignature === undefined) {
      fail('unexpected SCRAM server-final message');
    }
    const [first] = attributes(data.toString('utf8'));
    if (first?.[0] === 'e') fail(`SCRAM error from server: ${first[1]}`);
    const got = first?.[0] === 'v' && BASE64.test(first[1]) ? Buffer.from(first[1], 'base64') : Buffer.alloc(0);
    const want = this.expectedServerSignature;
    if (got.length !== want.length || !timingSafeEqual(got, want)) {
      fail('upstream server failed SCRAM verification');
    }
    this.state = 'done';
  }

  /** True once the server signature has been verified. */
  get verified(): boolean {
    return this.state === 'done';
  }
}
