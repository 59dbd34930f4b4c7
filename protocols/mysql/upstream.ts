/**
 * Opens the upstream MySQL/MariaDB connection with credentials only wicket
 * holds: TCP, the server's greeting, TLS per target.tls (SSLRequest), the
 * HandshakeResponse41 with connection attributes naming the person, then the
 * auth exchange: mysql_native_password, caching_sha2_password (fast path,
 * full path over TLS or with the server's RSA key), client_ed25519 and, over
 * TLS only, mysql_clear_password. The caller gets a PAUSED socket.
 *
 * Errors are WicketErrors starting `upstream <target>:`; the password is
 * never in them. A server ERR keeps its number in details.mysqlCode.
 */
import net from 'node:net';
import tls from 'node:tls';
import type { TargetConfig } from '../../src/config/schema.js';
import { WicketError } from '../../src/errors.js';
import { CLOSED, UpstreamAttempt } from '../../src/util/upstream-attempt.js';
import { ed25519Sign } from './ed25519.js';
import {
  CACHING_SHA2, CLIENT, UTF8MB4_GENERAL_CI, WICKET_CAPS, WIRE_CAPS, buildHandshakeResponse, buildSslRequest, cachingSha2Scramble, capNames,
  nativePasswordScramble, parseAuthSwitch, parseGreeting, rsaEncryptPassword, type Greeting,
} from './handshake.js';
import { PacketSplitter, encodePacket, parseErr, parseOk, type LogicalPacket } from './packets.js';

export interface MysqlUpstream {
  readonly socket: net.Socket | tls.TLSSocket;
  readonly greeting: Greeting;
  /** Capabilities in force on this connection (what the client chose, as the upstream accepted it). */
  readonly capabilities: number;
  readonly tls: boolean;
  /** Server status flags from the final OK. */
  readonly status: number;
}

