/**
 * A private, throwaway MariaDB server on 127.0.0.1 for integration tests.
 *
 *   const reason = mariadbUnavailable({ tls: true });   // non-null: skip the suite
 *   const db = await startPrivateMariaDb({ tls: true, generalLog: true });
 *   await db.sql(`CREATE USER app@'%' IDENTIFIED BY 'pw'; GRANT ALL ON *.* TO app@'%'`);
 *   ... connect to db.host:db.port (TLS: trust db.caPem) ...
 *   await db.stop();
 *
 * Everything lives in one temp dir: data dir, unix socket, pid file, error
 * log, general log, TLS files. Nothing reads /etc/mysql/my.cnf or ~/.my.cnf
 * (every server and client command starts with --no-defaults) and the client
 * environment is scrubbed of MYSQL_* / MARIADB_* variables, so the shared
 * server on 127.0.0.1:3306 is never touched.
 *
 * mariadb-install-db (~2 s) runs once per process into a template data dir
 * that each server copies; the last stop() removes it. root@localhost has an
 * empty password (`--auth-root-authentication-method=normal`), which sql()
 * uses over the unix socket.
 *
 * As root, mariadbd runs with `--user=root`: it then keeps its credentials
 * (no setuid), so the temp dir needs no chown and the parent-death signal
 * below survives. mariadbd runs under `setpriv --pdeathsig KILL` (when
 * util-linux has it): the kernel kills it when this process dies, also when
 * it dies without running exit handlers (vitest ends its workers with
 * SIGTERM); a normal exit without stop() kills it from an exit handler. Temp
 * dirs left behind that way are removed by the next start in any process.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { generate } from 'selfsigned';
import { freePort } from '../../src/util/free-port.js';
import { startTime, withParentDeathSignal } from '../../bench/support/daemon.js';

const execFileP = promisify(execFile);
const LOOPBACK = '127.0.0.1';
const START_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 30_000;
const SQL_TIMEOUT_MS = 60_000;

export interface PrivateMariaDb {
  readonly port: number;
  readonly host: '127.0.0.1';
  /** The temp dir holding everything (data/, socket, logs, TLS files); removed by stop(). */
  readonly dir: string;
  /** The unix socket (root logs in here without a password). */
  readonly socket: string;
  /** mariadbd's error log (startup, shutdown, warnings). */
  readonly errorLog: string;
  /** Path of the general query log (every statement the server received), when enabled. */
  readonly generalLog: string | null;
  /** CA certificate PEM that signed the server certificate (SAN 127.0.0.1, localhost, ::1), when tls is on. */
  readonly caPem: string | null;
  /** mariadbd's process id. */
  readonly pid: number;
  /**
   * Runs SQL (one or more `;`-separated statements) as root over the unix
   * socket with the mariadb client; returns its stdout: result rows
   * tab-separated, no header line. Rejects with the client's error.
   */
  sql(statements: string): Promise<string>;
  /** Shuts the server down (SIGTERM, waits for it to exit) and removes `dir`. Idempotent. */
  stop(): Promise<void>;
}

export interface MariaDbOptions {
  /** TLS on (CA + server cert made here; see caPem). Plain TCP stays allowed unless a user has REQUIRE SSL. */
  readonly tls?: boolean;
  /** `--general-log=1` into `<dir>/general.log` (see generalLog). */
  readonly generalLog?: boolean;
  /** Load the ed25519 authentication plugin (`IDENTIFIED VIA ed25519`). */
  readonly ed25519?: boolean;
  /** More mariadbd options, appended last (they win over the defaults here). */
  readonly serverArgs?: readonly string[];
}

/** Thrown by startPrivateMariaDb when this machine cannot run a private MariaDB; tests turn it into a skip. */
export class MariaDbUnavailable extends Error {
  override readonly name = 'MariaDbUnavailable';
}

// ------------------------------------------------------------ binaries

