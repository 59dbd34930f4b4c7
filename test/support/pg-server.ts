/**
 * A private, throwaway PostgreSQL instance for integration tests.
 *
 * initdb and postgres refuse to run as root, so when the tests run as root
 * every server-side binary runs as the `postgres` OS user (runuser) and the
 * temp dir is chowned to it. Startup is kept fast: initdb --no-sync,
 * fsync=off, tiny shared_buffers, one initdb per process. The superuser `postgres` reaches the server
 * over the unix socket in the temp dir with trust; TCP on 127.0.0.1 uses the
 * requested auth method.
 */
import { execFile } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync, readdirSync, readFileSync, existsSync, writeFileSync, rmSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
export { freePort } from '../../src/util/free-port.js';
import { freePort } from '../../src/util/free-port.js';

const run = promisify(execFile);

export type PgAuth = 'trust' | 'md5' | 'scram-sha-256' | 'password';

export interface PgServerOptions {
  readonly auth: PgAuth;
  /** Turn TLS on (self-signed cert for IP:127.0.0.1 / DNS:localhost); plain TCP still allowed. */
  readonly ssl?: boolean;
  /** TLS on and TCP clients must use it (pg_hba `hostssl` only). */
  readonly sslOnly?: boolean;
  readonly logStatements?: boolean;
  readonly users?: ReadonlyArray<{ readonly name: string; readonly password: string }>;
}

export interface PgServer {
  readonly port: number;
  readonly host: '127.0.0.1';
  readonly dataDir: string;
  readonly logFile: string;
  /** The server certificate (PEM) when TLS is on: the CA to trust for tls: verify. */
  readonly certPem: string | undefined;
  stop(): Promise<void>;
  /** Runs SQL via psql as the superuser over the unix socket; unaligned, tuples only. */
  sql(query: string): Promise<string>;
}

/** The newest installed PostgreSQL's bin dir, e.g. /usr/lib/postgresql/15/bin. */
export function pgBinDir(): string {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root)
    ? readdirSync(root).filter((v) => existsSync(join(root, v, 'bin', 'initdb'))).sort((a, b) => Number(b) - Number(a))
    : [];
  if (versions.length === 0) throw new Error(`no PostgreSQL server binaries under ${root}`);
  return join(root, versions[0]!, 'bin');
}


/** Self-signed cert + key (EC P-256) valid for 127.0.0.1 and localhost; returns the cert PEM. */
export async function makeSelfSignedCert(certFile: string, keyFile: string, cn = '127.0.0.1'): Promise<string> {
  await run('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', keyFile, '-out', certFile, '-days', '2', '-subj', `/CN=${cn}`,
    '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
  ]);
  return readFileSync(certFile, 'utf8');
}

const asRoot = process.getuid?.() === 0;
const quoteLiteral = (s: string): string => `'${s.replace(/'/g, "''")}'`;
const quoteIdent = (s: string): string => `"${s.replace(/"/g, '""')}"`;

/**
 * initdb is the slow part (~1.5 s), so it runs once into a template data dir
 * that each server copies (cp -a keeps the postgres ownership). The template
 * lives while any server does; the last stop() removes it.
 */
let template: { dir: string; data: Promise<string> } | undefined;
let live = 0;
function templateDataDir(pg: (tool: string, args: string[]) => Promise<unknown>, own: (path: string) => void): Promise<string> {
  if (!template) {
    const dir = mkdtempSync(join(tmpdir(), 'wicket-pg-template-'));
    own(dir);
    const data = join(dir, 'data');
    template = { dir, data: pg('initdb', ['-D', data, '--no-sync', '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--locale=C']).then(() => data) };
  }
  return template.data;
}
function release(): void {
  if (--live > 0 || !template) return;
  const { dir, data } = template;
  template = undefined;
  void data.finally(() => rmSync(dir, { recursive: true, force: true })).catch(() => undefined);
}

