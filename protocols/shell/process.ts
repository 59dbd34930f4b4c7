/**
 * Local processes for `protocol: shell` targets: an interactive pty (node-pty), an exec without
 * a pty, or the OpenSSH sftp-server, all behind LocalProcess. The child never inherits wicket's
 * environment (it may hold secrets): it gets a fixed PATH, the account's identity, TERM and the
 * caller's allow-listed variables. Dropping to `user` goes through setpriv(1) so supplementary
 * groups are those of the account (node-pty's own uid/gid option keeps root's groups). Every
 * child starts through a bash step that closes inherited descriptors (CLOSE_FDS_SCRIPT), and a
 * pty's last output is read before node-pty closes it (drainBeforeClose).
 * Buffer ownership: chunks handed to onStdout/onStderr are fresh and never reused by us;
 * write() copies what it is given.
 */
import { type ChildProcess, spawn as spawnChild } from 'node:child_process';
import { accessSync, constants as fsConstants, readSync, statSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import path from 'node:path';
import pty from 'node-pty';
import { WicketError } from '../../src/errors.js';
import { type Account, groupsOf, lookupAccount, readText } from './account.js';

export interface LocalProcess {
  /** stdout (pty: the terminal output). */
  onStdout(cb: (d: Buffer) => void): void;
  /** stderr; never called for a pty. */
  onStderr(cb: (d: Buffer) => void): void;
  /** stdin / keystrokes. Ignored after endInput() or exit. false: the child is not keeping up;
   * stop writing until onDrain fires (a pty always returns true: node-pty queues internally). */
  write(d: Buffer): boolean;
  /** Register once: called each time input was taken up after write() returned false. */
  onDrain(cb: () => void): void;
  /** EOF on stdin (no-op for a pty: nothing is sent). */
  endInput(): void;
  /** No-op without a pty. Values are clamped to 1..MAX_TERMINAL_SIZE. */
  resize(cols: number, rows: number): void;
  /** SSH signal names without SIG: INT TERM KILL HUP QUIT USR1 USR2; others are ignored. */
  signal(name: string): void;
  /** Once, after all output was delivered. `signal` has no SIG prefix; `code` is null then. */
  onExit(cb: (code: number | null, signal: string | null) => void): void;
  /** Hang up / terminate the process group; SIGKILL after KILL_GRACE_MS. Idempotent. */
  kill(): void;
  /** Backpressure: stop delivering output (queued up to OUTPUT_HIGH_WATER, then the child blocks). */
  pause(): void;
  resume(): void;
  readonly pid: number;
}

export interface ShellSpawn {
  /** The target's command, e.g. ['/bin/bash', '-l']. */
  readonly command: readonly string[];
  /** Drop privileges to this local account (wicket must be root unless it is wicket's own). */
  readonly user?: string;
  readonly pty?: { term: string; cols: number; rows: number } | null;
  /** Already allow-listed by the caller (TERM, LANG, LC_*); cannot override PATH/HOME/USER/LOGNAME/SHELL. */
  readonly env?: Readonly<Record<string, string>>;
  /** An exec request: runs `command... -c <exec>`; only when command[0] is a shell. */
  readonly exec?: string | null;
  /** Run the local OpenSSH sftp-server as the account instead of `command`. */
  readonly subsystem?: 'sftp' | null;
  /** Working directory (the target's `cwd`); default the account's home, else '/'. */
  readonly cwd?: string;
}

export const SHELLS: ReadonlySet<string> = new Set(['sh', 'bash', 'zsh', 'dash', 'ash', 'ksh', 'fish']);
export const SIGNALS: ReadonlySet<string> = new Set(['INT', 'TERM', 'KILL', 'HUP', 'QUIT', 'USR1', 'USR2']);
export const SFTP_SERVER_PATHS = ['/usr/lib/openssh/sftp-server', '/usr/libexec/openssh/sftp-server', '/usr/lib/sftp-server'];
const SETPRIV_PATHS = ['/usr/bin/setpriv', '/bin/setpriv', '/usr/sbin/setpriv', '/sbin/setpriv'];
const BASH_PATHS = ['/bin/bash', '/usr/bin/bash', '/usr/local/bin/bash'];
/**
 * node-pty's master descriptors are not close-on-exec, and neither node-pty's forkpty child nor
 * libuv's spawn closes inherited descriptors: without this step every child would hold the
 * terminals of all other live sessions. bash (multi-digit `{var}>&-`; dash cannot) closes every
 * descriptor above 2, then execs the real program. -p: no BASH_ENV, SHELLOPTS or imported functions.
 */
const CLOSE_FDS_SCRIPT = [
  'shopt -s nullglob',
  'if [[ -r /proc/$$/fd ]]; then',
  '  for f in /proc/$$/fd/*; do f=${f##*/}; if (( f > 2 )) && [[ -e /proc/$$/fd/$f ]]; then exec {f}>&-; fi; done',
  'else', // no /proc: close every possible descriptor
  '  n=$(ulimit -n); [[ $n =~ ^[0-9]+$ ]] && (( n <= 65536 )) || n=65536',
  '  for ((f = 3; f < n; f++)); do exec {f}>&-; done',
  'fi',
  'exec "$@"',
].join('\n');
const PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const IDENTITY_VARS = new Set(['PATH', 'HOME', 'USER', 'LOGNAME', 'SHELL', 'PWD']);
/** Never passed on, whatever the caller allowed: they steer the loader, libc or a shell, and setpriv runs as root. */
const UNSAFE_VAR = /^(?:LD_|GLIBC_|MALLOC_|BASH_)|^(?:GCONV_PATH|LOCPATH|NLSPATH|HOSTALIASES|ENV|SHELLOPTS|BASHOPTS|IFS|PS4|TZDIR)$/;
export const MAX_TERMINAL_SIZE = 10_000;
/** Output queued while paused before the child's stream is paused too. */
export const OUTPUT_HIGH_WATER = 1024 * 1024;
export const KILL_GRACE_MS = 2_000;
/** After a piped child exits, wait this long for its stdout/stderr to reach EOF (a background
 * process may hold them open), then close them. */
export const EXIT_DRAIN_MS = 1_000;

function firstExisting(paths: readonly string[]): string | undefined {
  return paths.find((p) => {
    try {
      accessSync(p, fsConstants.X_OK);
      return statSync(p).isFile();
    } catch {
      return false;
    }
  });
}

function isDirectory(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** The argv to run (before any privilege drop): the target command, `-c exec`, or sftp-server. */
export function buildArgv(spec: ShellSpawn): string[] {
  if (spec.subsystem === 'sftp') {
    if (spec.exec != null) throw new WicketError('WICKET_ERR_INTERNAL', 'shell: exec and subsystem are exclusive');
    const server = firstExisting(SFTP_SERVER_PATHS);
    if (!server) {
      throw new WicketError('WICKET_ERR_CONFIG',
        `sftp is unavailable on this shell target: no OpenSSH sftp-server at ${SFTP_SERVER_PATHS.join(', ')}`);
    }
    return [server];
  }
  if (spec.command.length === 0 || spec.command[0] === '') {
    throw new WicketError('WICKET_ERR_CONFIG', 'shell target has an empty command');
  }
  const argv = [...spec.command];
  if (argv.some((a) => a.includes('\0'))) throw new WicketError('WICKET_ERR_CONFIG', 'shell target command contains a NUL byte');
  if (!argv[0]!.includes('/')) {
    const found = firstExisting(PATH.split(':').map((d) => path.join(d, argv[0]!)));
    if (!found) throw new WicketError('WICKET_ERR_CONFIG', `shell target command ${argv[0]} is not on ${PATH}`);
    argv[0] = found;
  } else if (!firstExisting([argv[0]!])) {
    throw new WicketError('WICKET_ERR_CONFIG', `shell target command ${argv[0]} is not an executable file`);
  }
  if (spec.exec != null) {
    if (!SHELLS.has(path.basename(argv[0]!))) {
      throw new WicketError('WICKET_ERR_CONFIG',
        `exec requests need a shell as the target command (one of ${[...SHELLS].join(', ')}), not ${argv[0]}`);
    }
    if (spec.exec.includes('\0')) throw new WicketError('WICKET_ERR_PROTOCOL', 'exec command contains a NUL byte');
    argv.push('-c', spec.exec);
  }
  return argv;
}

function buildEnv(account: Account, spec: ShellSpawn): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(spec.env ?? {})) {
    if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(k) && !v.includes('\0') && !IDENTITY_VARS.has(k) && !UNSAFE_VAR.test(k)) env[k] = v;
  }
  Object.assign(env, { PATH, HOME: account.home, USER: account.name, LOGNAME: account.name, SHELL: account.shell });
  if (spec.pty) env.TERM = spec.pty.term || 'dumb';
  else delete env.TERM;
  return env;
}

