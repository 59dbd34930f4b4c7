/**
 * A wicket broker running in this process with one Postgres listener on a
 * free port, a user with a password, and helpers to read back what it
 * recorded. Shared by the test/integration/postgres-*.test.ts files.
 */
import { execFile, spawn } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { tmpDir } from './cli.js';
import { startWicket, type Running } from '../../src/runtime.js';
import { makePasswordCredential, newScramSalt } from '../../src/auth/password.js';
import type { AuditEvent, SessionRecord } from '../../src/store/types.js';

export const run = promisify(execFile);

export interface QueryData {
  readonly seq?: number;
  readonly step: string;
  readonly sql: string;
  readonly statement?: string;
  readonly portal?: string;
  readonly params?: { type: number | null; format: string; value: string | null }[];
  readonly rows?: number | null;
  readonly tag?: string;
  readonly bytes?: number;
  readonly durationMs: number | null;
  readonly error?: { code: string; message: string };
}

export interface Broker {
  readonly running: Running;
  readonly dir: string;
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
  /** Env for libpq tools (psql, pgbench): PGHOST/PGPORT/PGPASSWORD, no ~/.psqlrc. */
  readonly env: NodeJS.ProcessEnv;
  /** A `pg` client through wicket (not connected yet). */
  client(target: string, database: string, extra?: pg.ClientConfig): pg.Client;
  /** Query events of one session, in order (after flushing the audit writer). */
  queries(sessionId: string): Promise<QueryData[]>;
  events(sessionId: string): Promise<AuditEvent[]>;
  /** Sessions of `target` started since `since` (ms), oldest first. */
  sessions(target: string, since: number): Promise<SessionRecord[]>;
  /** Waits until every session of `target` since `since` has ended (their events are then complete). */
  ended(target: string, since: number, count?: number): Promise<SessionRecord[]>;
  /** Waits until session `id` has ended and its events are flushed. */
  endedSession(id: string): Promise<void>;
  stop(): Promise<void>;
}

export async function startBroker(opts: { targets: string; env?: NodeJS.ProcessEnv; user?: string; password?: string; rule?: string }): Promise<Broker> {
  const dir = tmpDir('wicket-pg-it-');
  const user = opts.user ?? 'alice';
  const password = opts.password ?? 'alice-Wicket-pw-1';
  const cfg = join(dir, 'wicket.yaml');
  writeFileSync(cfg, `
data_dir: ./data
listen: { postgres: 127.0.0.1:0 }
segments:
  - { name: dev }
targets:
${opts.targets}
roles:
  - { name: dba, allow: [${opts.rule ?? '{ segments: [dev], access: write }'}] }
users:
  - { name: ${user}, roles: [dba] }
`);
  // Secret references (password: env:NAME) are read from this process's environment.
  for (const [k, v] of Object.entries(opts.env ?? {})) process.env[k] = v;
  const logs: string[] = [];
  const running = await startWicket(cfg, { log: (l) => logs.push(l), pollMs: 200 });
  await running.store.upsertUser(user, await makePasswordCredential(password, newScramSalt()), false, Date.now());
  const [host, portText] = running.addresses.postgres!.split(/:(?=\d+$)/);
  const port = Number(portText);
  const env: NodeJS.ProcessEnv = { ...process.env, PGHOST: host, PGPORT: String(port), PGPASSWORD: password, PSQLRC: '/dev/null', PGCONNECT_TIMEOUT: '10' };
  delete env.PGUSER;
  delete env.PGDATABASE;
  delete env.PGSSLMODE;
  const events = async (id: string): Promise<AuditEvent[]> => {
    await running.audit.flush();
    return running.store.sessionEvents(id);
  };
  const sessions = async (target: string, since: number): Promise<SessionRecord[]> =>
    (await running.store.listSessions({})).filter((s) => s.target === target && s.startedAt >= since).sort((a, b) => a.startedAt - b.startedAt);
  return {
    running, dir, host: host!, port, user, password, env,
    client: (target, database, extra = {}) => new pg.Client({ host, port, user: `${user}@${target}`, password, database, ...extra }),
    events,
    queries: async (id) => (await events(id)).filter((e) => e.kind === 'query').map((e) => e.data as unknown as QueryData),
    sessions,
    async ended(target, since, count = 1) {
      for (let i = 0; ; i++) {
        const s = await sessions(target, since);
        if (s.length >= count && s.every((r) => r.endedAt != null)) {
          await running.audit.flush();
          return s;
        }
        if (i > 200) throw new Error(`sessions of ${target} did not end: ${JSON.stringify(s)}\n${logs.join('\n')}`);
        await new Promise((r) => setTimeout(r, 25));
      }
    },
    async endedSession(id) {
      for (let i = 0; ; i++) {
        const s = await running.store.getSession(id);
        if (s?.endedAt != null) {
          await running.audit.flush();
          return;
        }
        if (i > 400) throw new Error(`session ${id} did not end: ${JSON.stringify(s)}\n${logs.join('\n')}`);
        await new Promise((r) => setTimeout(r, 25));
      }
    },
    async stop() {
      await running.stop('test over');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Runs a libpq program to completion; never rejects (exit code in `code`). */
export function runTool(file: string, args: readonly string[], env: NodeJS.ProcessEnv, input = ''): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(file, [...args], { env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(input);
  });
}

/** psql against the machine's server directly (not through wicket), as the superuser. */
export async function directSql(sql: string, database = 'postgres'): Promise<string> {
  const { stdout } = await run('psql', ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-h', '127.0.0.1', '-p', '5432', '-U', 'postgres', '-d', database, '-c', sql]);
  return stdout.trim();
}
