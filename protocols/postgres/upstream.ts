/**
 * Opens the upstream PostgreSQL connection with credentials only wicket holds: TCP, TLS per
 * target.tls (SSLRequest), StartupMessage, auth (trust, cleartext, md5, SCRAM-SHA-256), then
 * ParameterStatus/BackendKeyData up to the first ReadyForQuery. The caller gets a PAUSED socket
 * and the bytes already read past ReadyForQuery: attach handlers, feed `leftover`, then resume().
 * Errors are WicketErrors starting `upstream <target>:`; the password is never in them.
 */
import { createHash } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import type { TargetConfig } from '../../src/config/schema.js';
import { type ErrorCode, WicketError } from '../../src/errors.js';
import { CLOSED, UpstreamAttempt } from '../../src/util/upstream-attempt.js';
import { ScramClient } from './scram-client.js';

export interface Upstream {
  readonly socket: net.Socket | tls.TLSSocket;
  /** ParameterStatus values seen during startup (server_version, client_encoding, ...). */
  readonly parameters: Map<string, string>;
  readonly processId: number;
  readonly secretKey: Buffer;
  readonly tls: boolean;
  /** Bytes read after ReadyForQuery; feed them to the relay before further socket data. */
  readonly leftover: Buffer;
}

export interface ConnectUpstreamOptions {
  readonly target: TargetConfig;
  readonly database: string;
  /** Carries the person's identity into the database's own logs. */
  readonly applicationName: string;
  /** Client startup parameters to pass through (client_encoding, DateStyle, ...); the caller filters. */
  readonly extraParams?: Readonly<Record<string, string>>;
  readonly connectTimeoutMs?: number;
  readonly signal?: AbortSignal;
}

/** A startup-phase message larger than this is a protocol error. */
export const MAX_STARTUP_MESSAGE = 1024 * 1024;
const DEFAULT_TIMEOUT_MS = 10_000;
/** Never taken from extraParams: identity, replication mode and `options` (arbitrary GUCs) are wicket's. */
const RESERVED_PARAMS = new Set(['user', 'database', 'application_name', 'replication', 'options']);
const UNSUPPORTED_AUTH: Record<number, string> = { 2: 'Kerberos V5', 6: 'SCM credentials', 7: 'GSSAPI', 8: 'GSSAPI', 9: 'SSPI' };

// ---- startup-phase codec; the relay uses framing.ts/backend.ts ----
const [PROTOCOL_3_0, SSL_REQUEST, CANCEL_REQUEST] = [196608, 80877103, 80877102];
const int32 = (n: number): Buffer => { const b = Buffer.alloc(4); b.writeInt32BE(n); return b; };
const cstr = (s: string): Buffer => Buffer.from(`${s}\0`, 'utf8');
const framed = (head: Buffer, rest: Buffer): Buffer => Buffer.concat([head, int32(rest.length + 4), rest]);
/** Untyped startup-phase packet: int32 length, int32 code, body. */
const untyped = (code: number, ...body: Buffer[]): Buffer => framed(Buffer.alloc(0), Buffer.concat([int32(code), ...body]));
const typed = (tag: string, ...body: Buffer[]): Buffer => framed(Buffer.from(tag, 'latin1'), Buffer.concat(body));
const encodeStartup = (params: Map<string, string>): Buffer =>
  untyped(PROTOCOL_3_0, ...[...params].flatMap(([k, v]) => [cstr(k), cstr(v)]), Buffer.from([0]));
const encodePassword = (password: string): Buffer => typed('p', cstr(password));
const encodeSaslInitial = (mechanism: string, data: Buffer): Buffer => typed('p', cstr(mechanism), int32(data.length), data);
const encodeSaslResponse = (data: Buffer): Buffer => typed('p', data);
type BackendMessage =
  | { type: 'auth'; code: number; body: Buffer }
  | { type: 'parameter'; name: string; value: string }
  | { type: 'key'; processId: number; secretKey: Buffer }
  | { type: 'error'; fields: Map<string, string> }
  | { type: 'ready' } | { type: 'notice' }
  | { type: 'other'; tag: string };