/** Prefix that closes inherited descriptors (see CLOSE_FDS_SCRIPT). */
function closeFdsPrefix(): string[] {
  const bash = firstExisting(BASH_PATHS);
  if (!bash) throw new WicketError('WICKET_ERR_CONFIG', 'shell targets need bash on the wicket host (to close inherited descriptors)');
  return [bash, '--norc', '--noprofile', '-p', '-c', CLOSE_FDS_SCRIPT, 'wicket-closefds'];
}

/** Prefix that drops root to the account with its own supplementary groups. */
function dropPrefix(account: Account): string[] {
  const setpriv = firstExisting(SETPRIV_PATHS);
  if (!setpriv) {
    throw new WicketError('WICKET_ERR_CONFIG',
      `shell target runs as ${account.name}: setpriv (util-linux) is required to drop privileges and was not found`);
  }
  const groups = groupsOf(readText('/etc/group'), account.name, account.gid);
  return [setpriv, `--regid=${account.gid}`, `--reuid=${account.uid}`, `--groups=${groups.join(',')}`, '--inh-caps=-all', '--'];
}

const clamp = (n: number) => (Number.isFinite(n) ? Math.min(MAX_TERMINAL_SIZE, Math.max(1, Math.floor(n))) : 80);

function signalName(sig: number | string | null | undefined): string | null {
  if (sig === null || sig === undefined || sig === 0) return null;
  if (typeof sig === 'string') return sig.replace(/^SIG/, '');
  const name = Object.entries(osConstants.signals).find(([, n]) => n === sig)?.[0];
  return name ? name.replace(/^SIG/, '') : String(sig);
}

