/**
 * A private OpenSSH server on 127.0.0.1 for benchmarks and integration tests
 * (test/support/sshd.ts re-exports this: tsconfig compiles bench/ but not
 * test/, and `npm run bench` runs from dist/).
 *
 * Everything lives in one temp dir: host key, an authorized client key,
 * sshd_config, pid file. sshd runs in the foreground (`-D -e`, log on
 * stderr) as a child of this process and logs in as root with that key.
 *
 * Why root: sshd needs it for privilege separation and to switch to the
 * account it logs in; it also wants /run/sshd (its chroot for the pre-auth
 * child) to exist, root-owned and not writable by others.
 */
import { execFile, execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from '../../src/util/free-port.js';
import { startTime, withParentDeathSignal } from './daemon.js';

const execFileP = promisify(execFile);

const SSHD_PATHS = ['/usr/sbin/sshd', '/usr/local/sbin/sshd'];
const PRIVSEP_DIR = '/run/sshd';
const LOOPBACK = '127.0.0.1';

export interface Sshd {
  readonly port: number;
  /** The temp dir holding keys, config and pid file; removed by stop(). Tests may put files here. */
  readonly dir: string;
  /** The account the client key logs in as. */
  readonly user: string;
  /** The server's host key as `ssh-ed25519 AAAA...` (no comment): a wicket target's `host_key`. */
  readonly hostKeyLine: string;
  /** Private key (OpenSSH format, ed25519) authorized on this server: a wicket target's `private_key: file:...`. */
  readonly clientKeyPath: string;
  /** `ssh-ed25519 AAAA... comment` of clientKeyPath. */
  readonly clientKeyPub: string;
  /** sshd's process id (the listener; each connection gets a child of it). */
  readonly pid: number;
  /** The last few KiB sshd logged (for error messages). */
  log(): string;
  /** Ends sshd and every process under it (open sessions included), then removes `dir`. Idempotent. */
  stop(): Promise<void>;
}

export interface SshdOptions {
  /** `AllowTcpForwarding yes` (ssh -L/-R/-W); default no. */
  readonly allowTcpForwarding?: boolean;
  /**
   * More sshd_config lines. Lines before the first `Match` are placed ahead
   * of the defaults (sshd keeps the first value it reads for a keyword, so
   * they override); a `Match` block and what follows go at the end.
   */
  readonly extraConfig?: readonly string[];
  /** How to start the sshd child (bench passes procs.spawnTracked so Ctrl-C ends it); default child_process.spawn. */
  readonly spawn?: (cmd: string, args: readonly string[], opts: SpawnOptions) => ChildProcess;
}

/** Thrown when this machine cannot run a private sshd; tests turn it into a skip. */
export class SshdUnavailable extends Error {
  override readonly name = 'SshdUnavailable';
}

export function sshdPath(): string | undefined {
  return SSHD_PATHS.find((p) => existsSync(p));
}

/** Why a private sshd cannot run here, or null when it can. */
export function sshdUnavailable(): string | null {
  if (process.platform !== 'linux') return `sshd support is Linux-only (this is ${process.platform})`;
  if (process.getuid?.() !== 0) return 'not running as root: sshd needs root for privilege separation and to log in as root';
  if (!sshdPath()) return `OpenSSH server not installed (no ${SSHD_PATHS.join(' or ')}; apt-get install openssh-server)`;
  for (const tool of ['ssh-keygen', 'ssh']) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    } catch {
      return `${tool} not installed (apt-get install openssh-client)`;
    }
  }
  return null;
}

/**
 * Makes an ed25519 keypair without a passphrase at `dir/name` (+ `.pub`), for
 * a person's key in tests. `pub` is the `ssh-ed25519 AAAA... comment` line.
 */
export function sshClientKey(dir: string, name = 'id_ed25519'): { path: string; pub: string } {
  const path = join(dir, name);
  rmSync(path, { force: true });
  rmSync(`${path}.pub`, { force: true });
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `wicket-test-${name}`, '-f', path], { stdio: ['ignore', 'ignore', 'pipe'] });
  return { path, pub: readFileSync(`${path}.pub`, 'utf8').trim() };
}

/**
 * Client flags shared by ssh, scp and sftp: no config files, no known_hosts,
 * quiet, and the port as `-o Port=` (ssh spells it -p, scp and sftp -P).
 * With `keyPath`: that key only, publickey only, never prompt (BatchMode).
 * Without: password / keyboard-interactive only, so a test can type one.
 * `extra` goes last (before the destination, which the caller adds).
 */
