/**
 * One client `session` channel: collects pty/env requests, then on shell,
 * exec or subsystem opens a wicket session (policy + recording), starts the
 * matching process on the backend and relays both ways with flow control.
 *
 * Recording: shell and exec channels get an asciicast (pty channels through
 * TypedInput, which also reconstructs typed commands and redacts input the
 * remote did not echo); exec commands are recorded verbatim; sftp and legacy
 * scp channels record file operations (not contents) instead of a cast.
 * Every channel is recorded or refused: if the session cannot be opened, the
 * person gets the reason on stderr and exit status 1, and nothing runs.
 */
import type { ServerChannel, Session } from 'ssh2';
import { errorMessage } from '../../src/errors.js';
import type { ActiveSession, TerminalOptions } from '../../src/broker.js';
import type { FileEvent } from '../../src/session.js';
import type { Backend, ChannelKind, OpenSpec, Proc, PtyInfo } from './backend.js';
import { SftpObserver } from './sftp.js';
import { ScpObserver, parseScpCommand } from './scp.js';
import { diskGate, recordPty } from './pty-recording.js';

/** What a channel needs from its connection. */
export interface ChannelHost {
  readonly label: string;
  /** Opens the wicket session for this channel; throws a WicketError whose message is for the person. */
  openSession(terminal: TerminalOptions | null, meta: Record<string, unknown>): Promise<ActiveSession>;
  backend(): Promise<Backend>;
  /** Something the client asked for and wicket refused: an audit event (in the session when there is one). */
  refused(what: string, message: string, session: ActiveSession | null): void;
  log(line: string): void;
}

const ENV_ALLOWED = /^(TERM|LANG|LC_[A-Z_]+)$/;
const MAX_ENV = 32;
const MAX_COMMAND = 64 * 1024;

/** Observes a channel's byte streams for recording. */
interface Observer {
  fromClient(d: Buffer): void;
  fromServer(d: Buffer): void;
  fromServerErr(d: Buffer): void;
  end(): void;
}

export class SessionChannel {
  private pty: PtyInfo | null = null;
  private readonly env: Record<string, string> = {};
  private started = false;
  private stream: ServerChannel | null = null;
  private proc: Proc | null = null;
  private session: ActiveSession | null = null;
  private observer: Observer | null = null;
  private finished = false;
  private resize: ((cols: number, rows: number) => void) | null = null;

  constructor(
    private readonly host: ChannelHost,
    session: Session,
    /** Called when the channel is done, with its wicket session id if one was opened. */
    private readonly onDone: (ch: SessionChannel) => void,
  ) {
    session.on('pty', (accept, reject, info) => {
      if (this.started) return reject?.();
      this.pty = {
        term: String(info.term ?? 'xterm').slice(0, 64), cols: clampDim(info.cols, 80), rows: clampDim(info.rows, 24),
        width: info.width ?? 0, height: info.height ?? 0, modes: (info.modes as Record<string, number> | undefined) ?? null,
      };
      accept?.();
    });
    session.on('env', (accept, reject, info) => {
      const ok = !this.started && ENV_ALLOWED.test(info.key) && Object.keys(this.env).length < MAX_ENV && String(info.val ?? '').length < 256;
      if (!ok) return reject?.();
      this.env[info.key] = String(info.val ?? '');
      accept?.();
    });
    session.on('window-change', (accept, _reject, info) => {
      const cols = clampDim(info.cols, 80);
      const rows = clampDim(info.rows, 24);
      if (this.pty) this.pty = { ...this.pty, cols, rows, width: info.width ?? 0, height: info.height ?? 0 };
      this.proc?.resize(cols, rows, info.width ?? 0, info.height ?? 0);
      this.resize?.(cols, rows);
      accept?.();
    });
    session.on('signal', (accept, _reject, info) => {
      const name = String(info.name ?? '').replace(/^SIG/, '');
      if (/^[A-Z0-9]{1,10}$/.test(name)) this.proc?.signal(name);
      accept?.();
    });
    session.on('x11', (_accept, reject) => {
      this.refusedEarly('x11', 'X11 forwarding is never allowed through wicket');
      reject?.();
    });
    session.on('auth-agent', (_accept, reject) => {
      this.refusedEarly('auth-agent', 'agent forwarding is never allowed through wicket');
      reject?.();
    });
    session.on('shell', (accept, reject) => this.start({ type: 'shell' }, accept, reject));
    session.on('exec', (accept, reject, info) => {
      const command = String(info.command ?? '');
      if (command.length > MAX_COMMAND) return reject?.();
      this.start({ type: 'exec', command }, accept, reject);
    });
    session.on('subsystem', (accept, reject, info) => {
      const name = String(info.name ?? '');
      if (name !== 'sftp') {
        this.refusedEarly(`subsystem ${name.slice(0, 64)}`, `subsystem ${name.slice(0, 64)} is not allowed through wicket`);
        return reject?.();
      }
      this.start({ type: 'subsystem', name }, accept, reject);
    });
    session.on('close', () => this.finish(null));
  }