/** Bytes read from a pty master in one drain; the exited child can only have left its buffer. */
const MAX_DRAIN = 4 * 1024 * 1024;

/**
 * libuv ends a read stream on POLLHUP after a short read (a pty read is always short), and
 * node-pty destroys its stream 200 ms after the child exits: either way the last bytes still in
 * the kernel buffer would be lost (seen with a dozen concurrent sessions). Before node-pty's
 * stream closes the master, hand over what it buffered and read the rest synchronously: reads
 * return the remaining data, then EAGAIN (empty) or EIO (slave closed and empty).
 * Relies on node-pty's `_socket` and `fd`; without them this is skipped.
 */
function drainBeforeClose(term: pty.IPty, onData: (d: Buffer) => void): void {
  const t = term as unknown as { _socket?: { destroy: (...a: unknown[]) => unknown; read: () => unknown }; fd?: unknown };
  const socket = t._socket;
  const fd = t.fd;
  if (!socket || typeof socket.destroy !== 'function' || typeof socket.read !== 'function' || typeof fd !== 'number') return;
  const destroy = socket.destroy;
  let drained = false;
  socket.destroy = (...args: unknown[]) => {
    if (!drained) {
      drained = true;
      try {
        for (let c = socket.read(); c !== null; c = socket.read()) if (Buffer.isBuffer(c)) onData(c);
        const buf = Buffer.allocUnsafe(64 * 1024);
        for (let total = 0; total < MAX_DRAIN;) {
          const n = readSync(fd, buf, 0, buf.length, null);
          if (n <= 0) break;
          onData(Buffer.from(buf.subarray(0, n)));
          total += n;
        }
      } catch { /* EAGAIN / EIO: drained */ }
    }
    return destroy.apply(socket, args);
  };
}

type ExitCb = (code: number | null, signal: string | null) => void;

/** Listener fan-out, the pause queue and the once-only exit shared by both kinds. */
abstract class Base implements LocalProcess {
  abstract readonly pid: number;
  private readonly out: Array<(d: Buffer) => void> = [];
  private readonly err: Array<(d: Buffer) => void> = [];
  private readonly exitCbs: ExitCb[] = [];
  private queue: Array<{ err: boolean; d: Buffer }> = [];
  private queued = 0;
  private paused = false;
  protected throttled = false;
  private exit: { code: number | null; signal: string | null } | null = null;
  private exitFired = false;
  protected exited = false;
  private killed = false;
  private graceTimer: NodeJS.Timeout | undefined;

