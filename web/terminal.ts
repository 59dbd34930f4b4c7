/**
 * `WS /api/terminal?target=NAME&cols=&rows=`: an interactive terminal on an
 * `ssh` or `shell` target in the browser, under the same policy, approval,
 * limits and recording as the SSH listener.
 *
 * The upgrade is checked like web/live.ts's, and refused with a plain HTTP
 * answer (never 101) otherwise:
 *   - 401/429: no or bad bearer token / login cookie (web/api/auth.ts identify());
 *   - 403: a login cookie without an Origin equal to the page's own origin (the
 *     WebSocket CSRF check, web/live.ts sameOrigin());
 *   - 400: no valid `target`, or `cols`/`rows` not whole numbers in 1..MAX_COLS/MAX_ROWS;
 *   - 503: the web API is not ready, or MAX terminals are open on this broker.
 * After the 101 the broker decides (Broker.open: policy, approvals, locks,
 * limits.sessions_per_user; a denial is audited as policy.deny by the broker):
 * a refusal is sent as {"type":"error","message"} and the socket closes with
 * 4003 (CLOSE_DENIED: policy, approval, lock, limit) or 1011 (the recording or
 * the upstream failed). The message names the fix, e.g. the `wicket request`
 * command when the rule needs an approval.
 *
 * Allowed: the session is opened with protocol `shell` for shell targets and
 * `ssh` otherwise, authMethod `web`, meta {via: 'web'}; then a pty shell
 * starts on the same backends as an SSH pty channel (protocols/ssh/backend.ts
 * remoteBackend over connectUpstream() for `ssh` targets, with the target's
 * credentials and host-key check; protocols/ssh/local.ts for `shell`
 * targets), recorded through the same path (protocols/ssh/pty-recording.ts:
 * asciicast, typed commands, unechoed input redacted).
 *
 * Messages, JSON text frames:
 *   client -> server: {"type":"input","data":"text"} (keystrokes, UTF-8),
 *                     {"type":"resize","cols":N,"rows":N};
 *     a frame above maxInputBytes closes with 1009; binary frames with 1003;
 *     anything else malformed with 1008.
 *   server -> client: {"type":"ready","session":"ID","target":"NAME"} once the
 *     shell runs (the session is recorded from here; GET /api/sessions/ID),
 *     {"type":"output","data":"text"} (terminal output, decoded as UTF-8
 *     across chunk boundaries),
 *     {"type":"exit","code":N|null,"reason":"exit 0" | "exit signal HUP" |
 *     "terminated by wicket: ..." | "upstream ... closed"}, then a 1000 close;
 *     {"type":"error","message"} then 4003/1011 (above).
 *
 * Flow control: output is paused while the socket holds more than
 * maxBufferedBytes unsent; input waits (the socket is paused) while the
 * process does not take it. Keystrokes sent before the shell started are
 * queued up to maxInputBytes * 4.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import type { ActiveSession, Broker, TerminalOptions } from '../src/broker.js';
import type { Config } from '../src/config/schema.js';
import { WicketError, errorMessage, type ErrorCode } from '../src/errors.js';
import { remoteBackend, type Backend, type Proc, type PtyInfo } from '../protocols/ssh/backend.js';
import { localBackend } from '../protocols/ssh/local.js';
import { connectUpstream } from '../protocols/ssh/upstream.js';
import { diskGate, recordPty, type PtyRecording } from '../protocols/ssh/pty-recording.js';
import { clientAddr, identify, webAuthDeps, type Principal } from './api/auth.js';
import { RefuseError, heartbeat, refuse, sameOrigin, type WsEndpointDeps } from './upgrade.js';

export const TERMINAL_PATH = '/api/terminal';
/** Close code after an {"type":"error"} refusal by policy, approval, lock or limit. */
export const CLOSE_DENIED = 4003;
export const MAX_COLS = 1000;
export const MAX_ROWS = 500;
/** The terminal type the shell is told (xterm.js). */
export const TERM = 'xterm-256color';
const TARGET_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** Broker refusals that are a decision (4003), not a failure (1011). */
const DENIAL_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'WICKET_ERR_UNKNOWN_USER', 'WICKET_ERR_UNKNOWN_TARGET', 'WICKET_ERR_UNKNOWN_SEGMENT', 'WICKET_ERR_POLICY_DENY',
  'WICKET_ERR_SEGMENT_LOCKED', 'WICKET_ERR_APPROVAL_REQUIRED', 'WICKET_ERR_LIMIT', 'WICKET_ERR_TERMINATED',
]);
/** How long a closing socket may take to answer the close before it is cut. */
const CLOSE_GRACE_MS = 5000;

