/**
 * One MySQL client connection, from the greeting to the relay:
 *
 *   greeting (HandshakeV10, caching_sha2_password, 20-byte scramble)
 *      ▼ SSLRequest ─▶ TLS with the broker certificate
 *   response (HandshakeResponse41: <user>@<target>, database, capabilities)
 *      ▼ without TLS: ERR asking for --ssl (the password must never cross in clear)
 *   auth: caching_sha2_password full authentication (AuthMoreData 0x04: the
 *      client sends the password inside TLS) or mysql_clear_password after an
 *      auth switch; checked against the stored scrypt hash or a token
 *      ▼
 *   connecting (policy via the broker, recorder, upstream with wicket's credentials)
 *      ▼ OK
 *   relay (relay.ts) ──▶ closed
 *
 * wicket stores nothing password-equivalent for MySQL: the fast paths
 * (mysql_native_password, caching_sha2_password's scramble) would need one,
 * so the person's password is only ever checked in clear inside TLS.
 * Every refusal is one ERR packet continuing the client's sequence, then a close.
 */
import { randomBytes, randomInt } from 'node:crypto';
import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import type { ActiveSession } from '../../src/broker.js';
import { authenticateSecret } from '../../src/auth/authenticate.js';
import { throttleKeys } from '../../src/auth/throttle.js';
import { errorMessage, isWicketError } from '../../src/errors.js';
import { splitLogin } from '../../src/util/login.js';
import type { AdapterDeps } from '../../src/adapter.js';
import { CACHING_SHA2, CLIENT, UTF8MB4_GENERAL_CI, WICKET_CAPS, authSwitchRequest, buildGreeting, isSslRequest, parseHandshakeResponse, type HandshakeResponse } from './handshake.js';
import { ER, PacketSplitter, STATUS, encodePacket, errPayload, okPayload, type LogicalPacket } from './packets.js';
import { MysqlRelay } from './relay.js';
import { connectMysqlUpstream } from './upstream.js';

export interface MysqlDeps extends AdapterDeps {
  readonly maxPacketBytes: number;
  /** The version string in the greeting (the last upstream's, with -wicket). */
  readonly serverVersion: () => string;
  readonly onUpstreamVersion: (v: string) => void;
  /** Called once the connection starts relaying (it no longer counts as authenticating). */
  readonly onReady?: () => void;
}

type State = 'greeting' | 'response' | 'auth' | 'checking' | 'connecting' | 'relay' | 'closed';

/** Wicket's identity attributes; the client's own are kept under their names unless they would collide. */
const OWN_ATTRS = new Set(['program_name', '_client_name', '_client_version', '_pid', '_os', '_platform']);

export class MysqlConnection {
  private state: State = 'greeting';
  private sock: Socket;
  private tls = false;
  private splitter = new PacketSplitter({ maxBytes: 64 * 1024 });
  private seq = 0;
  private readonly scramble = Buffer.from(randomBytes(20).map((b) => (b & 0x7f) || 1)); // no NUL, 7-bit, as servers send
  private readonly connectionId = randomInt(1, 0x7fffffff);
  private hello: HandshakeResponse | null = null;
  private user = '';
  private target = '';
  /** After an auth switch to caching_sha2_password the first answer is the scramble: ask for the password. */
  private switched = false;
  /** Bytes before TLS: the client's first packet is read by hand, so what follows an SSLRequest (its TLS hello) goes to TLS. */
  private pre: Buffer = Buffer.alloc(0);
  private session: ActiveSession | null = null;
  private relay: MysqlRelay | null = null;
  private readonly authTimer: NodeJS.Timeout;
  private readonly onData = (c: Buffer): void => this.receive(c);

  constructor(raw: Socket, private readonly deps: MysqlDeps, private readonly addr: string) {
    this.sock = raw;
    raw.on('data', this.onData);
    raw.on('error', () => this.close());
    raw.on('close', () => this.close());
    this.authTimer = setTimeout(() => this.refuse(ER.HANDSHAKE, '08S01', 'authentication timed out'), deps.authTimeoutMs).unref();
    this.write(buildGreeting({
      serverVersion: deps.serverVersion(), connectionId: this.connectionId, scramble: this.scramble,
      capabilities: WICKET_CAPS, charset: UTF8MB4_GENERAL_CI, status: STATUS.AUTOCOMMIT, authPlugin: 'caching_sha2_password',
    }));
    this.state = 'response';
  }