  onStdout(cb: (d: Buffer) => void): void { this.out.push(cb); }
  onStderr(cb: (d: Buffer) => void): void { this.err.push(cb); }
  onExit(cb: ExitCb): void {
    this.exitCbs.push(cb);
    if (this.exitFired) queueMicrotask(() => cb(this.exit!.code, this.exit!.signal));
  }
  abstract write(d: Buffer): boolean;
  abstract onDrain(cb: () => void): void;
  abstract endInput(): void;
  abstract resize(cols: number, rows: number): void;
  protected abstract setThrottle(on: boolean): void;
  /** Closes input and, when `group`, sends SIGHUP to the process group. */
  protected abstract hangUp(group: boolean): void;

  signal(name: string): void {
    if (!SIGNALS.has(name) || this.exited) return;
    this.sendGroup(`SIG${name}` as NodeJS.Signals);
  }

  kill(): void {
    if (this.killed) return;
    this.killed = true;
    // After the child was reaped its id names the group only while members live; one still
    // holding our output open is such a member. Once output closed, the id may be reused: leave it.
    this.hangUp(this.exit === null);
    if (this.exited) return;
    this.graceTimer = setTimeout(() => { if (!this.exited) this.sendGroup('SIGKILL'); }, KILL_GRACE_MS);
    this.graceTimer.unref();
  }

  pause(): void { this.paused = true; }
  resume(): void {
    this.paused = false;
    while (!this.paused && this.queue.length > 0) {
      const { err, d } = this.queue.shift()!;
      this.queued -= d.length;
      this.emitData(err, d);
    }
    if (this.queue.length === 0 && this.throttled) this.setThrottle(false);
    this.maybeFireExit();
  }

  /** Signals the process group (the child leads it: forkpty and detached spawn both setsid). */
  protected sendGroup(sig: NodeJS.Signals): void {
    try {
      process.kill(-this.pid, sig);
    } catch {
      // the child left its group; once reaped its pid may belong to someone else
      if (!this.exited) try { process.kill(this.pid, sig); } catch { /* already gone */ }
    }
  }

  protected deliver(err: boolean, d: Buffer): void {
    if (!this.paused && this.queue.length === 0) return this.emitData(err, d);
    this.queue.push({ err, d });
    this.queued += d.length;
    if (this.queued > OUTPUT_HIGH_WATER && !this.throttled) this.setThrottle(true);
  }

  private emitData(err: boolean, d: Buffer): void {
    for (const cb of err ? this.err : this.out) cb(d);
  }

  /** Called by the subclass once the process exited and its output streams are finished. */
  protected finish(code: number | null, signal: string | null): void {
    if (this.exit) return;
    this.exit = { code: signal ? null : code, signal };
    clearTimeout(this.graceTimer);
    this.maybeFireExit();
  }

  private maybeFireExit(): void {
    if (!this.exit || this.exitFired || this.queue.length > 0) return;
    this.exitFired = true;
    for (const cb of this.exitCbs) cb(this.exit.code, this.exit.signal);
  }
}

class PtyProcess extends Base {
  readonly pid: number;
  private readonly term: pty.IPty;

  constructor(file: string, args: string[], opts: { cwd: string; env: Record<string, string>; term: string; cols: number; rows: number }) {
    super();
    try {
      this.term = pty.spawn(file, args, {
        name: opts.term, cols: clamp(opts.cols), rows: clamp(opts.rows), cwd: opts.cwd, env: opts.env,
        encoding: null, // raw bytes: no UTF-8 decoding of the terminal stream
      });
    } catch (e) {
      throw new WicketError('WICKET_ERR_INTERNAL', `cannot start a pty for ${file}: ${(e as Error).message}`);
    }
    this.pid = this.term.pid;
    // With encoding null node-pty hands out Buffers (its typings say string).
    this.term.onData((d) => this.deliver(false, d as unknown as Buffer));
    drainBeforeClose(this.term, (d) => this.deliver(false, d));
    // node-pty 1.x emits exit after the pty socket closed (or 200 ms); one more turn lets
    // any data event already queued behind it run first.
    this.term.onExit(({ exitCode, signal }) => {
      this.exited = true;
      setImmediate(() => this.finish(exitCode, signalName(signal)));
    });
  }

  write(d: Buffer): boolean {
    if (!this.exited) this.term.write(d);
    return true;
  }
  onDrain(): void { /* write() never asks to wait */ }
  endInput(): void { /* a pty has no EOF of its own; ^D is the user's to type */ }
  resize(cols: number, rows: number): void {
    if (this.exited) return;
    try { this.term.resize(clamp(cols), clamp(rows)); } catch { /* the pty closed meanwhile */ }
  }
  protected setThrottle(on: boolean): void {
    this.throttled = on;
    if (on) this.term.pause();
    else this.term.resume();
  }
  protected hangUp(group: boolean): void {
    if (group) this.sendGroup('SIGHUP');
  }
}