  private refusedEarly(what: string, message: string): void {
    this.host.refused(what, message, this.session);
  }

  private start(kind: ChannelKind, accept: (() => ServerChannel) | undefined, reject: (() => void) | undefined): void {
    if (this.started || !accept) return void reject?.();
    this.started = true;
    // ssh2 returns nothing when the channel is already ending.
    const stream: ServerChannel | undefined = accept();
    if (!stream) return void this.finish('client closed the channel');
    this.stream = stream;
    stream.on('error', () => undefined);
    // Client input waits until the process exists.
    stream.pause();
    void this.run(kind, stream).catch((err: unknown) => this.fail(errorMessage(err)));
  }

  private async run(kind: ChannelKind, stream: ServerChannel): Promise<void> {
    const scp = kind.type === 'exec' ? parseScpCommand(kind.command) : null;
    const recordsTerminal = kind.type === 'shell' || (kind.type === 'exec' && scp === null);
    const pty = this.pty;
    const terminal: TerminalOptions | null = recordsTerminal
      ? {
          cols: pty?.cols ?? 80, rows: pty?.rows ?? 24,
          env: { ...(pty ? { TERM: pty.term } : {}), ...(this.env.LANG ? { LANG: this.env.LANG } : {}) },
          ...(kind.type === 'exec' ? { title: kind.command.slice(0, 200) } : {}),
        }
      : null;
    const meta: Record<string, unknown> = {
      channel: kind.type, ...(kind.type === 'exec' ? { command: kind.command.slice(0, 4096) } : {}),
      ...(kind.type === 'subsystem' ? { subsystem: kind.name } : {}), ...(scp ? { scp: scp.direction } : {}),
      pty: pty ? { term: pty.term, cols: pty.cols, rows: pty.rows } : null,
    };
    let session: ActiveSession;
    try {
      session = await this.host.openSession(terminal, meta);
    } catch (err) {
      return this.fail(errorMessage(err), 1);
    }
    this.session = session;
    if (this.finished) return void session.end({ status: 'ended', reason: 'client closed the channel' });
    const at = Date.now();
    if (kind.type === 'exec') session.emit({ type: 'command', at, source: 'exec', command: kind.command.slice(0, MAX_COMMAND) });
    if (kind.type === 'subsystem') session.emit({ type: 'command', at, source: 'subsystem', command: kind.name });

    let proc: Proc;
    try {
      const backend = await this.host.backend();
      const spec: OpenSpec = { kind, pty, env: { ...this.env } };
      proc = await backend.open(spec);
    } catch (err) {
      await session.end({ status: 'failed', reason: errorMessage(err) });
      this.session = null;
      return this.fail(errorMessage(err), 255);
    }
    if (this.finished) {
      proc.kill();
      return;
    }
    this.proc = proc;
    this.observer = this.makeObserver(kind, scp !== null, session);
    this.relay(stream, proc);
  }

