/**
 * One client connection, from the first byte to the relay:
 *
 *   startup ──SSLRequest──▶ 'S', TLS ──▶ startup
 *      │  GSSENCRequest ▶ 'N'      CancelRequest ▶ cancel registry, close
 *      ▼
 *   sasl (SCRAM-SHA-256 against the person's wicket password or token)
 *      ▼
 *   connecting (policy via the broker, recorder, upstream with wicket's credentials)
 *      ▼
 *   relay (relay.ts) ──▶ closed
 *
 * Every refusal is one ErrorResponse in the client's protocol and a close;
 * nothing here can throw past the connection.
 */
import { randomBytes, randomInt } from 'node:crypto';
import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import { parseStartup, parseSASLInitialResponse, decodeFrontend, FRONTEND, type StartupPacket } from './frontend.js';
import { FrameParser } from './framing.js';
import { authOk, authSASL, authSASLContinue, authSASLFinal, backendKeyData, negotiateProtocolVersion, parameterStatus, readyForQuery } from './backend.js';
import { ScramServer, SCRAM_MECHANISM } from './scram-server.js';
import { cancelUpstream, connectUpstream } from './upstream.js';
import { Relay, endWithFatal } from './relay.js';
import { policyActive } from './guard.js';
import { scramCandidates } from '../../src/auth/authenticate.js';
import { throttleKeys } from '../../src/auth/throttle.js';
import { WicketError, errorMessage, isWicketError } from '../../src/errors.js';
import type { ActiveSession } from '../../src/broker.js';
import type { TargetConfig } from '../../src/config/schema.js';
import { splitLogin, type PgDeps } from './deps.js';

/**
 * `lookup`: a StartupMessage was accepted and the user's secrets are being
 * read; the client must wait for AuthenticationSASL, so any byte now is a
 * protocol violation (not a second startup packet).
 */
type State = 'startup' | 'lookup' | 'sasl' | 'connecting' | 'relay' | 'closed';

/** Startup parameters passed through to the upstream; everything else is refused (deny by default). */
const PASS_PARAMS = new Set([
  'client_encoding', 'datestyle', 'timezone', 'extra_float_digits', 'intervalstyle', 'search_path',
  'statement_timeout', 'lock_timeout', 'idle_in_transaction_session_timeout', 'bytea_output', 'geqo',
]);
/** Parameters that are ours to set, or that identify the person; never passed as given. */
const OWN_PARAMS = new Set(['user', 'database', 'application_name', 'fallback_application_name']);

/**
 * `wicket:<user>:<session id>:<client's application_name>` for the upstream's
 * logs. Postgres keeps 63 bytes (NAMEDATALEN - 1): the session id is never
 * cut; the client's name, then the user, give way, on UTF-8 boundaries.
 */
export function upstreamAppName(user: string, sessionId: string, clientApp: string): string {
  const fit = (s: string, bytes: number): string => {
    let out = '';
    for (const ch of s) {
      if (Buffer.byteLength(out + ch) > bytes) break;
      out += ch;
    }
    return out;
  };
  const fixed = Buffer.byteLength(`wicket:::${sessionId}`);
  const u = fit(user, Math.max(0, 63 - fixed));
  return `wicket:${u}:${sessionId}:${fit(clientApp, Math.max(0, 63 - fixed - Buffer.byteLength(u)))}`;
}

export class PgConnection {
  private state: State = 'startup';
  private sock: Socket;
  private tls = false;
  private pending: Buffer = Buffer.alloc(0);
  private scram: ScramServer | null = null;
  private frames: FrameParser | null = null;
  private params: Record<string, string> = {};
  private user = '';
  private target = '';
  private authMethod: 'password' | 'token' = 'password';
  /** The token the person authenticated with (its revocation ends the session). */
  private tokenId: string | null = null;
  private session: ActiveSession | null = null;
  private relay: Relay | null = null;
  /** The upstream's key and the target as connected (a reload may change the config's copy). */
  private upstreamKey: { processId: number; secretKey: Buffer; target: TargetConfig } | null = null;
  readonly processId = randomInt(1, 0x7fffffff);
  readonly secretKey = randomBytes(4);
  private readonly authTimer: NodeJS.Timeout;
  private readonly onData = (c: Buffer): void => void this.receive(c);

