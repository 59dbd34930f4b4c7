/**
 * One client SSH connection after the handshake: authentication (auth.ts),
 * then channels. Each session channel (shell, exec, sftp) is its own wicket
 * session with its own recording, as in Teleport; port forwards are sessions
 * too, one per forwarded TCP connection, recorded as `forward` events. The
 * upstream (an ssh2 Client, or a local process for `shell` targets) is
 * opened on the first channel and shared by the connection's channels.
 *
 * `wicket kill`, segment locks, revocation and expiry end the session; the
 * person sees "terminated by wicket: <reason>" and the whole connection
 * closes. Deny by default: every request type without a handler is rejected
 * by ssh2; X11, agent forwarding and subsystems other than sftp are refused.
 */
import type { Duplex } from 'node:stream';
import type { Connection, ServerChannel } from 'ssh2';
import type { ActiveSession, TerminalOptions } from '../../src/broker.js';
import { WicketError, errorMessage } from '../../src/errors.js';
import type { SessionRequest } from '../../src/session.js';
import type { Allow } from '../../src/policy/types.js';
import { SshAuth, type Authenticated } from './auth.js';
import { remoteBackend, type Backend } from './backend.js';
import { SessionChannel, type ChannelHost } from './channel.js';
import type { SshDeps } from './deps.js';
import { connectUpstream } from './upstream.js';
import { localBackend } from './local.js';

const MAX_CHANNELS = 64;

export class SshConnection {
  private readonly auth: SshAuth;
  private readonly channels = new Set<SessionChannel>();
  private readonly forwards = new Set<Duplex>();
  private upstream: Promise<Backend> | null = null;
  private closed = false;
  private terminated: string | null = null;
  private readonly remoteForwards = new Map<string, ActiveSession>();

  constructor(
    private readonly client: Connection,
    private readonly deps: SshDeps,
    private readonly addr: string,
  ) {
    const sock = (client as unknown as { _sock?: { setTimeout(ms: number): unknown } })._sock;
    // While the login waits for an approval there is no traffic: the auth timeout must not end it.
    this.auth = new SshAuth(deps, addr, (why) => this.close(why), (waiting) => sock?.setTimeout(waiting ? 0 : deps.authTimeoutMs));
    client.on('authentication', (ctx) => this.auth.handle(ctx));
    client.on('ready', () => this.ready());
    client.on('handshake', (n) => deps.log(`ssh ${addr}: handshake ${n.kex}, ${n.cs.cipher}${n.cs.mac ? `+${n.cs.mac}` : ''}, host key ${n.serverHostKey}`));
    client.on('error', (err) => this.close(`client error: ${errorMessage(err)}`));
    client.on('close', () => this.close('client disconnected'));
  }

  private get who(): Authenticated {
    const a = this.auth.authenticated;
    if (!a) throw new WicketError('WICKET_ERR_INTERNAL', 'ssh: channel before authentication');
    return a;
  }

  private get label(): string {
    const a = this.auth.authenticated;
    return a ? `${a.user}@${a.target} from ${this.addr}` : this.addr;
  }

  private ready(): void {
    const host: ChannelHost = {
      label: this.label,
      openSession: (terminal, meta) => this.openSession(terminal, meta),
      backend: () => this.backend(),
      refused: (what, message, session) => this.refused(what, message, session),
      log: this.deps.log,
    };
    this.client.on('session', (accept, reject) => {
      if (this.closed || this.channels.size >= MAX_CHANNELS) return void reject();
      const ch = new SessionChannel(host, accept(), (c) => this.channels.delete(c));
      this.channels.add(ch);
    });
    this.client.on('tcpip', (accept, reject, info) => void this.directTcpip(accept, reject, info));
    this.client.on('request', (accept, reject, name, info) => void this.globalRequest(accept, reject, name, info));
  }

  private request(meta: Record<string, unknown>): SessionRequest {
    const who = this.who;
    const target = this.deps.config().targets.find((t) => t.name === who.target);
    return {
      user: who.user, target: who.target, protocol: target?.protocol === 'shell' ? 'shell' : 'ssh',
      clientAddr: this.addr, authMethod: who.method, tokenId: who.tokenId,
      meta: { ...meta, ...(who.key ? { key: who.key } : {}), client: this.clientIdent() },
    };
  }