  private makeObserver(kind: ChannelKind, scp: boolean, session: ActiveSession): Observer | null {
    const emitFile = (ev: FileEvent): void => void session.emit(ev);
    if (kind.type === 'subsystem') {
      const o = new SftpObserver(emitFile);
      return { fromClient: (d) => o.fromClient(d), fromServer: (d) => o.fromServer(d), fromServerErr: () => undefined, end: () => o.end() };
    }
    if (scp && kind.type === 'exec') {
      const o = new ScpObserver(kind.command, emitFile);
      return { fromClient: (d) => o.fromClient(d), fromServer: (d) => o.fromServer(d), fromServerErr: () => undefined, end: () => o.end() };
    }
    const cast = session.terminal;
    if (!cast) return null;
    this.resize = (cols, rows) => cast.resize(cols, rows);
    if (this.pty) {
      // TypedInput: typed commands, unechoed input redacted (pty-recording.ts, shared with the web terminal).
      const rec = recordPty(session, cast);
      return { fromClient: (d) => rec.fromClient(d), fromServer: (d) => rec.fromServer(d), fromServerErr: (d) => rec.fromServer(d), end: () => rec.end() };
    }
    return { fromClient: (d) => cast.input(d), fromServer: (d) => cast.output(d), fromServerErr: (d) => cast.output(d), end: () => undefined };
  }

  private relay(stream: ServerChannel, proc: Proc): void {
    const obs = this.observer;
    // Output and input wait for the recording when its disk writes lag (sftp/scp keep no recording).
    const cast = this.session?.terminal ?? null;
    const outGate = cast ? diskGate(cast, () => proc.pause(), () => proc.resume()) : null;
    const inGate = cast ? diskGate(cast, () => stream.pause(), () => stream.resume()) : null;
    proc.onStdout((d) => {
      obs?.fromServer(d);
      if (!stream.write(d)) proc.pause();
      outGate?.();
    });
    proc.onStderr((d) => {
      obs?.fromServerErr(d);
      if (!stream.stderr.write(d)) proc.pause();
      outGate?.();
    });
    stream.on('drain', () => proc.resume());
    stream.stderr.on('drain', () => proc.resume());
    stream.on('data', (d: Buffer) => {
      obs?.fromClient(d);
      if (!proc.write(d)) stream.pause();
      inGate?.();
    });
    proc.onDrain(() => stream.resume());
    stream.on('end', () => proc.endInput());
    proc.onExit((code, signal) => {
      if (!this.finished) {
        try {
          if (signal) stream.exit(signal, false, '');
          else if (code !== null) stream.exit(code);
        } catch {
          // channel already closed
        }
        stream.end();
      }
      this.finish(code === null && signal ? `exit signal ${signal}` : `exit ${code ?? '?'}`);
    });
    stream.resume();
  }

  /** Nothing runs: tell the person why on stderr, then close the channel with `status`. */
  private fail(message: string, status = 1): void {
    const s = this.stream;
    if (s && !this.finished) {
      try {
        s.stderr.write(`wicket: ${message}\r\n`);
        s.exit(status);
        s.end();
      } catch {
        // gone
      }
    }
    this.finish(message, 'failed');
  }

  /** Ends the wicket session with the message on the channel (kill, lock). */
  terminate(reason: string): void {
    const s = this.stream;
    if (s && !this.finished) {
      try {
        s.stderr.write(`\r\nterminated by wicket: ${reason}\r\n`);
        s.exit('TERM', false, `terminated by wicket: ${reason}`);
        s.end();
      } catch {
        // gone
      }
    }
    this.proc?.kill();
    this.finish(`terminated by wicket: ${reason}`);
  }

  /** The connection is going away (client or upstream left): end without a message. */
  close(reason: string): void {
    this.proc?.kill();
    this.finish(reason);
  }

  get sessionId(): string | null {
    return this.session?.id ?? null;
  }

  private finish(reason: string | null, status: 'ended' | 'failed' = 'ended'): void {
    if (this.finished) return;
    this.finished = true;
    try {
      this.observer?.end();
    } catch {
      // observers never throw; belt and braces
    }
    this.proc?.kill();
    const s = this.session;
    if (s) void s.end({ status, reason: reason ?? 'client closed the channel' }).catch((err: unknown) => this.host.log(`ssh ${this.host.label}: ending session ${s.id}: ${errorMessage(err)}`));
    this.onDone(this);
  }
}

function clampDim(n: unknown, dflt: number): number {
  return typeof n === 'number' && Number.isInteger(n) && n > 0 && n <= 10_000 ? n : dflt;
}