const SEARCH_DIRS = ['/usr/sbin', '/usr/bin', '/usr/local/sbin', '/usr/local/bin', '/usr/libexec', '/usr/local/mysql/bin'];

function findExecutable(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter).filter(Boolean), ...SEARCH_DIRS];
  for (const d of dirs) {
    const p = join(d, name);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch { /* next */ }
  }
  return undefined;
}

interface Binaries { readonly server: string; readonly installDb: string; readonly client: string }
const TOOLS = { server: 'mariadbd', installDb: 'mariadb-install-db', client: 'mariadb' } as const;
const PACKAGES = { server: 'mariadb-server', installDb: 'mariadb-server', client: 'mariadb-client' } as const;

let binaries: Binaries | string | undefined;
/** The binaries, or why they are missing. */
function findBinaries(): Binaries | string {
  if (binaries === undefined) {
    const found: Partial<Record<keyof Binaries, string>> = {};
    binaries = (() => {
      for (const key of Object.keys(TOOLS) as Array<keyof Binaries>) {
        const p = findExecutable(TOOLS[key]);
        if (!p) return `${TOOLS[key]} not found in PATH or ${SEARCH_DIRS.join(', ')} (apt-get install ${PACKAGES[key]})`;
        found[key] = p;
      }
      return found as Binaries;
    })();
  }
  return binaries;
}

let pluginDir: string | null | undefined;
/** The server's compiled-in plugin dir (from `mariadbd --verbose --help`), or null when it cannot say. */
function serverPluginDir(server: string): string | null {
  if (pluginDir === undefined) {
    try {
      const help = execFileSync(server, ['--no-defaults', '--verbose', '--help'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 20_000 });
      pluginDir = /^plugin-dir\s+(\S.*?)\s*$/m.exec(help)?.[1] ?? null;
    } catch {
      pluginDir = null;
    }
  }
  return pluginDir;
}

/** Why a private MariaDB (with these options) cannot run here, or null when it can. */
export function mariadbUnavailable(opts: MariaDbOptions = {}): string | null {
  if (process.platform === 'win32') return 'the private MariaDB helper does not run on Windows';
  const bins = findBinaries();
  if (typeof bins === 'string') return bins;
  if (opts.ed25519) {
    const dir = serverPluginDir(bins.server);
    if (dir !== null && !existsSync(join(dir, 'auth_ed25519.so'))) return `the ed25519 auth plugin is not installed (no ${join(dir, 'auth_ed25519.so')})`;
  }
  return null;
}

// ------------------------------------------------------------ processes

const asRoot = process.getuid?.() === 0;

/** The client and install-db must not pick up a host, port, socket or password from the environment. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^(MYSQL|MARIADB)/i.test(k)) env[k] = v;
  return env;
}

const PREFIX = 'wicket-mariadb-';
const OWNER_FILE = 'owner';

/** A temp dir marked with this process (pid + start time), so a later run can tell it was left behind. */
function ownedTempDir(kind: string): string {
  const dir = mkdtempSync(join(tmpdir(), `${PREFIX}${kind}`));
  writeFileSync(join(dir, OWNER_FILE), `${process.pid} ${startTime(process.pid) ?? ''}\n`);
  return dir;
}

/**
 * vitest ends its fork workers with SIGTERM, which runs no exit handlers:
 * a server a test did not stop() dies by the parent-death signal, but its
 * temp dir stays. The first start in each process removes such dirs whose
 * owner is gone (and kills a mariadbd still running in one, for machines
 * without setpriv).
 */