export interface TerminalLimits {
  /** Largest client frame (an input or resize message). Default 64 KiB. */
  readonly maxInputBytes?: number;
  /** Pause the terminal's output while the socket holds more than this unsent. Default 1 MiB. */
  readonly maxBufferedBytes?: number;
  /** Web terminals at once on this broker (limits.sessions_per_user applies per user as well). Default 256. */
  readonly maxTerminals?: number;
  /** Ping interval; a browser that has not answered the previous ping is cut. Default 30 s. */
  readonly pingMs?: number;
  /** Connecting and logging in to an `ssh` target. Default 15 s. */
  readonly upstreamTimeoutMs?: number;
}

/** `audit` receives ssh.host_key_mismatch rows (the broker writes the session's own). */
export interface TerminalDeps extends WsEndpointDeps {
  readonly limits?: TerminalLimits;
}

export interface TerminalServer {
  /** Web terminals open on this broker (from the 101 until the socket is done). */
  readonly terminals: number;
  /**
   * A server object that is never listening: it receives the `upgrade` events
   * of every other path (attach web/live.ts there).
   */
  readonly otherUpgrades: Server;
  /** Cuts every web terminal (the broker is stopping; their sessions were ended by Broker.shutdown). */
  close(): void;
}

type Limits = Required<TerminalLimits>;

interface Request {
  readonly who: Principal;
  readonly addr: string;
  readonly target: string;
  readonly cols: number;
  readonly rows: number;
}

/** A WebSocket close reason: at most 123 bytes of UTF-8, cut at a character boundary. */
export function closeReason(text: string): string {
  let s = text;
  while (Buffer.byteLength(s) > 123) s = s.slice(0, -1);
  return s;
}

/** `cols`/`rows` query value: absent means the default; otherwise a whole number in 1..max. */
function dimension(v: string | null, dflt: number, max: number, what: string): number {
  if (v === null || v === '') return dflt;
  const n = /^\d{1,5}$/.test(v) ? Number(v) : NaN;
  if (!Number.isInteger(n) || n < 1 || n > max) throw new RefuseError(400, 'WICKET_ERR_USAGE', `${what} must be a whole number from 1 to ${max}`);
  return n;
}

/** A resize message's value: whole numbers, clamped to 1..max (a hidden page may measure 0). */
function clampDim(v: unknown, max: number): number | null {
  if (typeof v !== 'number' || !Number.isInteger(v)) return null;
  return Math.min(max, Math.max(1, v));
}

type ClientMessage = { readonly type: 'input'; readonly data: string } | { readonly type: 'resize'; readonly cols: number; readonly rows: number };

/** Parses one client frame; null when it is not a valid message. */
export function parseClientMessage(text: string): ClientMessage | null {
  let m: unknown;
  try {
    m = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof m !== 'object' || m === null) return null;
  const o = m as Record<string, unknown>;
  if (o.type === 'input' && typeof o.data === 'string') return { type: 'input', data: o.data };
  if (o.type === 'resize') {
    const cols = clampDim(o.cols, MAX_COLS);
    const rows = clampDim(o.rows, MAX_ROWS);
    if (cols !== null && rows !== null) return { type: 'resize', cols, rows };
  }
  return null;
}

type State = 'opening' | 'running' | 'closed';

/** One browser terminal: the wicket session, its backend process, and the relay between them. */
class WebTerminal {
  private state: State = 'opening';
  private session: ActiveSession | null = null;
  private backend: Backend | null = null;
  private proc: Proc | null = null;
  private rec: PtyRecording | null = null;
  /** Input arriving before the process exists (bounded). */
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private outputPaused = false;
  private inputPaused = false;
  private pinger: NodeJS.Timeout | null = null;
  private cols: number;
  private rows: number;
  private readonly label: string;