  private clientIdent(): string | null {
    const info = (this.client as unknown as { _protocol?: { _remoteIdentRaw?: string } })._protocol;
    return typeof info?._remoteIdentRaw === 'string' ? info._remoteIdentRaw.slice(0, 200) : null;
  }

  private async openSession(terminal: TerminalOptions | null, meta: Record<string, unknown>): Promise<ActiveSession> {
    if (this.terminated) throw new WicketError('WICKET_ERR_TERMINATED', `terminated by wicket: ${this.terminated}`);
    const handle = { terminate: (reason: string) => this.terminate(reason) };
    return this.deps.broker.open(this.request(meta), handle, terminal ?? undefined);
  }

  private backend(): Promise<Backend> {
    this.upstream ??= (async () => {
      const who = this.who;
      const target = this.deps.config().targets.find((t) => t.name === who.target);
      if (!target) throw new WicketError('WICKET_ERR_UNKNOWN_TARGET', `unknown target "${who.target}"`);
      if (target.protocol === 'shell') return localBackend(target);
      if (target.protocol !== 'ssh') throw new WicketError('WICKET_ERR_POLICY_DENY', `target ${target.name} is a ${target.protocol} target, not ssh`);
      try {
        const client = await connectUpstream(target, this.deps.upstreamTimeoutMs);
        client.on('close', () => this.close(`upstream ${target.name} closed the connection`));
        client.on('error', () => undefined);
        client.on('tcp connection', (details, accept, reject) => this.remoteForwarded(details, accept, reject));
        if (this.closed) client.end();
        return remoteBackend(client, target.name);
      } catch (err) {
        if (err instanceof WicketError && err.code === 'WICKET_ERR_HOST_KEY') {
          this.deps.audit.append({ ts: Date.now(), kind: 'ssh.host_key_mismatch', actor: who.user, target: target.name, data: { message: err.message, clientAddr: this.addr } });
        }
        throw err;
      }
    })();
    // A failed upstream is not cached: the next channel tries again.
    this.upstream.catch(() => (this.upstream = null));
    return this.upstream;
  }

  private refused(what: string, message: string, session: ActiveSession | null): void {
    const who = this.auth.authenticated;
    if (session) session.emit({ type: 'refused', at: Date.now(), what, rule: 'wicket', message });
    else this.deps.audit.append({ ts: Date.now(), kind: 'ssh.refused', actor: who?.user ?? '?', target: who?.target ?? null, data: { what, message, clientAddr: this.addr } });
  }

  /** The rule's forwarding flag, and the error message when forwarding is not allowed. */
  private async forwardingAllowed(): Promise<{ ok: true; allow: Allow } | { ok: false; message: string }> {
    const who = this.who;
    const d = await this.deps.broker.authorize(who.user, who.target, 'ssh');
    if (d.type === 'deny') return { ok: false, message: d.message };
    if (!d.forwarding) return { ok: false, message: `port forwarding is not allowed by rule ${d.rule.label}` };
    return { ok: true, allow: d };
  }

  private async directTcpip(
    accept: () => ServerChannel,
    reject: () => void,
    info: { destIP: string; destPort: number; srcIP: string; srcPort: number },
  ): Promise<void> {
    const destination = `${info.destIP}:${info.destPort}`;
    try {
      const ok = await this.forwardingAllowed();
      if (!ok.ok) {
        this.refused(`direct-tcpip ${destination}`, ok.message, null);
        return reject();
      }
      const backend = await this.backend();
      if (!backend.forwardOut) {
        this.refused(`direct-tcpip ${destination}`, 'this target does not support port forwarding', null);
        return reject();
      }
      const session = await this.openSession(null, { channel: 'direct-tcpip', destination });
      let upstream: Duplex;
      try {
        upstream = await backend.forwardOut(info.srcIP, info.srcPort, info.destIP, Number(info.destPort));
      } catch (err) {
        await session.end({ status: 'failed', reason: errorMessage(err) });
        return reject();
      }
      if (this.closed) {
        upstream.destroy();
        await session.end({ status: 'ended', reason: 'client disconnected' });
        return reject();
      }
      this.bridge(accept(), upstream, session, 'direct-tcpip', destination);
    } catch (err) {
      this.deps.log(`ssh ${this.label}: direct-tcpip ${destination}: ${errorMessage(err)}`);
      try {
        reject();
      } catch {
        // gone
      }
    }
  }

