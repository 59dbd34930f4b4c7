/**
 * The wicket side of the database benches: a `wicket serve` child process on
 * a one-target config (recording on, as always) with a user `bench` and a
 * fresh password, and what it recorded, read from its store after it stopped.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { listenerPort, run, spawnTracked } from './procs.js';

export const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

export interface BenchWicket {
  readonly port: number;
  /** The wicket login: bench@<target>. */
  readonly user: string;
  readonly password: string;
  readonly child: ReturnType<typeof spawnTracked>;
  readonly dataDir: string;
}

/**
 * Starts wicket in `dir` with one target, `name`, of `protocol`; `target` is
 * the rest of its YAML flow mapping (address, user, database, tls ...).
 */
export async function startBenchWicket(dir: string, protocol: 'postgres' | 'mysql', name: string, target: string): Promise<BenchWicket> {
  const config = join(dir, 'wicket.yaml');
  writeFileSync(config, [
    'data_dir: ./data',
    'store: sqlite',
    `listen: { ${protocol}: "127.0.0.1:0" }`,
    'segments:',
    '  - { name: bench }',
    'targets:',
    `  - { name: ${name}, segment: bench, protocol: ${protocol}, ${target} }`,
    'roles:',
    '  - name: bencher',
    '    allow:',
    `      - { segments: [bench], protocols: [${protocol}], access: write }`,
    'users:',
    '  - { name: bench, roles: [bencher] }',
    '',
  ].join('\n'));
  const password = `bench-${randomBytes(12).toString('hex')}`;
  await run(process.execPath, [CLI, 'user', 'passwd', 'bench', '--config', config], { input: `${password}\n` });
  const child = spawnTracked(process.execPath, [CLI, 'serve', '--config', config]);
  const port = await listenerPort(child, protocol);
  return { port, user: `bench@${name}`, password, child, dataDir: join(dir, 'data') };
}

/** Query events and sessions in wicket's store (open it once wicket has stopped). */
export function recorded(dataDir: string): { queries: number; sessions: number } {
  const db = new Database(join(dataDir, 'wicket.db'), { readonly: true, fileMustExist: true });
  try {
    const count = (sql: string): number => (db.prepare(sql).get() as { n: number }).n;
    return {
      queries: count("SELECT count(*) AS n FROM audit_events WHERE kind = 'query'"),
      sessions: count("SELECT count(*) AS n FROM audit_events WHERE kind = 'session.start'"),
    };
  } finally {
    db.close();
  }
}