  constructor(
    private readonly ws: WebSocket,
    private readonly req: Request,
    private readonly deps: TerminalDeps,
    private readonly limits: Limits,
    private readonly log: (line: string) => void,
    private readonly done: (t: WebTerminal) => void,
  ) {
    this.cols = req.cols;
    this.rows = req.rows;
    this.label = `${req.who.user}@${req.target} from ${req.addr}`;
  }

  start(): void {
    const ws = this.ws;
    ws.on('error', () => undefined); // a reset connection also emits 'close'
    ws.on('close', () => this.finish('browser closed the terminal'));
    ws.on('message', (data: RawData, isBinary: boolean) => this.onMessage(data, isBinary));
    this.pinger = heartbeat(ws, this.limits.pingMs);
    void this.open().catch((err: unknown) => {
      this.log(`web terminal ${this.label}: ${errorMessage(err)}`);
      this.fail(1011, 'internal error');
    });
  }

  private async open(): Promise<void> {
    const { req, deps } = this;
    const target = deps.config().targets.find((t) => t.name === req.target);
    const pty: PtyInfo = { term: TERM, cols: this.cols, rows: this.rows, width: 0, height: 0, modes: null };
    const terminal: TerminalOptions = { cols: pty.cols, rows: pty.rows, env: { TERM } };
    let session: ActiveSession;
    try {
      session = await deps.broker.open({
        user: req.who.user, target: req.target, protocol: target?.protocol === 'shell' ? 'shell' : 'ssh',
        clientAddr: req.addr, authMethod: 'web', tokenId: req.who.tokenId,
        meta: { via: 'web', webAuth: req.who.via, channel: 'shell', pty: { term: pty.term, cols: pty.cols, rows: pty.rows } },
      }, { terminate: (reason) => this.terminate(reason) }, terminal);
    } catch (err) {
      const code = err instanceof WicketError ? err.code : 'WICKET_ERR_INTERNAL';
      return this.fail(DENIAL_CODES.has(code) ? CLOSE_DENIED : 1011, errorMessage(err));
    }
    this.session = session;
    if (this.state === 'closed') return void this.endSession('ended', 'browser closed the terminal');
    let proc: Proc;
    try {
      this.backend = await this.connect(target!);
      if (this.state !== 'opening') return void this.backend.close();
      proc = await this.backend.open({ kind: { type: 'shell' }, pty: { ...pty, cols: this.cols, rows: this.rows }, env: {} });
    } catch (err) {
      await this.endSession('failed', errorMessage(err));
      return this.fail(1011, errorMessage(err));
    }
    if (this.state !== 'opening') return proc.kill();
    this.proc = proc;
    this.rec = recordPty(session, session.terminal!);
    this.state = 'running';
    this.send({ type: 'ready', session: session.id, target: this.req.target });
    this.relay(proc);
  }

  /** The target's backend, as SshConnection.backend() builds it for an SSH login. */
  private async connect(target: Config['targets'][number]): Promise<Backend> {
    if (target.protocol === 'shell') return localBackend(target);
    if (target.protocol !== 'ssh') throw new WicketError('WICKET_ERR_POLICY_DENY', `target ${target.name} is a ${target.protocol} target, not ssh`);
    try {
      const client = await connectUpstream(target, this.limits.upstreamTimeoutMs);
      client.on('error', () => undefined);
      client.on('close', () => this.exit(null, `upstream ${target.name} closed the connection`));
      return remoteBackend(client, target.name);
    } catch (err) {
      if (err instanceof WicketError && err.code === 'WICKET_ERR_HOST_KEY') {
        void this.deps.audit({ ts: Date.now(), kind: 'ssh.host_key_mismatch', actor: this.req.who.user, target: target.name, data: { message: err.message, clientAddr: this.req.addr, via: 'web' } }).catch(() => undefined);
      }
      throw err;
    }
  }