  private write(payload: Buffer): void {
    const { bytes, lastSeq } = encodePacket(this.seq, payload);
    this.seq = (lastSeq + 1) & 0xff;
    this.sock.write(bytes);
  }

  private receive(chunk: Buffer): void {
    if (!this.tls && this.state === 'response') return this.beforeTls(chunk);
    try {
      this.splitter.push(chunk, (p) => this.packet(p));
    } catch (err) {
      this.refuse(ER.HANDSHAKE, '08S01', `bad handshake: ${errorMessage(err)}`);
    }
  }

  private beforeTls(chunk: Buffer): void {
    this.pre = this.pre.length ? Buffer.concat([this.pre, chunk]) : chunk;
    if (this.pre.length < 4) return;
    const len = this.pre.readUIntLE(0, 3);
    if (len > 64 * 1024) return this.refuse(ER.HANDSHAKE, '08S01', 'bad handshake: first packet too large');
    if (this.pre.length < 4 + len) return;
    const payload = this.pre.subarray(4, 4 + len);
    const seq = this.pre[3]!;
    const rest = this.pre.subarray(4 + len);
    this.pre = Buffer.alloc(0);
    if (seq === this.seq && isSslRequest(payload)) {
      this.seq = (seq + 1) & 0xff;
      return this.upgrade(rest);
    }
    const p: LogicalPacket = { seq, lastSeq: seq, length: len, payload, complete: true, raw: null };
    this.packet(p);
  }

  private packet(p: LogicalPacket): void {
    if (this.state === 'closed') return;
    if (p.seq !== this.seq) return this.refuse(ER.NET_PACKETS_OUT_OF_ORDER, '08S01', `packets out of order (expected sequence ${this.seq}, got ${p.seq})`);
    this.seq = (p.lastSeq + 1) & 0xff;
    if (this.state === 'response') return this.response(p.payload);
    if (this.state === 'auth') return void this.password(p.payload).catch((err: unknown) => this.refuse(ER.ACCESS_DENIED, '28000', errorMessage(err)));
    // 'checking' / 'connecting': the client must wait for OK; anything now is a protocol error.
    this.refuse(ER.HANDSHAKE, '08S01', 'packet received before the login finished');
  }

  private response(payload: Buffer): void {
    if (!this.tls) {
      return this.refuse(ER.SECURE_TRANSPORT_REQUIRED, 'HY000', 'wicket requires TLS: connect with --ssl (mariadb/mysql) or enable ssl in your driver');
    }
    const h = (this.hello = parseHandshakeResponse(payload));
    if (h.capabilities & CLIENT.COMPRESS) return this.refuse(ER.HANDSHAKE, '08S01', 'compression is not supported through wicket');
    const login = splitLogin(h.user);
    if (!login) return this.refuse(ER.ACCESS_DENIED, '28000', 'user must be <wicket user>@<target>, e.g. alice@orders-mysql');
    this.user = login.user;
    this.target = login.target;
    const wait = this.deps.throttle.retryAfter(this.throttleKeys(), Date.now());
    if (wait > 0) return this.refuse(ER.ACCESS_DENIED, '28000', `too many failed login attempts; try again in ${Math.ceil(wait / 1000)} s`);
    this.state = 'auth';
    if (h.authPlugin === 'mysql_clear_password' && h.authResponse.length > 0) {
      return void this.password(h.authResponse).catch((err: unknown) => this.refuse(ER.ACCESS_DENIED, '28000', errorMessage(err)));
    }
    if (h.authPlugin === 'caching_sha2_password') {
      // The scramble cannot be checked without a password equivalent: ask for full authentication (inside TLS).
      this.write(Buffer.from([0x01, CACHING_SHA2.FULL_AUTH]));
      return;
    }
    // Any other plugin: switch to one that sends the password (the client chose; we name ours).
    this.write(authSwitchRequest('caching_sha2_password', Buffer.concat([this.scramble, Buffer.from([0])])));
    this.switched = true;
  }