class PipeProcess extends Base {
  readonly pid: number;
  private readonly child: ChildProcess;
  private inputEnded = false;
  private drainTimer: NodeJS.Timeout | undefined;

  constructor(file: string, args: string[], opts: { cwd: string; env: Record<string, string> }) {
    super();
    // detached: the child calls setsid() and leads its own process group, which kill() ends.
    this.child = spawnChild(file, args, { cwd: opts.cwd, env: opts.env, stdio: 'pipe', detached: true });
    this.child.on('error', () => { /* a failed start is reported below; later errors (kill) are moot */ });
    if (this.child.pid === undefined) {
      this.child.stdin?.destroy(); this.child.stdout?.destroy(); this.child.stderr?.destroy();
      throw new WicketError('WICKET_ERR_INTERNAL', `cannot start ${file}`);
    }
    this.pid = this.child.pid;
    const { stdin, stdout, stderr } = this.child;
    stdin!.on('error', () => { this.inputEnded = true; }); // EPIPE: the child stopped reading
    stdout!.on('error', () => {});
    stderr!.on('error', () => {});
    stdout!.on('data', (d: Buffer) => this.deliver(false, d));
    stderr!.on('data', (d: Buffer) => this.deliver(true, d));
    this.child.on('exit', () => {
      this.exited = true;
      this.armDrain();
    });
    // 'close' follows exit once stdout and stderr are closed: all output was read.
    this.child.on('close', (code: number | null, signal: NodeJS.Signals | null) => {
      clearTimeout(this.drainTimer);
      this.finish(code, signalName(signal));
    });
  }

  private armDrain(): void {
    clearTimeout(this.drainTimer);
    if (!this.exited || this.throttled) return;
    this.drainTimer = setTimeout(() => {
      this.child.stdout?.destroy();
      this.child.stderr?.destroy();
    }, EXIT_DRAIN_MS);
  }

  write(d: Buffer): boolean {
    if (this.inputEnded || this.exited || d.length === 0) return true;
    return this.child.stdin!.write(Buffer.from(d));
  }
  onDrain(cb: () => void): void { this.child.stdin!.on('drain', cb); }
  endInput(): void {
    if (this.inputEnded) return;
    this.inputEnded = true;
    this.child.stdin!.end();
  }
  resize(): void { /* no pty */ }
  protected setThrottle(on: boolean): void {
    this.throttled = on;
    for (const s of [this.child.stdout!, this.child.stderr!]) {
      if (on) s.pause();
      else s.resume();
    }
    this.armDrain();
  }
  protected hangUp(group: boolean): void {
    this.inputEnded = true;
    this.child.stdin!.destroy();
    if (group) this.sendGroup('SIGHUP');
  }
}

/** Starts the process for a shell target; throws WicketError when it cannot. */
export function spawnLocal(spec: ShellSpawn): LocalProcess {
  if (process.platform === 'win32') throw new WicketError('WICKET_ERR_CONFIG', 'shell targets need a POSIX host');
  const account = lookupAccount(spec.user);
  let argv = [...closeFdsPrefix(), ...buildArgv(spec)];
  if (account.uid !== process.getuid!()) {
    if (process.geteuid!() !== 0) {
      throw new WicketError('WICKET_ERR_CONFIG', `shell target runs as ${account.name} but wicket is not root`);
    }
    argv = [...dropPrefix(account), ...argv]; // setpriv, then the closer as the account, then the program
  }
  let cwd = isDirectory(account.home) ? account.home : '/';
  if (spec.cwd !== undefined) {
    if (!isDirectory(spec.cwd)) throw new WicketError('WICKET_ERR_CONFIG', `shell target cwd ${spec.cwd} is not a directory`);
    cwd = spec.cwd;
  }
  const env = buildEnv(account, spec);
  const [file, ...args] = argv as [string, ...string[]];
  if (spec.pty && spec.subsystem !== 'sftp') {
    return new PtyProcess(file, args, { cwd, env, term: env.TERM!, cols: spec.pty.cols, rows: spec.pty.rows });
  }
  return new PipeProcess(file, args, { cwd, env });
}