  constructor(raw: Socket, private readonly deps: PgDeps, private readonly addr: string) {
    this.sock = raw;
    raw.on('data', this.onData);
    raw.on('error', () => this.close());
    raw.on('close', () => this.close());
    // A client that stalls before finishing authentication must not hold a slot forever.
    this.authTimer = setTimeout(() => this.refuse('08006', 'authentication timed out'), deps.authTimeoutMs).unref();
  }

  private async receive(chunk: Buffer): Promise<void> {
    try {
      if (this.state === 'startup') return this.startupData(chunk);
      if (this.state === 'sasl') return await this.saslData(chunk);
      if (this.state === 'lookup') return this.refuse('08P01', 'message received before the authentication request');
      // 'connecting': the client must wait for ReadyForQuery; anything sent now is a protocol error.
      if (this.state === 'connecting') this.refuse('08P01', 'message received before the connection was ready');
    } catch (err) {
      this.refuse(isWicketError(err, 'WICKET_ERR_PROTOCOL') ? '08P01' : '28000', errorMessage(err));
    }
  }

  private startupData(chunk: Buffer): void {
    this.pending = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    const r = parseStartup(this.pending);
    if (!r) return;
    const rest = this.pending.subarray(r.consumed);
    this.pending = Buffer.alloc(0);
    this.startupPacket(r.packet, rest);
  }

  private startupPacket(p: StartupPacket, rest: Buffer): void {
    switch (p.type) {
      case 'ssl_request':
        if (this.tls) return this.refuse('08P01', 'SSLRequest received twice');
        // Bytes sent in clear after SSLRequest would be read as if they came over TLS (CVE-2021-23214): refuse.
        if (rest.length) return this.refuse('08P01', 'unencrypted data after SSLRequest');
        return this.upgrade();
      case 'gssenc_request':
        if (rest.length) return this.refuse('08P01', 'unencrypted data after GSSENCRequest');
        this.sock.write('N');
        return;
      case 'cancel':
        this.deps.cancels.request(p.processId, p.secretKey, this.addr);
        return this.close();
      case 'startup':
        if (rest.length) return this.refuse('08P01', 'unexpected data after the startup packet');
        return void this.startup(p.major, p.minor, p.params).catch((err: unknown) => this.refuse('28000', errorMessage(err)));
    }
  }

  private upgrade(): void {
    this.sock.off('data', this.onData);
    this.sock.write('S');
    const secure = new TLSSocket(this.sock, { isServer: true, key: this.deps.keys.tlsKey, cert: this.deps.keys.tlsCert, minVersion: 'TLSv1.2' });
    secure.on('data', this.onData);
    secure.on('error', () => this.close());
    secure.on('close', () => this.close());
    this.sock = secure;
    this.tls = true;
  }

  private async startup(major: number, minor: number, params: Record<string, string>): Promise<void> {
    this.state = 'lookup';
    if (major !== 3) return this.refuse('0A000', `unsupported frontend protocol ${major}.${minor}: wicket speaks 3.0`);
    const unsupported = Object.keys(params).filter((k) => k.startsWith('_pq_.'));
    if (minor > 0 || unsupported.length) this.sock.write(negotiateProtocolVersion(0, unsupported));
    for (const k of unsupported) delete params[k];
    this.params = params;
    if (params.replication !== undefined && params.replication !== 'false' && params.replication !== '0') {
      return this.refuse('28000', 'replication connections are not allowed through wicket');
    }
    for (const k of Object.keys(params)) {
      const key = k.toLowerCase();
      if (!PASS_PARAMS.has(key) && !OWN_PARAMS.has(key) && key !== 'replication') {
        return this.refuse('28000', `startup parameter "${k}" is not allowed through wicket`);
      }
    }
    const login = splitLogin(params.user ?? '');
    if (!login) return this.refuse('28000', 'user must be <wicket user>@<target>, e.g. alice@orders-db');
    this.user = login.user;
    this.target = login.target;
    const now = Date.now();
    const wait = this.deps.throttle.retryAfter(this.throttleKeys(), now);
    if (wait > 0) return this.refuse('28000', `too many failed login attempts; try again in ${Math.ceil(wait / 1000)} s`);
    if (!this.deps.config().users.some((u) => u.name === this.user)) {
      this.authFailed('unknown user');
      return this.refuse('28000', `unknown user "${this.user}"`);
    }
    const candidates = await scramCandidates(this.deps.store, this.user, now);
    if (this.state !== 'lookup') return; // closed or refused meanwhile
    this.scram = new ScramServer(candidates);
    this.frames = new FrameParser({ maxMessageBytes: 64 * 1024 });
    this.state = 'sasl';
    this.sock.write(authSASL([SCRAM_MECHANISM]));
  }