  private upgrade(rest: Buffer): void {
    // Paused, so the client's TLS hello already read stays buffered: TLSSocket takes buffered bytes first.
    this.sock.pause();
    this.sock.off('data', this.onData);
    if (rest.length) this.sock.unshift(rest);
    const secure = new TLSSocket(this.sock, { isServer: true, key: this.deps.keys.tlsKey, cert: this.deps.keys.tlsCert, minVersion: 'TLSv1.2' });
    secure.on('data', this.onData);
    secure.on('error', () => this.close());
    secure.on('close', () => this.close());
    this.sock = secure;
    this.tls = true;
  }

  private async password(data: Buffer): Promise<void> {
    if (this.switched) {
      this.switched = false;
      this.write(Buffer.from([0x01, CACHING_SHA2.FULL_AUTH]));
      return;
    }
    if (data.length === 1 && data[0] === CACHING_SHA2.REQUEST_PUBLIC_KEY) {
      return this.refuse(ER.SECURE_TRANSPORT_REQUIRED, 'HY000', 'wicket requires TLS: connect with --ssl (mariadb/mysql) or enable ssl in your driver');
    }
    this.state = 'checking';
    const end = data.indexOf(0);
    const secret = data.subarray(0, end < 0 ? data.length : end).toString('utf8');
    const r = await authenticateSecret(this.deps.config(), this.deps.store, this.user, secret, Date.now());
    if (this.state !== 'checking') return;
    if (!r.ok) {
      this.authFailed(r.why === 'unknown_user' ? 'unknown user' : r.why === 'no_password' ? 'no password set' : 'bad password');
      return this.refuse(ER.ACCESS_DENIED, '28000', r.why === 'unknown_user' ? `unknown user "${this.user}"` : `Access denied for user '${this.user}' (using password: ${secret ? 'YES' : 'NO'})`);
    }
    this.deps.throttle.succeed(this.throttleKeys());
    await this.connect(r.method, r.tokenId);
  }

  private throttleKeys(): string[] {
    return throttleKeys(this.user, this.addr.replace(/:\d+$/, ''));
  }

  private authFailed(why: string): void {
    this.deps.throttle.fail(this.throttleKeys(), Date.now());
    this.deps.audit.append({ ts: Date.now(), kind: 'auth.fail', actor: this.user, target: this.target, data: { protocol: 'mysql', clientAddr: this.addr, reason: why } });
  }