  private relay(proc: Proc): void {
    const out = new StringDecoder('utf8');
    const err = new StringDecoder('utf8');
    // Output waits for the recording when its disk writes lag.
    const cast = this.session?.terminal ?? null;
    const gate = cast ? diskGate(cast, () => proc.pause(), () => proc.resume()) : null;
    proc.onStdout((d) => {
      this.rec?.fromServer(d);
      this.output(out.write(d));
      gate?.();
    });
    proc.onStderr((d) => {
      this.rec?.fromServer(d);
      this.output(err.write(d));
      gate?.();
    });
    proc.onDrain(() => {
      if (!this.inputPaused) return;
      this.inputPaused = false;
      this.ws.resume();
    });
    proc.onExit((code, signal) => {
      this.output(out.end());
      this.output(err.end());
      this.exit(code, code === null && signal ? `exit signal ${signal}` : `exit ${code ?? '?'}`);
    });
    // What the browser sent while the shell was starting, and its latest size.
    if (this.cols !== this.req.cols || this.rows !== this.req.rows) this.resize(this.cols, this.rows);
    const queued = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    for (const d of queued) this.input(d);
  }

  private onMessage(data: RawData, isBinary: boolean): void {
    if (this.state === 'closed') return;
    if (isBinary) return this.fail(1003, 'binary frames are not accepted; send JSON text');
    const text = (Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data)).toString('utf8');
    const m = parseClientMessage(text);
    if (m === null) return this.fail(1008, 'expected {"type":"input","data":"..."} or {"type":"resize","cols":N,"rows":N}');
    if (m.type === 'resize') {
      this.cols = m.cols;
      this.rows = m.rows;
      if (this.state === 'running') this.resize(m.cols, m.rows);
      return;
    }
    const d = Buffer.from(m.data, 'utf8');
    if (d.length === 0) return;
    if (this.state === 'running') return this.input(d);
    this.pendingBytes += d.length;
    if (this.pendingBytes > this.limits.maxInputBytes * 4) return this.fail(1008, 'too much input before the terminal started');
    this.pending.push(d);
  }

  private input(d: Buffer): void {
    this.rec?.fromClient(d);
    if (!this.proc!.write(d) && !this.inputPaused) {
      this.inputPaused = true;
      this.ws.pause();
    }
  }

  private resize(cols: number, rows: number): void {
    this.proc?.resize(cols, rows, 0, 0);
    this.rec?.resize(cols, rows);
  }

  private output(text: string): void {
    const ws = this.ws;
    if (text === '' || ws.readyState !== WebSocket.OPEN) return;
    ws.send(JSON.stringify({ type: 'output', data: text }), () => {
      if (this.outputPaused && ws.bufferedAmount <= this.limits.maxBufferedBytes / 2) {
        this.outputPaused = false;
        this.proc?.resume();
      }
    });
    if (!this.outputPaused && ws.bufferedAmount > this.limits.maxBufferedBytes) {
      this.outputPaused = true;
      this.proc?.pause();
    }
  }

  /** The shell ended (exit, upstream gone): tell the browser, close, end the session. */
  private exit(code: number | null, reason: string): void {
    if (this.state === 'closed') return;
    this.send({ type: 'exit', code, reason });
    this.closeSocket(1000, reason);
    this.finish(reason);
  }

  /** Broker.terminate (wicket kill, segment lock, revocation, expiry). */
  terminate(reason: string): void {
    this.exit(null, `terminated by wicket: ${reason}`);
  }

  /** Nothing (more) runs: the reason as an error message, then close with `code`. */
  private fail(code: number, message: string): void {
    if (this.state === 'closed') return;
    this.send({ type: 'error', message });
    this.closeSocket(code, message);
    this.finish(message, 'failed');
  }

  private send(m: Readonly<Record<string, unknown>>): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(m));
  }

  private closeSocket(code: number, reason: string): void {
    const ws = this.ws;
    if (ws.readyState !== WebSocket.OPEN && ws.readyState !== WebSocket.CONNECTING) return;
    ws.close(code, closeReason(reason));
    // A peer that does not read never answers the close: cut it after a grace period.
    setTimeout(() => ws.terminate(), CLOSE_GRACE_MS).unref();
  }

  private endSession(status: 'ended' | 'failed', reason: string): Promise<void> {
    const s = this.session;
    if (s === null) return Promise.resolve();
    return s.end({ status, reason }).catch((err: unknown) => this.log(`web terminal ${this.label}: ending session ${s.id}: ${errorMessage(err)}`));
  }

  private finish(reason: string, status: 'ended' | 'failed' = 'ended'): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    if (this.pinger !== null) clearInterval(this.pinger);
    this.pinger = null;
    this.pending = [];
    try {
      this.rec?.end();
    } catch {
      // the recorder never throws; belt and braces
    }
    this.proc?.kill();
    this.backend?.close();
    void this.endSession(status, reason);
    this.done(this);
  }

  /** The broker is stopping: cut the socket now. */
  cut(): void {
    this.finish('wicket is stopping');
    this.ws.terminate();
  }
}

