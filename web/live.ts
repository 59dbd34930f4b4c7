/**
 * `WS /api/sessions/:id/live` (DESIGN.md §6): watch a running session.
 *
 * The upgrade is checked before anything is streamed, and refused with a
 * plain HTTP answer (never 101) otherwise:
 *   - 401/429: no or bad bearer token / login cookie (web/api/auth.ts
 *     identify(), the same check, throttle and auth.fail rows as the API);
 *   - 403: a login cookie without an Origin equal to the page's own origin
 *     (WebSockets have no CORS: this is their CSRF check);
 *   - 404: a caller who is neither the session's user nor has a role with
 *     `audit: true` (as GET /api/sessions/:id answers; recorded as
 *     session.watch_denied), an unknown session, or one that has ended (use the replay,
 *     GET /api/sessions/:id/cast) or runs on another broker.
 * An allowed watch is recorded (session.watch) before anything is sent.
 *
 * Messages, JSON text frames, server to client only:
 *   terminal sessions: {"type":"header","header":{asciicast v2 header}}, then
 *     {"type":"event","t":1.25,"code":"o"|"i"|"r"|"m","data":"..."} per event:
 *     everything recorded from the session's start, then live;
 *   other sessions (databases): {"type":"query","n":1,"event":{"ts":ISO time,
 *     "kind":"query"|"refused"|...,"actor","data":{the audit row's data}}} per
 *     statement event (as GET /api/sessions/:id lists them; n counts from 1),
 *     the ones so far, then live;
 *   both: {"type":"end","status":"ended"|"terminated"|"failed","reason":...}
 *     when the session ends, then a 1000 close.
 * Event lines are sent exactly as recorded (the cast line's bytes): redacted
 * keystrokes reach watchers redacted, as they reached the disk.
 *
 * Backpressure: the session never waits for a watcher. The backlog is read
 * from disk at the watcher's pace (1 MiB socket high-water mark); live
 * messages arriving meanwhile wait in a queue capped at maxQueuedBytes; once
 * live, a watcher whose socket buffer (bufferedAmount) exceeds
 * maxBufferedBytes is dropped with close code 4008. Either way memory per
 * watcher is bounded by those two caps plus one message. Clients send
 * nothing; inbound frames are capped at 1 KiB and ignored.
 */
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer } from 'ws';
import type { Broker, SessionWatch, WatchMessage } from '../src/broker.js';
import type { Config } from '../src/config/schema.js';
import { errorMessage } from '../src/errors.js';
import type { SessionRecord } from '../src/store/types.js';
import { clientAddr, identify, userRoles, webAuthDeps, type Principal } from './api/auth.js';
import { RefuseError, heartbeat, refuse, sameOrigin, tokenStillValid, type WsEndpointDeps } from './upgrade.js';

export { sameOrigin };

export const LIVE_PATH = /^\/api\/sessions\/([A-Za-z0-9_-]{1,64})\/live$/;
/** Close code for a watcher dropped because it does not keep up. */
export const CLOSE_TOO_SLOW = 4008;
/** Close code for a watcher whose permission went away while watching. */
export const CLOSE_REVOKED = 4003;

export interface LiveLimits {
  /** Drop a live watcher whose socket buffer exceeds this. Default 4 MiB. */
  readonly maxBufferedBytes?: number;
  /** Live messages held while the backlog is being sent; beyond it the watcher is dropped. Default 4 MiB. */
  readonly maxQueuedBytes?: number;
  /** Give up on a watcher whose socket makes no progress for this long while sending the backlog. Default 30 s. */
  readonly stallMs?: number;
  /** Watchers at once on this broker. Default 256. */
  readonly maxWatchers?: number;
  /** Ping interval; a watcher that has not answered the previous ping is cut. Default 30 s. */
  readonly pingMs?: number;
  /** How often the permission is checked again (config reload, token revoked or expired); gone: close 4003. Default 30 s. */
  readonly recheckMs?: number;
}

/** `audit` receives the session.watch / session.watch_denied rows. */
export interface LiveDeps extends WsEndpointDeps {
  readonly limits?: LiveLimits;
}

export interface LiveServer {
  /** Watchers subscribed to a session (connecting, catching up or live); a dropped or ended one leaves at once. */
  readonly watchers: number;
  /** Cuts every watcher (the broker is stopping). */
  close(): void;
}

const MAX_INBOUND_BYTES = 1024;
const BACKLOG_HIGH_WATER = 1024 * 1024;
/** How long a dropped watcher's close handshake may take before its socket is cut. */
const CLOSE_GRACE_MS = 5000;