const cstrings = (body: Buffer): string[] => body.toString('utf8').split('\0');
function decode(tag: string, body: Buffer): BackendMessage | undefined {
  switch (tag) {
    case 'R': return body.length < 4 ? undefined : { type: 'auth', code: body.readInt32BE(0), body: body.subarray(4) };
    case 'S': { const [name, value] = cstrings(body); return value === undefined ? undefined : { type: 'parameter', name: name!, value }; }
    case 'K': return body.length < 8 ? undefined : { type: 'key', processId: body.readInt32BE(0), secretKey: Buffer.from(body.subarray(4)) };
    case 'Z': return { type: 'ready' };
    case 'E': // fields: one code byte then a C string each, ended by a zero byte
      return { type: 'error', fields: new Map(cstrings(body).filter((f) => f.length > 1).map((f) => [f[0]!, f.slice(1)])) };
    case 'N': return { type: 'notice' };
    default: return { type: 'other', tag };
  }
}

/** Buffers one socket's bytes and hands them out a byte or a message at a time. */
class Inbox {
  private buf: Buffer = Buffer.alloc(0);
  private failure: Error | undefined;
  private wake: (() => void) | undefined;
  private socket: net.Socket | undefined;
  private readonly onData = (chunk: Buffer): void => {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    if (this.buf.length > 2 * MAX_STARTUP_MESSAGE) this.fail(new Error('startup-phase buffer limit exceeded'));
    this.poke();
  };
  private readonly onError = (e: Error): void => this.fail(e);
  private readonly onClose = (): void => this.fail(CLOSED);
  attach(s: net.Socket): void { (this.socket = s).on('data', this.onData).on('error', this.onError).on('close', this.onClose); }
  /** `pause` stops the flow so no byte is lost before the next owner attaches. */
  detach(pause: boolean): void {
    if (pause) this.socket?.pause();
    this.socket?.off('data', this.onData).off('error', this.onError).off('close', this.onClose);
    this.socket = undefined;
  }
  fail(e: Error): void { this.failure ??= e; this.poke(); }
  get pending(): number { return this.buf.length; }
  take(): Buffer { const b = this.buf; this.buf = Buffer.alloc(0); return b; }
  private poke(): void { const w = this.wake; this.wake = undefined; w?.(); }
  private async fill(n: number): Promise<void> {
    while (this.buf.length < n) { if (this.failure) throw this.failure; await new Promise<void>((r) => (this.wake = r)); }
  }
  async byte(): Promise<number> { await this.fill(1); const b = this.buf[0]!; this.buf = this.buf.subarray(1); return b; }
  /** Resolves when the peer closes (or the socket fails). */
  async closed(): Promise<void> { await this.fill(Infinity).catch(() => undefined); }
  async message(err: (m: string, code: ErrorCode) => WicketError): Promise<BackendMessage> {
    await this.fill(5);
    const len = this.buf.readInt32BE(1);
    if (len < 4 || len > MAX_STARTUP_MESSAGE) throw err(`startup message of ${len} bytes is out of bounds`, 'WICKET_ERR_PROTOCOL');
    await this.fill(1 + len);
    const [tag, body] = [String.fromCharCode(this.buf[0]!), this.buf.subarray(5, 1 + len)];
    this.buf = this.buf.subarray(1 + len);
    const m = decode(tag, body);
    if (!m) throw err(`malformed '${tag}' message during startup`, 'WICKET_ERR_PROTOCOL');
    return m;
  }
}

type TlsMode = NonNullable<TargetConfig['tls']>;

/** One connection attempt: where, how far it got, and how to word its errors. */
class Attempt extends UpstreamAttempt {
  socket: net.Socket | undefined;
  readonly inbox = new Inbox();
  constructor(target: TargetConfig) {
    super(target, 'startup');
  }
  send(b: Buffer): void { this.socket?.write(b); }
  destroy(): void { this.inbox.detach(false); this.socket?.destroy(); }