export function sshArgs(opts: { port: number; keyPath?: string; extra?: readonly string[] }): string[] {
  const o = (kv: string): string[] => ['-o', kv];
  const args = [
    '-F', '/dev/null',
    ...o(`Port=${opts.port}`),
    ...o('StrictHostKeyChecking=no'),
    ...o('UserKnownHostsFile=/dev/null'),
    ...o('GlobalKnownHostsFile=/dev/null'),
    ...o('LogLevel=ERROR'),
    ...o('ConnectTimeout=10'),
    ...o('IdentityAgent=none'),
  ];
  if (opts.keyPath !== undefined) {
    args.push('-i', opts.keyPath, ...o('IdentitiesOnly=yes'), ...o('BatchMode=yes'), ...o('PreferredAuthentications=publickey'));
  } else {
    args.push(...o('PubkeyAuthentication=no'), ...o('PreferredAuthentications=password,keyboard-interactive'), ...o('NumberOfPasswordPrompts=1'));
  }
  return [...args, ...(opts.extra ?? [])];
}

function keyPair(path: string, comment: string): Promise<unknown> {
  return execFileP('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', path]);
}

/**
 * Lines that only some sshd versions know; writeCheckedConfig drops the ones
 * `sshd -t` rejects.
 */
const OPTIONAL_LINES = [
  // OpenSSH >= 9.8 refuses a source address for a while after failed or idle
  // connections; tests make both on purpose.
  'PerSourcePenalties no',
  // bash sources ~/.bashrc for `ssh host cmd` when it is a top-level shell
  // (SHLVL unset or 0 in its environment); root's rc may be slow (pyenv, nvm...) or
  // print things. Exec requests then measure the relay, not the rc file.
  // Interactive login shells still read their profile. OpenSSH >= 8.7.
  'SetEnv SHLVL=1',
] as const;

function configText(o: { port: number; dir: string; forwarding: boolean; optional: readonly string[]; extra: readonly string[] }): string {
  const firstMatch = o.extra.findIndex((l) => /^\s*Match\s/i.test(l));
  const head = firstMatch < 0 ? o.extra : o.extra.slice(0, firstMatch);
  const tail = firstMatch < 0 ? [] : o.extra.slice(firstMatch);
  return [
    ...head,
    `ListenAddress ${LOOPBACK}:${o.port}`,
    `HostKey ${join(o.dir, 'host_ed25519')}`,
    `PidFile ${join(o.dir, 'sshd.pid')}`,
    `AuthorizedKeysFile ${join(o.dir, 'authorized_keys')}`,
    'PermitRootLogin prohibit-password',
    'PubkeyAuthentication yes',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'UsePAM no',
    'StrictModes no',
    'UseDNS no',
    'Subsystem sftp internal-sftp',
    `AllowTcpForwarding ${o.forwarding ? 'yes' : 'no'}`,
    'AllowStreamLocalForwarding no',
    'AllowAgentForwarding no',
    'PermitTunnel no',
    'X11Forwarding no',
    'PrintMotd no',
    'PrintLastLog no',
    'AcceptEnv LANG LC_* TERM',
    'LoginGraceTime 30',
    // Parallel tests and the login benchmark open many connections at once.
    'MaxStartups 100:30:200',
    'MaxSessions 64',
    ...o.optional,
    ...tail,
    '',
  ].join('\n');
}

/** Checks the config with `sshd -t` and gives a clear error; drops OPTIONAL_LINES this sshd does not know. */
async function writeCheckedConfig(sshd: string, file: string, o: Omit<Parameters<typeof configText>[0], 'optional'>): Promise<void> {
  let optional: string[] = [...OPTIONAL_LINES];
  for (;;) {
    writeFileSync(file, configText({ ...o, optional }));
    try {
      await execFileP(sshd, ['-t', '-f', file]);
      return;
    } catch (err) {
      const text = String((err as { stderr?: string }).stderr || (err as Error).message).trim();
      const unknown = optional.find((l) => text.includes(l.split(' ')[0]!));
      if (unknown !== undefined) {
        optional = optional.filter((l) => l !== unknown);
        continue;
      }
      throw new Error(`sshd rejected its config (${file}): ${text}\n--- config ---\n${readFileSync(file, 'utf8')}`);
    }
  }
}

/** Resolves once 127.0.0.1:port answers with an SSH-2.0 identification line (not merely accepts TCP). */
async function waitForBanner(port: number, timeoutMs: number, alive: () => boolean): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const banner = await new Promise<string | null>((resolve) => {
      const s = net.connect(port, LOOPBACK);
      let got = '';
      const done = (v: string | null): void => { s.destroy(); resolve(v); };
      s.setTimeout(2000, () => done(null));
      s.on('data', (d: Buffer) => {
        got += d.toString('latin1');
        if (got.includes('\n')) done(got.slice(0, got.indexOf('\n')).trim());
      });
      s.once('error', () => done(null));
      s.once('end', () => done(null));
    });
    if (banner?.startsWith('SSH-2.0-')) return;
    if (!alive()) throw new Error('sshd exited before it answered');
    if (Date.now() > deadline) throw new Error(`sshd did not answer on ${LOOPBACK}:${port} within ${timeoutMs} ms${banner ? ` (got ${JSON.stringify(banner)})` : ''}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

// ------------------------------------------------------------ process tree

/** Every process below `pid` (per-connection sshd, shells, commands), deepest last. */
function descendants(pid: number): Array<{ pid: number; start: string }> {
  const out: Array<{ pid: number; start: string }> = [];
  const walk = (p: number): void => {
    let tasks: string[] = [];
    try { tasks = readdirSync(`/proc/${p}/task`); } catch { return; }
    for (const t of tasks) {
      let kids: number[] = [];
      try {
        kids = readFileSync(`/proc/${p}/task/${t}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
      } catch { /* gone */ }
      for (const k of kids) {
        const start = startTime(k);
        if (start === null) continue;
        out.push({ pid: k, start });
        walk(k);
      }
    }
  };
  walk(pid);
  return out;
}