/** The session's own user, or a role with `audit: true` (the same rule as GET /api/sessions/:id). */
export function mayWatch(config: Config, user: string, session: Pick<SessionRecord, 'user'>): boolean {
  if (!config.users.some((u) => u.name === user)) return false;
  if (session.user === user) return true;
  return userRoles(config, user).some((r) => r.audit === true);
}

const EVENT_PREFIX = Buffer.from('{"type":"event","t":');

/**
 * `[t,"c",data]\n` -> `{"type":"event","t":t,"code":"c","data":data}` by
 * slicing the recorded bytes (no parse, no re-encoding); any other shape goes
 * through JSON.parse.
 */
export function castEventFrame(line: Buffer): Buffer {
  const comma = line.indexOf(0x2c);
  const n = line.length;
  if (
    comma > 1 && line[0] === 0x5b && line[comma + 1] === 0x22 && line[comma + 3] === 0x22 && line[comma + 4] === 0x2c &&
    line[n - 1] === 0x0a && line[n - 2] === 0x5d && line[comma + 5] === 0x22
  ) {
    const code = line[comma + 2]!;
    return Buffer.concat([EVENT_PREFIX, line.subarray(1, comma), Buffer.from(`,"code":"${String.fromCharCode(code)}","data":`), line.subarray(comma + 5, n - 2), Buffer.from('}')]);
  }
  const [t, code, data] = JSON.parse(line.toString('utf8')) as [number, string, string];
  return Buffer.from(JSON.stringify({ type: 'event', t, code, data }));
}

function frame(m: WatchMessage): Buffer {
  switch (m.type) {
    case 'header': {
      const end = m.line[m.line.length - 1] === 0x0a ? m.line.length - 1 : m.line.length;
      return Buffer.concat([Buffer.from('{"type":"header","header":'), m.line.subarray(0, end), Buffer.from('}')]);
    }
    case 'cast':
      return castEventFrame(m.line);
    case 'event': {
      // The shape GET /api/sessions/:id gives its events (without the chain's seq, not yet assigned to a live event).
      const { ts, kind, actor, data } = m.event;
      return Buffer.from(JSON.stringify({ type: 'query', n: m.n, event: { ts: new Date(ts).toISOString(), kind, actor, data } }));
    }
    case 'end':
      return Buffer.from(JSON.stringify({ type: 'end', status: m.status, reason: m.reason }));
  }
}

type Limits = Required<LiveLimits>;

/** One watcher: queue while the backlog is sent, then straight to the socket, with a cap either way. */
class Watcher {
  private ws: WebSocket | null = null;
  private watch: SessionWatch | null = null;
  private state: 'connecting' | 'backlog' | 'live' | 'closed' = 'connecting';
  private queue: Buffer[] = [];
  private queuedBytes = 0;
  /** The 'end' message: once it is on the socket, the watch closes. */
  private endFrame: Buffer | null = null;
  private dropReason: string | null = null;
  private readonly abort = new AbortController();
  /** Resolves when the watcher goes away (unsubscribed). */
  private readonly gone = new Promise<void>((resolve) => this.abort.signal.addEventListener('abort', () => resolve(), { once: true }));
  private pinger: NodeJS.Timeout | null = null;
  private rechecker: NodeJS.Timeout | null = null;
  private released = false;

  constructor(
    readonly sessionId: string,
    private readonly limits: Limits,
    private readonly log: (line: string) => void,
    private readonly done: (w: Watcher) => void,
    private readonly stillAllowed: () => Promise<boolean>,
  ) {}

  /** The broker's listener: called synchronously on the session's path. */
  readonly hear = (m: WatchMessage): void => {
    if (this.state === 'closed' || this.dropReason !== null) return;
    const f = frame(m);
    if (m.type === 'end') this.endFrame = f;
    if (this.state === 'live') return this.send(f);
    this.queue.push(f);
    this.queuedBytes += f.length;
    if (this.queuedBytes > this.limits.maxQueuedBytes) this.drop(`watcher too slow: more than ${this.limits.maxQueuedBytes} bytes behind while catching up`);
  };

  subscribed(watch: SessionWatch): void {
    this.watch = watch;
  }

  /** The socket is open: send the backlog, then what queued up meanwhile, then go live. */
  start(ws: WebSocket): void {
    this.ws = ws;
    ws.on('error', () => undefined); // a reset connection also emits 'close', which cleans up
    ws.on('close', () => this.cleanup());
    ws.on('message', () => undefined); // nothing is expected from watchers; size is capped by maxPayload
    if (this.state === 'closed') return void ws.terminate();
    if (this.dropReason !== null) return this.closeSlow(this.dropReason);
    this.pinger = heartbeat(ws, this.limits.pingMs);
    this.rechecker = setInterval(() => {
      this.stillAllowed().then(
        (ok) => ok || this.finish(CLOSE_REVOKED, 'no longer allowed to watch this session'),
        () => undefined, // a store hiccup: ask again next time
      );
    }, this.limits.recheckMs);
    this.rechecker.unref();
    this.state = 'backlog';
    void this.sendBacklog().catch((err: unknown) => {
      if (this.state === 'closed' || this.dropReason !== null) return;
      if (err instanceof SlowError) return this.drop(err.message);
      this.log(`live ${this.sessionId}: backlog failed: ${errorMessage(err)}`);
      this.finish(1011, 'recording unavailable');
    });
  }