  /** TCP connect, then TLS as `mode` says. Resolves whether TLS is in use. */
  async open(mode: TlsMode): Promise<boolean> {
    const raw = await new Promise<net.Socket>((resolve, reject) => {
      const s = (this.socket = net.connect({ host: this.host, port: this.port }));
      s.once('error', reject).once('connect', () => { s.off('error', reject); resolve(s); });
    });
    raw.setNoDelay(true);
    this.phase = 'login';
    this.inbox.attach(raw);
    if (mode === 'disable') return false;
    raw.write(untyped(SSL_REQUEST));
    const answer = String.fromCharCode(await this.inbox.byte());
    if (answer === 'N') {
      if (mode === 'prefer') return false;
      throw this.error(`server at ${this.addr} does not support TLS (tls: ${mode})`);
    }
    if (answer !== 'S') throw this.error(`unexpected answer to SSLRequest from ${this.addr}`, 'WICKET_ERR_PROTOCOL');
    // Bytes after 'S' but before the handshake would be injected plaintext (CVE-2021-23222).
    if (this.inbox.pending > 0) throw this.error(`${this.addr} sent unencrypted data after accepting TLS`, 'WICKET_ERR_PROTOCOL');
    this.inbox.detach(false);
    raw.on('error', () => undefined); // the TLS socket now owns the handle and reports its failures
    this.phase = 'tls';
    const verify = mode === 'verify'; // require: encrypt only; verify: CA chain (target.ca, else Node's roots) + host name
    const secure = await new Promise<tls.TLSSocket>((resolve, reject) => {
      const s = (this.socket = tls.connect({ socket: raw, host: this.host, rejectUnauthorized: verify, ca: verify ? this.target.ca : undefined,
        servername: net.isIP(this.host) ? undefined : this.host })); // SNI must not be an IP (RFC 6066)
      s.once('error', reject).once('secureConnect', () => { s.off('error', reject); resolve(s); });
    });
    this.phase = 'login';
    this.inbox.attach(secure);
    return true;
  }
}

/** Runs `work`; on timeout or abort the inbox fails, which fails `work`. Any failure destroys the socket. */
async function bounded<T>(a: Attempt, ms: number, signal: AbortSignal | undefined, work: () => Promise<T>): Promise<T> {
  const stop = (e: WicketError): void => { a.inbox.fail(e); a.socket?.destroy(e); };
  const onAbort = (): void => stop(a.error('connection attempt aborted'));
  const timer = setTimeout(() => stop(a.timedOut(ms)), ms);
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    if (signal?.aborted) throw a.error('connection attempt aborted');
    return await work();
  } catch (e) {
    a.destroy();
    throw a.wrap(e);
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener('abort', onAbort);
  }
}

const md5hex = (data: Buffer | string): string => createHash('md5').update(data).digest('hex');