  private async saslData(chunk: Buffer): Promise<void> {
    const msgs: Buffer[] = [];
    this.frames!.push(chunk, (type, body) => {
      if (type !== FRONTEND.Password) throw new WicketError('WICKET_ERR_PROTOCOL', 'expected a SASL response');
      msgs.push(Buffer.from((decodeFrontend(type, body) as { data: Buffer }).data));
    });
    for (const data of msgs) {
      if (this.state !== 'sasl') return;
      const scram = this.scram!;
      if (scram.state === 'awaiting_client_first') {
        const init = parseSASLInitialResponse(data);
        if (init.mechanism !== SCRAM_MECHANISM) return this.refuse('28000', `SASL mechanism ${init.mechanism} is not supported; use ${SCRAM_MECHANISM}`);
        this.sock.write(authSASLContinue(scram.clientFirst(init.response)));
        continue;
      }
      const r = scram.clientFinal(data);
      if (!r.ok) {
        this.authFailed('bad password');
        return this.refuse('28P01', `password authentication failed for user "${this.user}"`);
      }
      this.authMethod = r.candidate.method;
      this.tokenId = r.candidate.tokenId;
      this.deps.throttle.succeed(this.throttleKeys());
      this.sock.write(authSASLFinal(r.serverFinal));
      await this.connect();
    }
  }

  /**
   * Per user and per source HOST: `addr` carries the client's port, which is
   * new on every connection, so keying on it would never throttle a spray of
   * guesses (or of user names) from one machine.
   */
  private throttleKeys(): string[] {
    return throttleKeys(this.user, this.addr.replace(/:\d+$/, ''));
  }

  private authFailed(why: string): void {
    this.deps.throttle.fail(this.throttleKeys(), Date.now());
    this.deps.audit.append({ ts: Date.now(), kind: 'auth.fail', actor: this.user, target: this.target, data: { protocol: 'postgres', clientAddr: this.addr, reason: why } });
  }