  private async sendBacklog(): Promise<void> {
    const ws = this.ws!;
    for await (const batch of this.watch!.backlog(this.abort.signal)) {
      if (this.state !== 'backlog') return;
      let written: Promise<void> | null = null;
      for (let i = 0; i < batch.length; i++) {
        const f = frame(batch[i]!);
        if (i < batch.length - 1) ws.send(f, { binary: false });
        else written = new Promise<void>((resolve) => ws.send(f, { binary: false }, () => resolve()));
      }
      if (written !== null && ws.bufferedAmount > BACKLOG_HIGH_WATER) await this.progress(written);
    }
    if (this.state !== 'backlog') return;
    this.state = 'live';
    const queued = this.queue;
    this.queue = [];
    this.queuedBytes = 0;
    for (const f of queued) this.send(f);
  }

  /** Waits for `written` (the socket took the batch), unless the watcher stalls or goes away. */
  private async progress(written: Promise<void>): Promise<void> {
    let timer: NodeJS.Timeout | null = null;
    const stalled = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new SlowError(`watcher too slow: no progress for ${this.limits.stallMs} ms`)), this.limits.stallMs);
    });
    try {
      await Promise.race([written, stalled, this.gone]);
    } finally {
      if (timer !== null) clearTimeout(timer);
    }
  }

  private send(f: Buffer): void {
    const ws = this.ws!;
    if (ws.readyState !== WebSocket.OPEN) return;
    if (ws.bufferedAmount > this.limits.maxBufferedBytes) {
      return this.drop(`watcher too slow: more than ${this.limits.maxBufferedBytes} bytes unsent`);
    }
    ws.send(f, { binary: false });
    if (f === this.endFrame) this.finish(1000, 'session ended');
  }

  /** Stops hearing the session at once; the socket gets a 4008 close (now, or when it opens). */
  drop(reason: string): void {
    if (this.dropReason !== null || this.state === 'closed') return;
    this.dropReason = reason;
    this.unsubscribe();
    this.queue = [];
    this.queuedBytes = 0;
    if (this.ws !== null) this.closeSlow(reason);
  }

  private closeSlow(reason: string): void {
    this.log(`live ${this.sessionId}: ${reason}`);
    this.finish(CLOSE_TOO_SLOW, reason);
  }

  private finish(code: number, reason: string): void {
    const ws = this.ws;
    this.unsubscribe();
    this.stopTimers(); // the grace timer below ends it now
    if (ws === null) return this.cleanup();
    if (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING) {
      ws.close(code, reason.slice(0, 120));
      // A peer that does not read never answers the close: cut it after a grace period.
      setTimeout(() => ws.terminate(), CLOSE_GRACE_MS).unref();
    }
  }

  /** Broker stopping, or the handshake never completed. */
  terminate(): void {
    this.cleanup();
    this.ws?.terminate();
  }

  /** Stops hearing the session and leaves the count of watchers (a closing socket is cut within CLOSE_GRACE_MS). */
  private unsubscribe(): void {
    this.abort.abort();
    this.watch?.close();
    if (this.released) return;
    this.released = true;
    this.done(this);
  }

  private stopTimers(): void {
    if (this.pinger !== null) clearInterval(this.pinger);
    if (this.rechecker !== null) clearInterval(this.rechecker);
    this.pinger = null;
    this.rechecker = null;
  }

  private cleanup(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.unsubscribe();
    this.stopTimers();
    this.queue = [];
    this.queuedBytes = 0;
  }
}

class SlowError extends Error {}