/**
 * Handles `upgrade` requests for TERMINAL_PATH on `server`; every other
 * upgrade is passed on to `otherUpgrades` (where web/live.ts attaches), so
 * exactly one handler answers each request.
 */
export function attachTerminal(server: Server, deps: TerminalDeps): TerminalServer {
  const log = deps.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const limits: Limits = {
    maxInputBytes: deps.limits?.maxInputBytes ?? 64 * 1024,
    maxBufferedBytes: deps.limits?.maxBufferedBytes ?? 1024 * 1024,
    maxTerminals: deps.limits?.maxTerminals ?? 256,
    pingMs: deps.limits?.pingMs ?? 30_000,
    upstreamTimeoutMs: deps.limits?.upstreamTimeoutMs ?? 15_000,
  };
  const wss = new WebSocketServer({ noServer: true, maxPayload: limits.maxInputBytes, perMessageDeflate: false, clientTracking: false });
  const terminals = new Set<WebTerminal>();
  /** Upgrades past their checks whose handshake has not completed (counted against maxTerminals). */
  let handshaking = 0;
  const others = createServer();

  async function check(req: IncomingMessage): Promise<Request> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const auth = webAuthDeps(deps.store);
    if (auth === null) throw new RefuseError(503, 'WICKET_ERR_STORE', 'the web API is not ready');
    const who = await identify(auth, req);
    if (!who.ok) throw new RefuseError(who.status, who.code, who.message, who.headers);
    if (who.principal.via === 'session' && !sameOrigin(req)) {
      throw new RefuseError(403, 'WICKET_ERR_FORBIDDEN', 'a terminal authenticated by the login cookie must come from this server\'s own pages (Origin mismatch)');
    }
    const target = url.searchParams.get('target') ?? '';
    if (!TARGET_NAME.test(target)) throw new RefuseError(400, 'WICKET_ERR_USAGE', 'expected ?target=NAME (a target name)');
    const cols = dimension(url.searchParams.get('cols'), 80, MAX_COLS, 'cols');
    const rows = dimension(url.searchParams.get('rows'), 24, MAX_ROWS, 'rows');
    if (terminals.size + handshaking >= limits.maxTerminals) throw new RefuseError(503, 'WICKET_ERR_LIMIT', `too many web terminals on this broker (${limits.maxTerminals})`);
    return { who: who.principal, addr: clientAddr(req), target, cols, rows };
  }

  async function upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const r = await check(req);
    handshaking++;
    let counted = true;
    const uncount = (): void => {
      if (counted) handshaking--;
      counted = false;
    };
    // ws answers a bad handshake itself (400/405/426) and destroys the socket without calling back.
    socket.once('close', uncount);
    wss.handleUpgrade(req, socket, head, (ws) => {
      uncount();
      const t = new WebTerminal(ws, r, deps, limits, log, (x) => terminals.delete(x));
      terminals.add(t);
      t.start();
    });
  }

  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    if (new URL(req.url ?? '/', 'http://localhost').pathname !== TERMINAL_PATH) {
      others.emit('upgrade', req, socket, head);
      return;
    }
    socket.on('error', () => socket.destroy());
    upgrade(req, socket, head).catch((err: unknown) => {
      if (err instanceof RefuseError) return refuse(socket, err);
      log(`web terminal: upgrade failed: ${errorMessage(err)}`);
      refuse(socket, new RefuseError(500, 'WICKET_ERR_INTERNAL', 'internal error'));
    });
  };
  server.on('upgrade', onUpgrade);

  return {
    get terminals() {
      return terminals.size;
    },
    otherUpgrades: others,
    close: () => {
      server.off('upgrade', onUpgrade);
      for (const t of [...terminals]) t.cut();
    },
  };
}