  private async globalRequest(
    accept: ((port?: number) => void) | undefined,
    reject: (() => void) | undefined,
    name: string,
    info: { bindAddr?: string; bindPort?: number },
  ): Promise<void> {
    if (name !== 'tcpip-forward' && name !== 'cancel-tcpip-forward') {
      this.refused(name.slice(0, 64), `global request ${name.slice(0, 64)} is not allowed through wicket`, null);
      return reject?.();
    }
    const bindAddr = String(info.bindAddr ?? '');
    const bindPort = Number(info.bindPort ?? 0);
    try {
      const backend = await this.backend();
      if (name === 'cancel-tcpip-forward') {
        const key = `${bindAddr}:${bindPort}`;
        const s = this.remoteForwards.get(key);
        this.remoteForwards.delete(key);
        await backend.cancelForwardIn?.(bindAddr, bindPort);
        await s?.end({ status: 'ended', reason: 'forward cancelled' });
        return accept?.();
      }
      const ok = await this.forwardingAllowed();
      if (!ok.ok || !backend.forwardIn) {
        this.refused(`tcpip-forward ${bindAddr}:${bindPort}`, ok.ok ? 'this target does not support port forwarding' : ok.message, null);
        return reject?.();
      }
      const port = await backend.forwardIn(bindAddr, bindPort);
      const session = await this.openSession(null, { channel: 'tcpip-forward', bind: `${bindAddr}:${port}` });
      this.remoteForwards.set(`${bindAddr}:${port}`, session);
      if (bindPort !== 0) this.remoteForwards.set(`${bindAddr}:${bindPort}`, session);
      accept?.(port);
    } catch (err) {
      this.deps.log(`ssh ${this.label}: ${name} ${bindAddr}:${bindPort}: ${errorMessage(err)}`);
      reject?.();
    }
  }

  /** A connection to a port the upstream listens on for us (-R): pass it to the client and record it. */
  private remoteForwarded(
    details: { destIP: string; destPort: number; srcIP: string; srcPort: number },
    accept: () => Duplex,
    reject: () => void,
  ): void {
    const session = this.remoteForwards.get(`${details.destIP}:${details.destPort}`);
    if (!session || this.closed) return reject();
    this.client.forwardOut(details.destIP, details.destPort, details.srcIP, details.srcPort, (err, ch) => {
      if (err) return reject();
      this.bridge(ch, accept(), session, 'tcpip-forward', `${details.destIP}:${details.destPort} from ${details.srcIP}:${details.srcPort}`, false);
    });
  }

  /** Relays a forwarded TCP stream both ways and records one forward event when it closes. */
  private bridge(down: Duplex, up: Duplex, session: ActiveSession, kind: 'direct-tcpip' | 'tcpip-forward', destination: string, endSession = true): void {
    const started = Date.now();
    let bytesIn = 0;
    let bytesOut = 0;
    this.forwards.add(down);
    down.on('data', (d: Buffer) => (bytesOut += d.length));
    up.on('data', (d: Buffer) => (bytesIn += d.length));
    down.pipe(up);
    up.pipe(down);
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      this.forwards.delete(down);
      down.destroy();
      up.destroy();
      session.emit({ type: 'forward', at: started, kind, destination, bytesIn, bytesOut, durationMs: Date.now() - started });
      if (endSession) void session.end({ status: 'ended', reason: 'forwarded connection closed' }).catch(() => undefined);
    };
    for (const s of [down, up]) {
      s.on('close', finish);
      s.on('error', finish);
    }
  }

  /** kill / lock / expiry: every channel hears why, then the connection closes. */
  terminate(reason: string): void {
    if (this.terminated) return;
    this.terminated = reason;
    for (const ch of [...this.channels]) ch.terminate(reason);
    // Let the messages and exit statuses leave before the connection goes.
    setTimeout(() => this.close(`terminated by wicket: ${reason}`), 200).unref();
  }

  close(why: string): void {
    if (this.closed) return;
    this.closed = true;
    this.auth.dispose();
    for (const ch of [...this.channels]) ch.close(why);
    for (const f of [...this.forwards]) f.destroy();
    for (const s of new Set(this.remoteForwards.values())) void s.end({ status: 'ended', reason: why }).catch(() => undefined);
    this.remoteForwards.clear();
    void this.upstream?.then((b) => b.close(), () => undefined);
    try {
      this.client.end();
    } catch {
      // already gone
    }
  }
}