/** Handles `upgrade` requests on the web server: the live tail, and 404 for any other path. */
export function attachLive(server: Server, deps: LiveDeps): LiveServer {
  const clock = deps.clock ?? Date.now;
  const log = deps.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const limits: Limits = {
    maxBufferedBytes: deps.limits?.maxBufferedBytes ?? 4 * 1024 * 1024,
    maxQueuedBytes: deps.limits?.maxQueuedBytes ?? 4 * 1024 * 1024,
    stallMs: deps.limits?.stallMs ?? 30_000,
    maxWatchers: deps.limits?.maxWatchers ?? 256,
    pingMs: deps.limits?.pingMs ?? 30_000,
    recheckMs: deps.limits?.recheckMs ?? 30_000,
  };
  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_INBOUND_BYTES, perMessageDeflate: false, clientTracking: false });
  const watchers = new Set<Watcher>();
  /** Every open socket, dropped ones in their close grace period included. */
  const sockets = new Set<WebSocket>();

  async function check(req: IncomingMessage): Promise<{ readonly id: string; readonly who: Principal; readonly rec: SessionRecord }> {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    const m = LIVE_PATH.exec(path);
    if (!m) throw new RefuseError(404, 'WICKET_ERR_NOT_FOUND', 'not found');
    const id = m[1]!;
    const auth = webAuthDeps(deps.store);
    if (auth === null) throw new RefuseError(503, 'WICKET_ERR_STORE', 'the web API is not ready');
    const who = await identify(auth, req);
    if (!who.ok) throw new RefuseError(who.status, who.code, who.message, who.headers);
    const { user, via } = who.principal;
    if (via === 'session' && !sameOrigin(req)) {
      throw new RefuseError(403, 'WICKET_ERR_FORBIDDEN', 'a live view authenticated by the login cookie must come from this server\'s own pages (Origin mismatch)');
    }
    const rec = deps.broker.liveSessions().find((r) => r.id === id) ?? (await deps.store.getSession(id));
    if (rec === null) throw new RefuseError(404, 'WICKET_ERR_NOT_FOUND', `no session ${id}`);
    const config = deps.config();
    if (!mayWatch(config, user, rec)) {
      await deps.audit({ ts: clock(), kind: 'session.watch_denied', actor: user, target: rec.target, data: { session: id, owner: rec.user, via, clientAddr: clientAddr(req) } });
      // 404 as for the HTTP API: another person's session id is not confirmed to exist.
      throw new RefuseError(404, 'WICKET_ERR_NOT_FOUND', `no session ${id}`);
    }
    if (rec.endedAt !== null || rec.status !== 'live') {
      throw new RefuseError(404, 'WICKET_ERR_NOT_FOUND', `session ${id} has ended; replay it with GET /api/sessions/${id}/cast or wicket replay ${id}`);
    }
    if (!deps.broker.liveSessions().some((r) => r.id === id)) {
      throw new RefuseError(404, 'WICKET_ERR_NOT_FOUND', `session ${id} is not running on this broker (${rec.brokerId})`);
    }
    if (watchers.size >= limits.maxWatchers) throw new RefuseError(503, 'WICKET_ERR_LIMIT', `too many live watchers (${limits.maxWatchers})`);
    // On record before a byte of the session is sent.
    await deps.audit({ ts: clock(), kind: 'session.watch', actor: user, target: rec.target, data: { session: id, owner: rec.user, via, clientAddr: clientAddr(req) } });
    return { id, who: who.principal, rec };
  }

  /** The upgrade's checks that can change while watching: the config's roles, the token's validity. */
  async function stillAllowed(who: Principal, rec: SessionRecord): Promise<boolean> {
    return mayWatch(deps.config(), who.user, rec) && tokenStillValid(deps.store, who, clock());
  }

  async function upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const { id, who, rec } = await check(req);
    const w = new Watcher(id, limits, log, (x) => watchers.delete(x), () => stillAllowed(who, rec));
    // Subscribed in the same tick as the handshake completes; what is recorded before 101 is in the backlog.
    const watch = deps.broker.watch(id, w.hear);
    if (watch === null) throw new RefuseError(404, 'WICKET_ERR_NOT_FOUND', `session ${id} has ended; replay it with GET /api/sessions/${id}/cast`);
    w.subscribed(watch);
    watchers.add(w);
    let opened = false;
    // ws answers a bad handshake itself (400/405/426) and destroys the socket without calling back.
    socket.once('close', () => {
      if (!opened) w.terminate();
    });
    wss.handleUpgrade(req, socket, head, (ws) => {
      opened = true;
      sockets.add(ws);
      ws.once('close', () => sockets.delete(ws));
      w.start(ws);
    });
  }

  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    socket.on('error', () => socket.destroy());
    upgrade(req, socket, head).catch((err: unknown) => {
      if (err instanceof RefuseError) return refuse(socket, err);
      log(`live: upgrade failed: ${errorMessage(err)}`);
      refuse(socket, new RefuseError(500, 'WICKET_ERR_INTERNAL', 'internal error'));
    });
  };
  server.on('upgrade', onUpgrade);

  return {
    get watchers() {
      return watchers.size;
    },
    close: () => {
      server.off('upgrade', onUpgrade);
      for (const w of [...watchers]) w.terminate();
      for (const ws of [...sockets]) ws.terminate();
    },
  };
}