export interface ConnectMysqlOptions {
  readonly target: TargetConfig;
  readonly database: string | null;
  /** The capabilities the client negotiated with wicket; the upstream must support the wire-affecting ones. */
  readonly clientCapabilities: number;
  readonly charset?: number;
  /** Connection attributes (program_name etc.); wicket's identity attributes are added by the caller. */
  readonly attributes: ReadonlyMap<string, string>;
  readonly connectTimeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 10_000;
const MAX_LOGIN_PACKET = 64 * 1024;
type TlsMode = NonNullable<TargetConfig['tls']>;

/** Packets from one socket, awaited one at a time. */
class PacketInbox {
  private readonly splitter = new PacketSplitter({ maxBytes: MAX_LOGIN_PACKET });
  private queue: LogicalPacket[] = [];
  private failure: Error | undefined;
  private wake: (() => void) | undefined;
  private socket: net.Socket | undefined;
  private readonly onData = (chunk: Buffer): void => {
    try {
      this.splitter.push(chunk, (p) => this.queue.push(p));
    } catch (e) {
      this.fail(e as Error);
    }
    this.poke();
  };
  private readonly onError = (e: Error): void => this.fail(e);
  private readonly onClose = (): void => this.fail(CLOSED);
  attach(s: net.Socket): void {
    (this.socket = s).on('data', this.onData).on('error', this.onError).on('close', this.onClose);
  }
  detach(pause: boolean): void {
    if (pause) this.socket?.pause();
    this.socket?.off('data', this.onData).off('error', this.onError).off('close', this.onClose);
    this.socket = undefined;
  }
  fail(e: Error): void {
    this.failure ??= e;
    this.poke();
  }
  private poke(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }
  /** Packets (or part of one) received and not handed out. Login is request/response: after the final OK there must be none. */
  get pending(): boolean {
    return this.queue.length > 0 || !this.splitter.idle;
  }
  async next(): Promise<LogicalPacket> {
    while (this.queue.length === 0) {
      if (this.failure) throw this.failure;
      await new Promise<void>((r) => (this.wake = r));
    }
    return this.queue.shift()!;
  }
}

class Attempt extends UpstreamAttempt {
  socket: net.Socket | undefined;
  readonly inbox = new PacketInbox();
  seq = 0;
  constructor(target: TargetConfig) {
    super(target, 'login');
  }
  /** Sends one packet continuing the sequence. */
  send(payload: Buffer): void {
    const { bytes, lastSeq } = encodePacket(this.seq, payload);
    this.seq = (lastSeq + 1) & 0xff;
    this.socket?.write(bytes);
  }
  async next(): Promise<LogicalPacket> {
    const p = await this.inbox.next();
    this.seq = (p.lastSeq + 1) & 0xff;
    return p;
  }
  destroy(): void {
    this.inbox.detach(false);
    this.socket?.destroy();
  }
}

async function bounded<T>(a: Attempt, ms: number, work: () => Promise<T>): Promise<T> {
  const timer = setTimeout(() => {
    const e = a.timedOut(ms);
    a.inbox.fail(e);
    a.socket?.destroy(e);
  }, ms);
  try {
    return await work();
  } catch (e) {
    a.destroy();
    throw a.wrap(e);
  } finally {
    clearTimeout(timer);
  }
}

function serverError(a: Attempt, payload: Buffer): WicketError {
  const e = parseErr(payload);
  return a.error(`${e.message} (error ${e.code}, SQLSTATE ${e.sqlState})`, 'WICKET_ERR_UPSTREAM', { mysqlCode: e.code, sqlState: e.sqlState });
}

export async function connectMysqlUpstream(opts: ConnectMysqlOptions): Promise<MysqlUpstream> {
  const { target } = opts;
  const user = target.user;
  if (!user) throw new WicketError('WICKET_ERR_CONFIG', `target ${target.name} has no user`);
  const a = new Attempt(target);
  const password = Buffer.from(target.password ?? '', 'utf8');
  const mode: TlsMode = target.tls ?? 'prefer';
  return bounded(a, opts.connectTimeoutMs ?? DEFAULT_TIMEOUT_MS, async () => {
    const raw = await new Promise<net.Socket>((resolve, reject) => {
      const s = (a.socket = net.connect({ host: a.host, port: a.port }));
      s.once('error', reject).once('connect', () => {
        s.off('error', reject);
        resolve(s);
      });
    });
    raw.setNoDelay(true);
    a.phase = 'login';
    a.inbox.attach(raw);
    const first = await a.next();
    if (first.payload[0] === 0xff) throw serverError(a, first.payload);
    const greeting = parseGreeting(first.payload);
    const server = greeting.capabilities;
    const missing = opts.clientCapabilities & WIRE_CAPS & ~server;
    if (missing) throw a.error(`server lacks ${capNames(missing).join(', ')}, which the client negotiated; wicket cannot relay between them`);
    let caps = (opts.clientCapabilities & WICKET_CAPS & server) | CLIENT.PROTOCOL_41 | CLIENT.SECURE_CONNECTION | CLIENT.PLUGIN_AUTH;
    caps &= ~(CLIENT.SSL | CLIENT.CONNECT_WITH_DB | CLIENT.CONNECT_ATTRS | CLIENT.PLUGIN_AUTH_LENENC_CLIENT_DATA);
    if (server & CLIENT.PLUGIN_AUTH_LENENC_CLIENT_DATA) caps |= CLIENT.PLUGIN_AUTH_LENENC_CLIENT_DATA;
    if (server & CLIENT.CONNECT_ATTRS) caps |= CLIENT.CONNECT_ATTRS;
    if (opts.database) caps |= CLIENT.CONNECT_WITH_DB;
    const charset = opts.charset ?? UTF8MB4_GENERAL_CI;
    let usesTls = false;
    if (mode !== 'disable') {
      if (!(server & CLIENT.SSL)) {
        if (mode !== 'prefer') throw a.error(`server at ${a.addr} does not support TLS (tls: ${mode})`);
      } else {
        caps |= CLIENT.SSL;
        a.send(buildSslRequest(caps, charset));
        a.inbox.detach(false);
        raw.on('error', () => undefined);
        a.phase = 'tls';
        const verify = mode === 'verify';
        const secure = await new Promise<tls.TLSSocket>((resolve, reject) => {
          const s = (a.socket = tls.connect({
            socket: raw, host: a.host, rejectUnauthorized: verify, ca: verify ? target.ca : undefined,
            servername: net.isIP(a.host) ? undefined : a.host,
          }));
          s.once('error', reject).once('secureConnect', () => {
            s.off('error', reject);
            resolve(s);
          });
        });
        a.phase = 'login';
        a.inbox.attach(secure);
        usesTls = true;
      }
    }
    let plugin = greeting.authPlugin;
    let scramble = greeting.scramble;
    const respond = (p: string, data: Buffer): Buffer => {
      switch (p) {
        case 'mysql_native_password':
          return nativePasswordScramble(password, data);
        case 'caching_sha2_password':
          return cachingSha2Scramble(password, data);
        case 'client_ed25519':
          return ed25519Sign(password, data);
        case 'mysql_clear_password':
          if (!usesTls) throw a.error('server asks for the password in clear (mysql_clear_password) without TLS; set tls: require on the target');
          return Buffer.concat([password, Buffer.from([0])]);
        default:
          throw a.error(`server asks for auth plugin ${p}, which wicket does not speak (it speaks mysql_native_password, caching_sha2_password, client_ed25519, mysql_clear_password)`);
      }
    };
    const known = ['mysql_native_password', 'caching_sha2_password', 'client_ed25519', 'mysql_clear_password'];
    // An unknown initial plugin: answer as native; the server then switches us to the user's plugin.
    const initial = known.includes(plugin) && plugin !== 'client_ed25519' && plugin !== 'mysql_clear_password' ? plugin : 'mysql_native_password';
    const attrs = new Map(opts.attributes);
    a.send(buildHandshakeResponse({
      capabilities: caps, charset, user, database: opts.database, authPlugin: initial,
      authResponse: respond(initial, scramble), attributes: attrs,
    }));
    plugin = initial;
    for (let rounds = 0; rounds < 8; rounds++) {
      const p = await a.next();
      const head = p.payload[0];
      if (head === 0x00) {
        const ok = parseOk(p.payload);
        a.inbox.detach(true);
        if (a.inbox.pending) throw a.error('server sent data after the login OK before any command', 'WICKET_ERR_PROTOCOL');
        return { socket: a.socket!, greeting, capabilities: caps, tls: usesTls, status: ok.status };
      }
      if (head === 0xff) throw serverError(a, p.payload);
      if (head === 0xfe) {
        const sw = parseAuthSwitch(p.payload);
        plugin = sw.plugin;
        scramble = sw.data;
        a.send(respond(plugin, scramble));
        continue;
      }
      if (head === 0x01 && plugin === 'caching_sha2_password') {
        const status = p.payload[1];
        if (status === CACHING_SHA2.FAST_AUTH_OK) continue;
        if (status === CACHING_SHA2.FULL_AUTH) {
          if (usesTls) a.send(Buffer.concat([password, Buffer.from([0])]));
          else a.send(Buffer.from([CACHING_SHA2.REQUEST_PUBLIC_KEY]));
          continue;
        }
        // The server's RSA public key (PEM) after our request.
        const pem = p.payload.subarray(1).toString('latin1');
        if (!pem.includes('BEGIN PUBLIC KEY')) throw a.error('unexpected caching_sha2_password message', 'WICKET_ERR_PROTOCOL');
        a.send(rsaEncryptPassword(password, scramble, pem));
        continue;
      }
      throw a.error(`unexpected packet 0x${(head ?? 0).toString(16)} during login`, 'WICKET_ERR_PROTOCOL');
    }
    throw a.error('login did not finish after 8 exchanges', 'WICKET_ERR_PROTOCOL');
  });
}