let swept = false;
function sweepLeftovers(): void {
  if (swept || process.platform !== 'linux') return;
  swept = true;
  let names: string[] = [];
  try { names = readdirSync(tmpdir()).filter((n) => n.startsWith(PREFIX)); } catch { return; }
  for (const name of names) {
    const dir = join(tmpdir(), name);
    let owner: string[];
    try {
      owner = readFileSync(join(dir, OWNER_FILE), 'utf8').trim().split(' ');
    } catch {
      continue; // being created right now, or not made by this helper
    }
    const [pid, start] = owner;
    if (!pid || !start || startTime(Number(pid)) === start) continue; // its owner still runs
    try {
      const server = Number(readFileSync(join(dir, 'mysqld.pid'), 'utf8').trim());
      if (server > 0 && readFileSync(`/proc/${server}/cmdline`, 'utf8').includes(dir)) process.kill(server, 'SIGKILL');
    } catch { /* no pid file, or that server is gone */ }
    try { rmSync(dir, { recursive: true, force: true }); } catch { /* best effort */ }
  }
}

/** Servers still running, killed (and their dirs removed) if this process exits without stop(). */
const running = new Map<ChildProcess, string>();
let exitHook = false;
function onExitKill(): void {
  if (exitHook) return;
  exitHook = true;
  process.once('exit', () => {
    for (const [child, dir] of running) {
      child.kill('SIGKILL');
      try { rmSync(dir, { recursive: true, force: true }); } catch { /* best effort */ }
    }
    if (template) try { rmSync(template.dir, { recursive: true, force: true }); } catch { /* best effort */ }
  });
}