async function osUser(name: string): Promise<{ uid: number; gid: number }> {
  const [uid, gid] = await Promise.all([run('id', ['-u', name]), run('id', ['-g', name])]);
  return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

export async function startPgServer(opts: PgServerOptions): Promise<PgServer> {
  const bin = pgBinDir();
  const dir = mkdtempSync(join(tmpdir(), 'wicket-pg-'));
  const dataDir = join(dir, 'data');
  const logFile = join(dir, 'postgres.log');
  const owner = asRoot ? await osUser('postgres') : undefined;
  // Server-side binaries run as `postgres` when we are root.
  const pg = (tool: string, args: string[]) =>
    asRoot ? run('runuser', ['-u', 'postgres', '--', join(bin, tool), ...args]) : run(join(bin, tool), args);
  const own = (path: string): void => { if (owner) chownSync(path, owner.uid, owner.gid); };
  own(dir);
  const port = await freePort();
  let started = false;
  let stopped = false;
  live++;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    if (started) await pg('pg_ctl', ['stop', '-D', dataDir, '-m', 'immediate', '-w']).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
    release();
  };
  try {
    await run('cp', ['-a', await templateDataDir(pg, own), dataDir]);
    const ssl = opts.ssl === true || opts.sslOnly === true;
    let certPem: string | undefined;
    if (ssl) {
      certPem = await makeSelfSignedCert(join(dataDir, 'server.crt'), join(dataDir, 'server.key'));
      own(join(dataDir, 'server.crt'));
      own(join(dataDir, 'server.key'));
      chmodSync(join(dataDir, 'server.key'), 0o600); // postgres refuses a group/world-readable key
    }
    appendFileSync(join(dataDir, 'postgresql.conf'), [
      '',
      `listen_addresses = '127.0.0.1'`,
      `port = ${port}`,
      `unix_socket_directories = ${quoteLiteral(dir)}`,
      'fsync = off', 'synchronous_commit = off', 'full_page_writes = off',
      'shared_buffers = 16MB', 'max_connections = 30', 'logging_collector = off',
      `password_encryption = ${opts.auth === 'md5' ? 'md5' : 'scram-sha-256'}`,
      `ssl = ${ssl ? 'on' : 'off'}`,
      ...(ssl ? [`ssl_cert_file = 'server.crt'`, `ssl_key_file = 'server.key'`] : []),
      ...(opts.logStatements ? [`log_statement = 'all'`] : []),
      '',
    ].join('\n'));
    writeFileSync(join(dataDir, 'pg_hba.conf'), [
      'local all all trust',
      `${opts.sslOnly ? 'hostssl' : 'host'} all all 127.0.0.1/32 ${opts.auth}`,
      '',
    ].join('\n'));
    own(join(dataDir, 'pg_hba.conf'));
    writeFileSync(logFile, '');
    own(logFile);
    await pg('pg_ctl', ['start', '-D', dataDir, '-l', logFile, '-w', '-t', '60']);
    started = true;
    // pg_ctl -w already waits; this also proves the TCP listener is up.
    for (let i = 0; ; i++) {
      const ok = await run(join(bin, 'pg_isready'), ['-h', '127.0.0.1', '-p', String(port), '-t', '2']).then(() => true, () => false);
      if (ok) break;
      if (i >= 50) throw new Error(`postgres on port ${port} did not become ready; see ${logFile}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const sql = async (query: string): Promise<string> => {
      const { stdout } = await run('psql', ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1',
        '-h', dir, '-p', String(port), '-U', 'postgres', '-d', 'postgres', '-c', query]);
      return stdout.trim();
    };
    for (const u of opts.users ?? []) {
      await sql(`CREATE ROLE ${quoteIdent(u.name)} LOGIN PASSWORD ${quoteLiteral(u.password)}`);
    }
    return { port, host: '127.0.0.1', dataDir, logFile, certPem, stop, sql };
  } catch (e) {
    const log = existsSync(logFile) ? readFileSync(logFile, 'utf8').slice(-2000) : '';
    await stop();
    throw new Error(`could not start a test PostgreSQL server: ${(e as Error).message}\n${log}`);
  }
}