function signalIfSame(p: { pid: number; start: string }, sig: NodeJS.Signals): boolean {
  if (startTime(p.pid) !== p.start) return false;
  try {
    process.kill(p.pid, sig);
    return true;
  } catch {
    return false;
  }
}

/** sshd listeners still running, ended with SIGKILL if this process exits without stop(). */
const running = new Set<ChildProcess>();
let exitHook = false;

// ------------------------------------------------------------ the server

/** Starts a private sshd; rejects with SshdUnavailable when the machine cannot run one. */
export async function startSshd(opts: SshdOptions = {}): Promise<Sshd> {
  const why = sshdUnavailable();
  if (why) throw new SshdUnavailable(`cannot start a private sshd: ${why}`);
  const sshd = sshdPath()!;
  if (!existsSync(PRIVSEP_DIR)) mkdirSync(PRIVSEP_DIR, { recursive: true, mode: 0o755 });
  const dir = mkdtempSync(join(tmpdir(), 'wicket-sshd-'));
  try {
    const hostKey = join(dir, 'host_ed25519');
    const clientKeyPath = join(dir, 'client_ed25519');
    await Promise.all([keyPair(hostKey, ''), keyPair(clientKeyPath, 'wicket-upstream')]);
    const hostKeyLine = readFileSync(`${hostKey}.pub`, 'utf8').trim().split(/\s+/).slice(0, 2).join(' ');
    const clientKeyPub = readFileSync(`${clientKeyPath}.pub`, 'utf8').trim();
    writeFileSync(join(dir, 'authorized_keys'), `${clientKeyPub}\n`, { mode: 0o600 });
    const config = join(dir, 'sshd_config');
    const start = opts.spawn ?? ((cmd, args, o) => spawn(cmd, [...args], o));

    // A free port can be taken by someone else before sshd binds it: try a few.
    let lastError: Error | undefined;
    for (let attempt = 0; attempt < 3; attempt++) {
      const port = await freePort();
      await writeCheckedConfig(sshd, config, { port, dir, forwarding: opts.allowTcpForwarding ?? false, extra: opts.extraConfig ?? [] });
      // setpriv execs sshd in place: child.pid is sshd's, and sshd sees its absolute path as argv[0] (it re-execs itself).
      const [cmd, ...args] = [...withParentDeathSignal('TERM'), sshd, '-D', '-e', '-f', config];
      const child = start(cmd!, args, { stdio: ['ignore', 'ignore', 'pipe'] });
      let log = '';
      // Always drain stderr: sshd logs every connection and would block on a full pipe.
      child.stderr?.on('data', (d: Buffer) => { log = (log + d.toString('utf8')).slice(-16_000); });
      let failed = false;
      const exited = new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.once('error', (err) => { failed = true; log += `\nspawn ${sshd}: ${err.message}`; resolve(); });
      });
      const alive = (): boolean => !failed && child.exitCode === null && child.signalCode === null;
      try {
        await waitForBanner(port, 10_000, alive);
      } catch (err) {
        child.kill('SIGKILL');
        await exited;
        lastError = new Error(`sshd did not start: ${(err as Error).message}\n${log.trim()}`);
        if (/Address already in use|Cannot bind any address/i.test(log)) continue;
        throw lastError;
      }
      running.add(child);
      child.once('exit', () => running.delete(child));
      if (!exitHook) {
        exitHook = true;
        process.once('exit', () => { for (const c of running) c.kill('SIGKILL'); });
      }

      let stopping: Promise<void> | null = null;
      const stop = (): Promise<void> =>
        (stopping ??= (async () => {
          // Sessions outlive a listener killed alone (each connection is its own
          // session leader): end the whole tree, gently then firmly.
          const tree = child.pid !== undefined ? descendants(child.pid) : [];
          child.kill('SIGTERM');
          for (const p of tree) signalIfSame(p, 'SIGTERM');
          const t = setTimeout(() => child.kill('SIGKILL'), 3000);
          await exited;
          clearTimeout(t);
          for (let i = 0; i < 40 && tree.some((p) => startTime(p.pid) === p.start); i++) await new Promise((r) => setTimeout(r, 25));
          for (const p of tree) signalIfSame(p, 'SIGKILL');
          rmSync(dir, { recursive: true, force: true });
        })());
      return { port, dir, user: 'root', hostKeyLine, clientKeyPath, clientKeyPub, pid: child.pid!, log: () => log, stop };
    }
    throw lastError ?? new Error('sshd did not start');
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}