/** Runs the client to completion with `input` on stdin; never rejects. */
function runClient(client: string, args: readonly string[], input: string, timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(client, [...args], { env: cleanEnv(), stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let note = '';
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    const timer = setTimeout(() => {
      note = `\n[mariadb client killed after ${timeoutMs} ms]`;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.once('error', (e) => {
      clearTimeout(timer);
      resolve({ code: null, stdout: '', stderr: `spawn ${client}: ${e.message}` });
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8').trim() + note });
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(input);
  });
}

// ------------------------------------------------------------ configuration

/**
 * Options for both the bootstrap (install-db passes them on) and the server:
 * small and unsynced: a start from the template takes well under a second,
 * and an idle server holds ~60 MB.
 */
const TUNING = [
  '--skip-log-bin',
  '--performance-schema=0',
  '--skip-name-resolve',
  '--innodb-buffer-pool-size=16M',
  '--innodb-log-file-size=8M',
  '--innodb-log-buffer-size=2M',
  '--innodb-flush-log-at-trx-commit=0',
  '--innodb-doublewrite=0',
  // io_uring / libaio may be refused in containers (seccomp); tests need no native AIO.
  '--innodb-use-native-aio=0',
  '--innodb-buffer-pool-load-at-startup=0',
  '--innodb-buffer-pool-dump-at-shutdown=0',
  '--key-buffer-size=1M',
  '--aria-pagecache-buffer-size=8M',
  '--character-set-server=utf8mb4',
  '--collation-server=utf8mb4_general_ci',
  '--max-connections=200',
  '--loose-feedback=OFF',
];

const userArgs = (): string[] => (asRoot ? ['--user=root'] : []);

/**
 * mariadb-install-db runs once per process into a template data dir that
 * each server copies. The template lives while any server does.
 */
let template: { dir: string; data: Promise<string> } | undefined;
let live = 0;
function templateDataDir(bins: Binaries): Promise<string> {
  if (!template) {
    const dir = ownedTempDir('template-');
    const data = join(dir, 'data');
    const log = join(dir, 'install.log');
    const t = {
      dir,
      data: execFileP(bins.installDb, [
        '--no-defaults',
        ...userArgs(),
        `--basedir=${dirname(dirname(bins.installDb))}`,
        `--datadir=${data}`,
        '--auth-root-authentication-method=normal',
        '--skip-test-db',
        `--tmpdir=${dir}`,
        `--log-error=${log}`,
        ...TUNING,
      ], { env: cleanEnv(), timeout: START_TIMEOUT_MS, maxBuffer: 16 * 1024 * 1024 }).then(
        () => data,
        (err: Error & { stdout?: string; stderr?: string }) => {
          const logText = existsSync(log) ? readFileSync(log, 'utf8').slice(-3000) : '';
          if (template === t) template = undefined;
          rmSync(dir, { recursive: true, force: true });
          throw new Error(`mariadb-install-db failed: ${err.message}\n${(err.stdout ?? '').slice(-2000)}${(err.stderr ?? '').slice(-2000)}\n${logText}`);
        },
      ),
    };
    template = t;
    onExitKill();
  }
  return template.data;
}
function release(): void {
  if (--live > 0 || !template) return;
  const { dir, data } = template;
  template = undefined;
  void data.then(() => rmSync(dir, { recursive: true, force: true }), () => undefined);
}

/** A CA and a server certificate it signed (EC P-256, SAN 127.0.0.1 / localhost / ::1), written into `dir`. */
async function writeTlsFiles(dir: string): Promise<{ ca: string; cert: string; key: string; caPem: string }> {
  const notBeforeDate = new Date(Date.now() - 3_600_000);
  const notAfterDate = new Date(Date.now() + 7 * 86_400_000);
  const base = { keyType: 'ec', curve: 'P-256', algorithm: 'sha256', notBeforeDate, notAfterDate } as const;
  const ca = await generate([{ name: 'commonName', value: 'wicket test MariaDB CA' }], {
    ...base,
    extensions: [
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    ],
  });
  const server = await generate([{ name: 'commonName', value: LOOPBACK }], {
    ...base,
    ca: { key: ca.private, cert: ca.cert },
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
      { name: 'extKeyUsage', serverAuth: true },
      { name: 'subjectAltName', altNames: [{ type: 7, ip: LOOPBACK }, { type: 2, value: 'localhost' }, { type: 7, ip: '::1' }] },
    ],
  });
  const files = { ca: join(dir, 'ca.pem'), cert: join(dir, 'server-cert.pem'), key: join(dir, 'server-key.pem') };
  writeFileSync(files.ca, ca.cert);
  writeFileSync(files.cert, server.cert);
  writeFileSync(files.key, server.private, { mode: 0o600 });
  return { ...files, caPem: ca.cert };
}

const tail = (file: string, chars = 4000): string => {
  try {
    return readFileSync(file, 'utf8').slice(-chars).trim();
  } catch {
    return '';
  }
};

const delay = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// ------------------------------------------------------------ the server

/** Starts a private MariaDB; rejects with MariaDbUnavailable when this machine cannot run one. */
export async function startPrivateMariaDb(opts: MariaDbOptions = {}): Promise<PrivateMariaDb> {
  const why = mariadbUnavailable(opts);
  if (why) throw new MariaDbUnavailable(`cannot start a private MariaDB: ${why}`);
  const bins = findBinaries() as Binaries;
  const began = Date.now();
  sweepLeftovers();
  const dir = ownedTempDir('');
  const data = join(dir, 'data');
  const socket = join(dir, 'mysqld.sock');
  const pidFile = join(dir, 'mysqld.pid');
  const errorLog = join(dir, 'error.log');
  const generalLog = opts.generalLog ? join(dir, 'general.log') : null;
  live++;
  let released = false;
  const cleanup = (): void => {
    rmSync(dir, { recursive: true, force: true });
    if (!released) {
      released = true;
      release();
    }
  };
  try {
    // sun_path holds 108 bytes.
    if (Buffer.byteLength(socket) > 100) throw new Error(`temp dir path too long for a unix socket (${socket}); set TMPDIR to a shorter dir`);
    const [templateData, tls] = await Promise.all([templateDataDir(bins), opts.tls ? writeTlsFiles(dir) : Promise.resolve(null)]);
    await cp(templateData, data, { recursive: true });

    const clientArgs = ['--no-defaults', `--socket=${socket}`, '--protocol=SOCKET', '--user=root', '--connect-timeout=10', '--batch', '--skip-column-names'];
    const sql = async (statements: string): Promise<string> => {
      const r = await runClient(bins.client, clientArgs, statements, SQL_TIMEOUT_MS);
      if (r.code !== 0) {
        const shown = statements.length > 500 ? `${statements.slice(0, 500)}...` : statements;
        throw new Error(`mariadb (exit ${r.code}): ${r.stderr || 'no error output'}\n--- statements ---\n${shown}`);
      }
      return r.stdout;
    };

    // A free port can be taken by someone else before mariadbd binds it: try a few.
    let lastError: Error | undefined;
    for (let attempt = 0; attempt < 3; attempt++) {
      const port = await freePort();
      writeFileSync(errorLog, '');
      const args = [
        '--no-defaults',
        ...userArgs(),
        `--datadir=${data}`,
        `--socket=${socket}`,
        `--pid-file=${pidFile}`,
        `--log-error=${errorLog}`,
        `--tmpdir=${dir}`,
        `--port=${port}`,
        `--bind-address=${LOOPBACK}`,
        '--skip-networking=0',
        ...TUNING,
        ...(tls ? [`--ssl-ca=${tls.ca}`, `--ssl-cert=${tls.cert}`, `--ssl-key=${tls.key}`] : []),
        ...(generalLog ? ['--general-log=1', `--general-log-file=${generalLog}`, '--log-output=FILE'] : []),
        ...(opts.ed25519 ? ['--plugin-load-add=auth_ed25519'] : []),
        ...(opts.serverArgs ?? []),
      ];
      // setpriv execs mariadbd in place: child.pid is mariadbd's.
      const [cmd, ...rest] = [...withParentDeathSignal('KILL'), bins.server, ...args];
      const child = spawn(cmd!, rest, { stdio: ['ignore', 'ignore', 'pipe'], env: cleanEnv() });
      let stderr = '';
      child.stderr!.on('data', (d: Buffer) => { stderr = (stderr + d.toString('utf8')).slice(-8000); });
      let spawnError: Error | undefined;
      const exited = new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.once('error', (err) => { spawnError = err; resolve(); });
      });
      const alive = (): boolean => spawnError === undefined && child.exitCode === null && child.signalCode === null;
      running.set(child, dir);
      onExitKill();
      child.once('exit', () => running.delete(child));

      const problem = await (async (): Promise<string | null> => {
        const deadline = began + START_TIMEOUT_MS;
        let last = '';
        for (;;) {
          if (!alive()) return spawnError ? `spawn ${bins.server}: ${spawnError.message}` : `mariadbd exited (${child.exitCode ?? child.signalCode}) before it accepted connections`;
          const r = await runClient(bins.client, clientArgs, 'SELECT 1', 10_000);
          if (r.code === 0 && r.stdout.trim() === '1') return null;
          last = r.stderr;
          if (Date.now() > deadline) return `mariadbd did not accept connections on ${socket} within ${START_TIMEOUT_MS / 1000} s (last client error: ${last})`;
          await delay(100);
        }
      })();

      if (problem === null) {
        let stopping: Promise<void> | null = null;
        const stop = (): Promise<void> =>
          (stopping ??= (async () => {
            if (alive()) {
              child.kill('SIGTERM');
              const t = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
              await exited;
              clearTimeout(t);
            }
            cleanup();
          })());
        return { port, host: LOOPBACK, dir, socket, errorLog, generalLog, caPem: tls?.caPem ?? null, pid: child.pid!, sql, stop };
      }

      child.kill('SIGKILL');
      await exited;
      const log = [tail(errorLog), stderr.trim()].filter(Boolean).join('\n');
      lastError = new Error(`${problem}\n--- mariadbd error log (${errorLog}) ---\n${log || '(empty)'}\n--- command ---\n${[bins.server, ...args].join(' ')}`);
      if (/Address already in use|Bind on TCP\/IP port/i.test(log)) continue;
      break;
    }
    throw lastError ?? new Error('mariadbd did not start');
  } catch (err) {
    cleanup();
    throw new Error(`could not start a private MariaDB: ${(err as Error).message}`, { cause: err });
  }
}
