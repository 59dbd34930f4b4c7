/**
 * Shared pieces of the MySQL integration tests: a broker started in-process
 * on a temp config with a mysql listener, the real `mariadb` client run
 * asynchronously (the broker lives in this process), `mysql2` connections
 * through wicket, and a throwaway database on the machine's MariaDB.
 */
import { execFile, spawn } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import mysql from 'mysql2/promise';
import { startWicket, type Running } from '../../src/runtime.js';
import { makePasswordCredential } from '../../src/auth/password.js';
import { tmpDir } from './cli.js';
import { auditEvents } from './wicket-pg.js';

const run = promisify(execFile);

export interface MyBroker {
  readonly running: Running;
  readonly dir: string;
  readonly host: string;
  readonly port: number;
  readonly logs: string[];
  stop(): Promise<void>;
}

export async function startMysqlBroker(yaml: string, passwords: Record<string, string>): Promise<MyBroker> {
  const dir = tmpDir('wicket-my-');
  const cfg = join(dir, 'wicket.yaml');
  writeFileSync(cfg, yaml);
  const logs: string[] = [];
  const running = await startWicket(cfg, { log: (l) => logs.push(l), pollMs: 100 });
  for (const [user, pw] of Object.entries(passwords)) {
    await running.store.upsertUser(user, await makePasswordCredential(pw, Buffer.from(`salt-${user}`).toString('base64')), false, Date.now());
  }
  const addr = running.addresses.mysql!;
  const i = addr.lastIndexOf(':');
  return {
    running, dir, host: addr.slice(0, i), port: Number(addr.slice(i + 1)), logs,
    stop: async () => {
      await running.stop('test over');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A throwaway database on the machine's MariaDB (127.0.0.1:3306, root without a password). */
export async function machineMysqlDb(prefix: string): Promise<{ name: string; sql(q: string): Promise<string>; drop(): Promise<void> }> {
  const name = `${prefix}_${process.pid}_${Date.now().toString(36)}`;
  const admin = async (q: string, db?: string): Promise<string> =>
    (await run('mariadb', ['-h', '127.0.0.1', '-P', '3306', '-u', 'root', '-N', '-B', ...(db ? [db] : []), '-e', q])).stdout.trim();
  await admin(`CREATE DATABASE \`${name}\``);
  return { name, sql: (q) => admin(q, name), drop: async () => void (await admin(`DROP DATABASE IF EXISTS \`${name}\``).catch(() => undefined)) };
}

export interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** The `mariadb` command-line client through wicket, with --ssl, the password on stdin-free env (MYSQL_PWD). */
export function mariadbCli(b: MyBroker, o: { user: string; password: string; database?: string; ssl?: boolean }, args: string[], input?: string): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('mariadb', [
      '-h', b.host, '-P', String(b.port), '-u', o.user, ...(o.ssl === false ? ['--skip-ssl'] : ['--ssl']),
      '--connect-timeout=10', ...(o.database ? [o.database] : []), ...args,
    ], { env: { ...process.env, MYSQL_PWD: o.password }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(input ?? '');
  });
}

export function mysql2Connect(b: MyBroker, o: { user: string; password: string; database?: string; multipleStatements?: boolean; ssl?: boolean }): Promise<mysql.Connection> {
  return mysql.createConnection({
    host: b.host, port: b.port, user: o.user, password: o.password, database: o.database,
    ssl: o.ssl === false ? undefined : { rejectUnauthorized: false }, multipleStatements: o.multipleStatements ?? false, connectTimeout: 10_000,
  });
}

export const auditOf = auditEvents;