  private async connect(): Promise<void> {
    this.state = 'connecting';
    clearTimeout(this.authTimer);
    const config = this.deps.config();
    const target = config.targets.find((t) => t.name === this.target);
    const requested = this.params.database;
    const allowed = target?.databases ?? (target?.database ? [target.database] : []);
    // libpq defaults dbname to the user name (here `alice@orders-db`): that means "the target's default".
    const database = !requested || requested === this.params.user ? target?.database ?? allowed[0] : requested;
    this.deps.audit.append({ ts: Date.now(), kind: 'auth.ok', actor: this.user, target: this.target, data: { protocol: 'postgres', clientAddr: this.addr, method: this.authMethod, tls: this.tls } });
    if (target && target.protocol === 'postgres' && (!database || (allowed.length > 0 && !allowed.includes(database)))) {
      this.deps.audit.append({ ts: Date.now(), kind: 'policy.deny', actor: this.user, target: this.target, data: { reason: 'database', database: database ?? null, protocol: 'postgres' } });
      return this.refuse('28000', database ? `database "${database}" is not allowed on ${this.target} (allowed: ${allowed.join(', ')})` : `target ${this.target} has no default database; pass dbname`);
    }
    try {
      this.session = await this.deps.broker.open(
        { user: this.user, target: this.target, protocol: 'postgres', clientAddr: this.addr, authMethod: this.authMethod, tokenId: this.tokenId, meta: { database, applicationName: this.params.application_name ?? null, tls: this.tls } },
        { terminate: (reason) => this.terminate(reason) },
      );
    } catch (err) {
      return this.refuse(isWicketError(err, 'WICKET_ERR_RECORDING') ? '58000' : '28000', errorMessage(err));
    }
    const session = this.session;
    if (this.state !== 'connecting') {
      // The client left (or was refused) while the broker was opening the session: close() ran
      // before there was a session to end, so end it here or it stays live forever.
      this.session = null;
      await session.end({ status: 'ended', reason: 'client disconnected during login' }).catch(() => undefined);
      return;
    }
    const d = session.decision;
    const policy = { access: d.access, denySql: d.denySql, rule: d.rule.label };
    const enc = this.params.client_encoding;
    if (policyActive(policy) && enc && !/^(utf-?8|unicode)$/i.test(enc)) {
      await session.end({ status: 'failed', reason: `client_encoding ${enc}` });
      return this.refuse('28000', `client_encoding ${enc} is not allowed under rule ${d.rule.label}; use UTF8`);
    }
    const extraParams: Record<string, string> = {};
    for (const [k, v] of Object.entries(this.params)) if (PASS_PARAMS.has(k.toLowerCase())) extraParams[k] = v;
    if (d.access === 'read') extraParams.default_transaction_read_only = 'on';
    try {
      const up = await connectUpstream({
        target: target!, database: database!, extraParams,
        applicationName: upstreamAppName(this.user, session.id, this.params.application_name ?? ''),
      });
      if (this.state !== 'connecting') {
        up.socket.destroy();
        return;
      }
      this.upstreamKey = { processId: up.processId, secretKey: up.secretKey, target: target! };
      this.deps.cancels.register(this);
      const hello: Buffer[] = [authOk()];
      for (const [k, v] of up.parameters) hello.push(parameterStatus(k, v));
      hello.push(backendKeyData(this.processId, this.secretKey), readyForQuery('I'));
      this.sock.write(Buffer.concat(hello));
      this.sock.off('data', this.onData);
      this.sock.pause();
      this.state = 'relay';
      this.deps.onReady?.();
      this.relay = new Relay({
        client: this.sock, upstream: up.socket as Socket, session, policy, maxMessageBytes: this.deps.maxMessageBytes, log: this.deps.log,
        onClose: (reason) => this.close(reason),
      });
      this.relay.start(up.leftover);
    } catch (err) {
      const code = isWicketError(err) && typeof err.details?.sqlstate === 'string' ? err.details.sqlstate : '08006';
      await session.end({ status: 'failed', reason: errorMessage(err) }).catch(() => undefined);
      this.session = null;
      // A refused upstream login (class 28) names the upstream account and the server's
      // pg_hba rules: that is for the operator (session end reason, broker log), not the person.
      if (code.startsWith('28')) {
        this.deps.log(`postgres session ${session.id}: ${errorMessage(err)}`);
        return this.refuse('28000', `upstream ${this.target} refused wicket's login; the reason is in wicket's log and audit (session ${session.id})`);
      }
      this.refuse(code, errorMessage(err));
    }
  }

  /** Cancel the running statement upstream (a CancelRequest with our key arrived). */
  cancel(): void {
    const k = this.upstreamKey;
    if (!k) return;
    cancelUpstream(k.target, k.processId, k.secretKey).catch((err: unknown) => {
      this.deps.log(`postgres cancel for ${this.session?.id}: ${errorMessage(err)}`);
    });
  }

  /** The broker ends this session (kill, lock, expiry, recording failure). */
  terminate(reason: string): void {
    const message = `terminated by wicket: ${reason}`;
    if (this.relay) this.relay.fatal('57P01', message);
    else this.refuse('57P01', message);
  }

  private refuse(code: string, message: string): void {
    if (this.state === 'closed') return;
    endWithFatal(this.sock, code, message, 1000);
    this.close();
  }

  private close(reason: string | null = null): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    clearTimeout(this.authTimer);
    this.deps.cancels.unregister(this);
    this.relay?.fatal('57P01', 'connection closed');
    const s = this.session;
    this.session = null;
    if (s) void s.end(reason ? { status: 'ended', reason } : { status: 'ended' }).catch((err: unknown) => this.deps.log(`postgres session ${s.id}: ${errorMessage(err)}`));
    if (!this.sock.destroyed) this.sock.end();
  }
}