  private async connect(method: 'password' | 'token', tokenId: string | null): Promise<void> {
    this.state = 'connecting';
    clearTimeout(this.authTimer);
    const h = this.hello!;
    const config = this.deps.config();
    const target = config.targets.find((t) => t.name === this.target);
    const allowed = target?.databases ?? (target?.database ? [target.database] : []);
    const database = h.database ?? target?.database ?? null;
    this.deps.audit.append({ ts: Date.now(), kind: 'auth.ok', actor: this.user, target: this.target, data: { protocol: 'mysql', clientAddr: this.addr, method, tls: this.tls } });
    if (target && target.protocol === 'mysql' && database && target.databases && !allowed.includes(database)) {
      this.deps.audit.append({ ts: Date.now(), kind: 'policy.deny', actor: this.user, target: this.target, data: { reason: 'database', database, protocol: 'mysql' } });
      return this.refuse(ER.ACCESS_DENIED, '28000', `database "${database}" is not allowed on ${this.target} (allowed: ${allowed.join(', ')})`);
    }
    const clientProgram = h.attributes.get('program_name') ?? h.attributes.get('_client_name') ?? '';
    let session: ActiveSession;
    try {
      session = this.session = await this.deps.broker.open(
        { user: this.user, target: this.target, protocol: 'mysql', clientAddr: this.addr, authMethod: method, tokenId, meta: { database, program: clientProgram || null, tls: this.tls } },
        { terminate: (reason) => this.terminate(reason) },
      );
    } catch (err) {
      return this.refuse(isWicketError(err, 'WICKET_ERR_RECORDING') ? ER.UNKNOWN_ERROR : ER.ACCESS_DENIED, isWicketError(err, 'WICKET_ERR_RECORDING') ? 'HY000' : '28000', errorMessage(err));
    }
    if (this.state !== 'connecting') {
      this.session = null;
      await session.end({ status: 'ended', reason: 'client disconnected during login' }).catch(() => undefined);
      return;
    }
    const d = session.decision;
    const attributes = new Map<string, string>();
    for (const [k, v] of h.attributes) if (!OWN_ATTRS.has(k) && attributes.size < 32) attributes.set(k, v);
    attributes.set('_client_name', 'wicket');
    attributes.set('program_name', `wicket:${this.user}:${session.id}`);
    if (clientProgram) attributes.set('wicket_client_program', clientProgram.slice(0, 256));
    try {
      const up = await connectMysqlUpstream({ target: target!, database, clientCapabilities: h.capabilities & WICKET_CAPS, charset: h.charset, attributes });
      if (this.state !== 'connecting') {
        up.socket.destroy();
        return;
      }
      this.deps.onUpstreamVersion(up.greeting.serverVersion);
      const policy = { access: d.access, denySql: d.denySql, rule: d.rule.label, localInfile: d.localInfile };
      this.sock.off('data', this.onData);
      this.sock.pause();
      this.state = 'relay';
      this.deps.onReady?.();
      const relay = (this.relay = new MysqlRelay({
        client: this.sock, upstream: up.socket as Socket, session, policy,
        deprecateEof: (up.capabilities & CLIENT.DEPRECATE_EOF) !== 0, threadId: up.greeting.connectionId, target: this.target,
        databases: target?.databases ?? [], maxPacketBytes: this.deps.maxPacketBytes, log: this.deps.log,
        onClose: (reason) => this.close(reason),
      }));
      const ok = okPayload({ status: up.status || STATUS.AUTOCOMMIT });
      if (d.access === 'read') {
        // Read-only before the client can send anything: the OK goes out once the server agreed.
        relay.start();
        relay.internal('SET SESSION TRANSACTION READ ONLY', (done) => {
          if (done) this.write(ok);
          else this.relay?.terminate('could not make the session read-only');
        });
        return;
      }
      this.write(ok);
      relay.start();
    } catch (err) {
      await session.end({ status: 'failed', reason: errorMessage(err) }).catch(() => undefined);
      this.session = null;
      const code = isWicketError(err) && typeof err.details?.mysqlCode === 'number' ? err.details.mysqlCode : null;
      if (code === 1045 || code === 1044 || code === 1698) {
        this.deps.log(`mysql session ${session.id}: ${errorMessage(err)}`);
        return this.refuse(ER.ACCESS_DENIED, '28000', `upstream ${this.target} refused wicket's login; the reason is in wicket's log and audit (session ${session.id})`);
      }
      this.refuse(ER.UNKNOWN_ERROR, 'HY000', errorMessage(err));
    }
  }

  /** The broker ends this session (kill, lock, expiry, recording failure). */
  terminate(reason: string): void {
    if (this.relay) this.relay.terminate(reason);
    else this.refuse(ER.CONNECTION_KILLED, '70100', `terminated by wicket: ${reason}`);
  }

  private refuse(code: number, sqlState: string, message: string): void {
    if (this.state === 'closed') return;
    if (!this.sock.destroyed && this.sock.writable) this.sock.end(encodePacket(this.seq, errPayload(code, sqlState, message)).bytes);
    setTimeout(() => this.sock.destroy(), 1000).unref();
    this.close();
  }

  private close(reason: string | null = null): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    clearTimeout(this.authTimer);
    const s = this.session;
    this.session = null;
    if (s) void s.end(reason ? { status: 'ended', reason } : { status: 'ended' }).catch((err: unknown) => this.deps.log(`mysql session ${s.id}: ${errorMessage(err)}`));
    // Once relaying, the relay owns the client socket (a killed session still answers the next command).
    if (!this.relay && !this.sock.destroyed) this.sock.end();
  }
}