export async function connectUpstream(opts: ConnectUpstreamOptions): Promise<Upstream> {
  const { target } = opts;
  const user = target.user;
  if (!user) throw new WicketError('WICKET_ERR_CONFIG', `target ${target.name} has no user`);
  const params = new Map([['user', user], ['database', opts.database], ['application_name', opts.applicationName]]);
  for (const [k, v] of Object.entries(opts.extraParams ?? {})) {
    if (!RESERVED_PARAMS.has(k.toLowerCase()) && !k.startsWith('_pq_.')) params.set(k, v);
  }
  if ([...params].some(([k, v]) => `${k}${v}`.includes('\0'))) throw new WicketError('WICKET_ERR_PROTOCOL', 'a startup parameter contains a NUL byte');
  const a = new Attempt(target);
  const password = (): string => {
    if (target.password === undefined) throw a.error('the server asked for a password but the target has none');
    return target.password;
  };
  return bounded(a, opts.connectTimeoutMs ?? DEFAULT_TIMEOUT_MS, opts.signal, async () => {
    const usesTls = await a.open(target.tls ?? 'prefer');
    a.send(encodeStartup(params));
    const parameters = new Map<string, string>();
    let state: 'authenticating' | 'authenticated' = 'authenticating';
    let scram: ScramClient | undefined;
    let [processId, secretKey] = [0, Buffer.alloc(0) as Buffer];
    for (;;) {
      const m = await a.inbox.message(a.error);
      if (m.type === 'error') {
        const f = (k: string): string | undefined => m.fields.get(k);
        const sqlstate = f('C') ?? 'XX000';
        throw a.error(`${f('M') ?? 'unknown error'} (SQLSTATE ${sqlstate})`, 'WICKET_ERR_UPSTREAM', { sqlstate, severity: f('V') ?? f('S'), detail: f('D'), hint: f('H') });
      } else if (m.type === 'notice') {
        continue;
      } else if (m.type === 'auth' && state === 'authenticating') {
        switch (m.code) {
          case 0: // AuthenticationOk; after SCRAM only once the server has proved itself
            if (scram && !scram.verified) throw a.error('upstream server skipped SCRAM verification');
            state = 'authenticated';
            break;
          case 3: a.send(encodePassword(password())); break;
          case 5: // md5: 'md5' + md5(md5(password + user) + salt)
            if (m.body.length !== 4) throw a.error('malformed md5 salt', 'WICKET_ERR_PROTOCOL');
            a.send(encodePassword(`md5${md5hex(Buffer.concat([Buffer.from(md5hex(password() + user)), m.body]))}`));
            break;
          case 10: { // AuthenticationSASL: mechanism names, then an empty one
            const mechanisms = cstrings(m.body).filter((s) => s.length > 0);
            if (!mechanisms.includes('SCRAM-SHA-256')) {
              throw a.error(mechanisms.includes('SCRAM-SHA-256-PLUS')
                ? 'server requires SCRAM-SHA-256-PLUS (channel binding), which wicket does not support'
                : `server offers no supported SASL mechanism (${mechanisms.join(', ')})`);
            }
            scram = new ScramClient(password());
            a.send(encodeSaslInitial('SCRAM-SHA-256', scram.clientFirst()));
            break;
          }
          case 11: case 12: // SASLContinue carries server-first, SASLFinal server-final
            if (!scram) throw a.error('SASL message before SASL was chosen', 'WICKET_ERR_PROTOCOL');
            if (m.code === 11) a.send(encodeSaslResponse(await scram.serverFirst(m.body)));
            else scram.serverFinal(m.body);
            break;
          default:
            throw a.error(`server requested unsupported authentication (${UNSUPPORTED_AUTH[m.code] ?? `code ${m.code}`})`);
        }
      } else if (state === 'authenticated' && m.type === 'parameter') {
        parameters.set(m.name, m.value);
      } else if (state === 'authenticated' && m.type === 'key') {
        ({ processId, secretKey } = m);
      } else if (state === 'authenticated' && m.type === 'ready') {
        a.inbox.detach(true);
        return { socket: a.socket!, parameters, processId, secretKey, tls: usesTls, leftover: a.inbox.take() };
      } else {
        throw a.error(`unexpected ${m.type === 'other' ? `'${m.tag}'` : m.type} message during startup`, 'WICKET_ERR_PROTOCOL');
      }
    }
  });
}

/**
 * Sends CancelRequest (code 80877102, process id, secret key) on a NEW connection, after TLS
 * negotiation when tls is require/verify. Resolves once the server has read it and closed.
 */
export async function cancelUpstream(target: TargetConfig, processId: number, secretKey: Buffer, timeoutMs = 5_000): Promise<void> {
  const a = new Attempt(target);
  const mode: TlsMode = target.tls === 'require' || target.tls === 'verify' ? target.tls : 'disable';
  await bounded(a, timeoutMs, undefined, async () => {
    await a.open(mode);
    a.send(untyped(CANCEL_REQUEST, int32(processId), secretKey));
    await a.inbox.closed();
  });
  a.destroy();
}
