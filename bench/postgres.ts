/**
 * Postgres relay cost: the same workloads against the server directly,
 * through a private PgBouncer (session pooling) and through wicket (a child
 * `wicket serve` process, recording on, as always), in one run:
 *
 *   - pgbench -S -c 8 -j 2 -T 10, -M simple and -M prepared: TPS and ratios;
 *     the CPU the proxy process used meanwhile.
 *   - connect + auth + SELECT 1 + result, 200 sequential `pg` clients: median, p95.
 *   - a large result (1M rows of ~110 bytes): a raw-protocol SELECT and
 *     `COPY ... TO STDOUT` via psql, MB/s of bytes received; wicket's RSS
 *     sampled every 50 ms meanwhile.
 *
 * Needs the machine's PostgreSQL on 127.0.0.1:5432 (user postgres, trust),
 * pgbench, psql and /usr/sbin/pgbouncer. Creates and drops its own database.
 *
 *   npm run bench -- postgres
 */
import { execFileSync } from 'node:child_process';
import { pbkdf2Sync, randomBytes } from 'node:crypto';
import { chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { runIfMain, type BenchResult, type BenchRow } from './types.js';
import { streamQuery } from './support/pgstream.js';
import { CLI, recorded, startBenchWicket } from './support/wicket.js';
import {
  QUIET, childPids, cpuSeconds, freePort, killAll, machineBusy, memStatus, onInterrupt, run, sampleRss, spawnTracked, startNodePipe, stop, waitForPort, waitForQuiet,
} from './support/procs.js';

const HOST = '127.0.0.1';
const PG_PORT = 5432;
const PGBENCH = { clients: 8, threads: 2, seconds: 10, scale: 10, warmupSeconds: 3 } as const;
const CONNECTS = 200;
/** Each large-result figure is the median of this many runs. */
const BIG_RUNS = 3;
const BIG_SQL = "select g, repeat('x', 100) from generate_series(1,1000000) g";
const PGBOUNCER = '/usr/sbin/pgbouncer';
const MiB = 1024 * 1024;

type Label = 'direct' | 'pgbouncer' | 'wicket' | 'node-pipe';

interface Endpoint {
  readonly label: Label;
  readonly port: number;
  readonly user: string;
  readonly password?: string;
  readonly database: string;
  /** The proxy process (pgbouncer, wicket); none for direct. */
  readonly pid?: number;
}

/** libpq environment: no TLS anywhere, so the three paths differ only by the hop. */
const clientEnv = (ep: Endpoint): NodeJS.ProcessEnv => ({
  ...process.env, PGSSLMODE: 'disable', PGCONNECT_TIMEOUT: '10',
  ...(ep.password === undefined ? { PGPASSWORD: '' } : { PGPASSWORD: ep.password }),
});
const libpqArgs = (ep: Endpoint): string[] => ['-h', HOST, '-p', String(ep.port), '-U', ep.user];

function log(line: string): void {
  process.stderr.write(`bench postgres: ${line}\n`);
}

function psqlAdmin(sql: string, database = 'postgres'): Promise<unknown> {
  return run('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-h', HOST, '-p', String(PG_PORT), '-U', 'postgres', '-d', database, '-c', sql], {
    env: { ...process.env, PGSSLMODE: 'disable' },
  });
}

function dropDatabaseSync(db: string): void {
  execFileSync('psql', ['-X', '-q', '-h', HOST, '-p', String(PG_PORT), '-U', 'postgres', '-d', 'postgres', '-c', `DROP DATABASE IF EXISTS ${db} WITH (FORCE)`], {
    stdio: 'ignore', env: { ...process.env, PGSSLMODE: 'disable' },
  });
}

function requireTools(): void {
  for (const [tool, args] of [['pgbench', ['--version']], ['psql', ['--version']], [PGBOUNCER, ['--version']]] as const) {
    try {
      execFileSync(tool, args, { stdio: 'ignore' });
    } catch {
      throw new Error(`${tool} is not available`);
    }
  }
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: build first (npm run bench builds)`);
}

// ---------------------------------------------------------------- servers

/** Starts pgbouncer with its config, pid file and log in `dir` (a fresh temp dir of its own: it gets chowned). */
async function startPgbouncer(dir: string, database: string): Promise<Endpoint> {
  const root = process.getuid?.() === 0;
  const port = await freePort();
  writeFileSync(join(dir, 'userlist.txt'), '"postgres" ""\n');
  writeFileSync(join(dir, 'pgbouncer.ini'), [
    '[databases]',
    `${database} = host=${HOST} port=${PG_PORT} dbname=${database} user=postgres`,
    '[pgbouncer]',
    `listen_addr = ${HOST}`,
    `listen_port = ${port}`,
    'unix_socket_dir =',
    'auth_type = trust',
    `auth_file = ${join(dir, 'userlist.txt')}`,
    'pool_mode = session',
    'max_client_conn = 100',
    'default_pool_size = 20',
    'server_tls_sslmode = disable',
    'client_tls_sslmode = disable',
    'ignore_startup_parameters = extra_float_digits',
    `pidfile = ${join(dir, 'pgbouncer.pid')}`,
    `logfile = ${join(dir, 'pgbouncer.log')}`,
    'log_connections = 0',
    'log_disconnections = 0',
    '',
  ].join('\n'));
  if (root) {
    // pgbouncer refuses to run as root: hand it the dir and run it as postgres.
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    for (const f of ['', 'userlist.txt', 'pgbouncer.ini']) chownSync(join(dir, f), uid, gid);
  }
  const ini = join(dir, 'pgbouncer.ini');
  const child = root ? spawnTracked('runuser', ['-u', 'postgres', '--', PGBOUNCER, ini]) : spawnTracked(PGBOUNCER, [ini]);
  const alive = (): boolean => child.exitCode === null && child.signalCode === null;
  try {
    await waitForPort(port, 10_000, alive);
  } catch (err) {
    const logText = existsSync(join(dir, 'pgbouncer.log')) ? readFileSync(join(dir, 'pgbouncer.log'), 'utf8') : '';
    throw new Error(`pgbouncer did not start: ${(err as Error).message}\n${child.tail()}${logText}`);
  }
  // The process to measure is pgbouncer itself, not runuser in front of it.
  const pidFile = join(dir, 'pgbouncer.pid');
  const pid = existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8').trim()) : (root ? childPids(child.pid!)[0] : child.pid);
  if (!pid) throw new Error('cannot find the pgbouncer process id');
  return { label: 'pgbouncer', port, user: 'postgres', database, pid };
}

async function startWicketChild(dir: string, database: string): Promise<{ ep: Endpoint; child: ReturnType<typeof spawnTracked>; dataDir: string }> {
  const w = await startBenchWicket(dir, 'postgres', 'benchpg', `address: "${HOST}:${PG_PORT}", database: ${database}, user: postgres, tls: disable`);
  return { ep: { label: 'wicket', port: w.port, user: w.user, password: w.password, database, pid: w.child.pid! }, child: w.child, dataDir: w.dataDir };
}

// ---------------------------------------------------------------- workloads

interface PgbenchResult {
  readonly tps: number;
  readonly latencyMs: number;
  readonly transactions: number;
  readonly failed: number;
  /** CPU seconds per wall second the proxy used (1.0 = one core). */
  readonly proxyCores: number | null;
}

async function pgbench(ep: Endpoint, mode: 'simple' | 'prepared', seconds: number): Promise<PgbenchResult> {
  const args = ['-S', '-n', '-M', mode, '-c', String(PGBENCH.clients), '-j', String(PGBENCH.threads), '-T', String(seconds), ...libpqArgs(ep), ep.database];
  const cpu = (): number => {
    if (!ep.pid) return 0;
    if (!existsSync(`/proc/${ep.pid}`)) throw new Error(`${ep.label} (pid ${ep.pid}) is no longer running`);
    return cpuSeconds(ep.pid);
  };
  const cpu0 = cpu();
  const r = await run('pgbench', args, { env: clientEnv(ep) });
  const cpu1 = cpu();
  const num = (re: RegExp): number => {
    const m = re.exec(r.stdout);
    if (!m) throw new Error(`pgbench (${ep.label}, ${mode}): no ${re.source} in output:\n${r.stdout}\n${r.stderr}`);
    return Number(m[1]);
  };
  const failed = /number of failed transactions: (\d+)/.exec(r.stdout);
  return {
    tps: num(/tps = ([\d.]+) \(without initial connection time\)/),
    latencyMs: num(/latency average = ([\d.]+) ms/),
    transactions: num(/number of transactions actually processed: (\d+)/),
    failed: failed ? Number(failed[1]) : 0,
    proxyCores: ep.pid ? (cpu1 - cpu0) / r.seconds : null,
  };
}

/** The plain Node pipe() relay (procs.ts), as a pgbench endpoint: pgbouncer's premise ("about 0.85 x") checked on today's machine. */
async function startPipeEndpoint(database: string): Promise<{ ep: Endpoint; child: ReturnType<typeof spawnTracked> }> {
  const { port, child } = await startNodePipe(HOST, PG_PORT);
  return { ep: { label: 'node-pipe', port, user: 'postgres', database, pid: child.pid! }, child };
}

/** connect + auth + `SELECT 1` + result, one client at a time; ms per connection (end() is awaited but not timed). */
async function connectTimes(ep: Endpoint, n: number): Promise<{ median: number; p95: number }> {
  const once = async (): Promise<number> => {
    const c = new pg.Client({ host: HOST, port: ep.port, user: ep.user, password: ep.password ?? '', database: ep.database, ssl: false });
    const t0 = process.hrtime.bigint();
    try {
      await c.connect();
      await c.query('select 1');
      return Number(process.hrtime.bigint() - t0) / 1e6;
    } finally {
      await c.end();
    }
  };
  for (let i = 0; i < 10; i++) await once(); // warm both ends
  const ms: number[] = [];
  for (let i = 0; i < n; i++) ms.push(await once());
  ms.sort((a, b) => a - b);
  return { median: ms[Math.floor(n / 2)]!, p95: ms[Math.floor(n * 0.95)]! };
}

/** `COPY (...) TO STDOUT` through psql; bytes counted from its stdout. */
async function psqlCopy(ep: Endpoint): Promise<{ bytes: number; seconds: number }> {
  const child = spawnTracked('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', ...libpqArgs(ep), '-d', ep.database, '-c', `COPY (${BIG_SQL}) TO STDOUT`], { env: clientEnv(ep) });
  let bytes = 0;
  child.stdout!.on('data', (d: Buffer) => { bytes += d.length; });
  const start = process.hrtime.bigint();
  const code = await new Promise<number | null>((resolve, reject) => { child.once('error', reject); child.once('close', resolve); });
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  if (code !== 0) throw new Error(`psql COPY via ${ep.label} exited ${code}: ${child.tail()}`);
  return { bytes, seconds };
}

// ---------------------------------------------------------------- the bench

export async function benchPostgres(): Promise<BenchResult> {
  const t0 = Date.now();
  requireTools();
  const cores = availableParallelism();
  const { busyBefore, waitedS: waited } = await waitForQuiet(log);
  const database = `wicket_bench_${process.pid}`;
  const dir = mkdtempSync(join(tmpdir(), 'wicket-bench-pg-'));
  let pgbDir: string | null = null;
  let pgbPid: number | undefined;
  let dbCreated = false;
  // runuser may not pass signals on to pgbouncer: end pgbouncer itself, by its pid.
  const killPgbouncer = (): void => {
    try { if (pgbPid) process.kill(pgbPid, 'SIGTERM'); } catch { /* already gone */ }
  };
  const unhook = onInterrupt(() => {
    killPgbouncer();
    if (dbCreated) dropDatabaseSync(database);
    rmSync(dir, { recursive: true, force: true });
    if (pgbDir) rmSync(pgbDir, { recursive: true, force: true });
  });
  try {
    log(`creating ${database} and running pgbench -i -s ${PGBENCH.scale}`);
    await psqlAdmin(`CREATE DATABASE ${database}`);
    dbCreated = true;
    const init = await run('pgbench', ['-i', '-q', '-s', String(PGBENCH.scale), '-h', HOST, '-p', String(PG_PORT), '-U', 'postgres', database], {
      env: { ...process.env, PGSSLMODE: 'disable' },
    });
    await psqlAdmin('VACUUM ANALYZE', database);

    const direct: Endpoint = { label: 'direct', port: PG_PORT, user: 'postgres', database };
    pgbDir = mkdtempSync(join(tmpdir(), 'wicket-bench-pgbouncer-'));
    const bouncer = { ep: await startPgbouncer(pgbDir, database) };
    pgbPid = bouncer.ep.pid;
    mkdirSync(join(dir, 'wicket'));
    const w = await startWicketChild(join(dir, 'wicket'), database);
    const eps = [direct, bouncer.ep, w.ep];
    const pipe = await startPipeEndpoint(database);
    const idleRss = memStatus(w.ep.pid!).rssKiB;
    log(`pgbouncer on :${bouncer.ep.port} (pid ${bouncer.ep.pid}), wicket on :${w.ep.port} (pid ${w.ep.pid}, ${(idleRss / 1024).toFixed(1)} MiB RSS idle)`);

    for (const ep of [...eps, pipe.ep]) await pgbench(ep, 'simple', PGBENCH.warmupSeconds);
    const tps: Record<'simple' | 'prepared', Record<Label, PgbenchResult>> = { simple: {} as Record<Label, PgbenchResult>, prepared: {} as Record<Label, PgbenchResult> };
    for (const mode of ['simple', 'prepared'] as const) {
      for (const ep of [...eps, pipe.ep]) {
        log(`pgbench -M ${mode} via ${ep.label}`);
        tps[mode][ep.label] = await pgbench(ep, mode, PGBENCH.seconds);
      }
    }

    const busyMid = await machineBusy(1000); // our processes idle: anything seen here is someone else's
    log(`${CONNECTS} sequential connections each`);
    const conn = {} as Record<Label, { median: number; p95: number }>;
    for (const ep of eps) conn[ep.label] = await connectTimes(ep, CONNECTS);
    // What the client itself spends on SCRAM (wicket only; direct and pgbouncer use trust).
    const k0 = process.hrtime.bigint();
    for (let i = 0; i < 20; i++) pbkdf2Sync('x'.repeat(30), randomBytes(16), 4096, 32, 'sha256');
    const pbkdf2Ms = Number(process.hrtime.bigint() - k0) / 1e6 / 20;

    log('large results');
    const rssBefore = memStatus(w.ep.pid!);
    const big = {} as Record<Label, { select: { bytes: number; rows: number; seconds: number }; copy: { bytes: number; seconds: number } }>;
    let rssPeak = 0;
    const median = <T extends { seconds: number }>(xs: T[]): T => [...xs].sort((a, b) => a.seconds - b.seconds)[Math.floor(xs.length / 2)]!;
    for (const ep of eps) {
      const sampler = ep.label === 'wicket' ? sampleRss(ep.pid!, 50) : null;
      const selects: Array<{ bytes: number; rows: number; seconds: number }> = [];
      const copies: Array<{ bytes: number; seconds: number }> = [];
      for (let i = 0; i < BIG_RUNS; i++) {
        selects.push(await streamQuery({ host: HOST, port: ep.port, user: ep.user, password: ep.password, database: ep.database, sql: BIG_SQL }));
        copies.push(await psqlCopy(ep));
      }
      if (sampler) rssPeak = sampler.stop();
      big[ep.label] = { select: median(selects), copy: median(copies) };
    }
    const rssAfter = memStatus(w.ep.pid!);
    const bouncerMem = memStatus(bouncer.ep.pid!);

    const busyEnd = await machineBusy(1000);
    await stop(w.child, 10_000);
    await stop(pipe.child, 5_000);
    const rec = recorded(w.dataDir);
    const seconds = (Date.now() - t0) / 1000;

    const mbps = (r: { bytes: number; seconds: number }): number => r.bytes / MiB / r.seconds;
    const rows: BenchRow[] = [];
    for (const mode of ['simple', 'prepared'] as const) {
      const t = tps[mode];
      for (const ep of eps) {
        const r = t[ep.label];
        const cpu = r.proxyCores === null ? '' : `; ${ep.label} CPU ${r.proxyCores.toFixed(2)} cores = ${((r.proxyCores / r.tps) * 1e6).toFixed(0)} µs/txn`;
        rows.push({
          metric: `pgbench -S -M ${mode}: ${ep.label}`, value: r.tps, unit: 'TPS',
          note: `latency ${r.latencyMs.toFixed(3)} ms; ${r.transactions} txns${r.failed ? `, ${r.failed} FAILED` : ''}${cpu}`,
        });
      }
      rows.push(
        { metric: `-M ${mode}: wicket / pgbouncer`, value: t.wicket.tps / t.pgbouncer.tps, unit: 'ratio', note: 'target >= 0.8' },
        { metric: `-M ${mode}: wicket / direct`, value: t.wicket.tps / t.direct.tps, unit: 'ratio' },
        { metric: `-M ${mode}: pgbouncer / direct`, value: t.pgbouncer.tps / t.direct.tps, unit: 'ratio' },
        { metric: `-M ${mode}: plain Node pipe() relay / pgbouncer`, value: t['node-pipe'].tps / t.pgbouncer.tps, unit: 'ratio', note: `${t['node-pipe'].tps.toFixed(0)} TPS; the ceiling for a Node relay here (no framing, auth or recording)` },
      );
    }
    for (const ep of eps) {
      const c = conn[ep.label];
      const auth = ep.label === 'wicket' ? `SCRAM-SHA-256 (client PBKDF2 alone ${pbkdf2Ms.toFixed(2)} ms)` : ep.label === 'pgbouncer' ? 'trust, pooled server connection' : 'trust, new backend';
      rows.push({ metric: `connect + auth + SELECT 1: ${ep.label}`, value: c.median, unit: 'ms (median)', note: `p95 ${c.p95.toFixed(2)} ms; ${CONNECTS} sequential pg clients; ${auth}` });
    }
    for (const ep of eps) {
      const s = big[ep.label].select;
      rows.push({ metric: `1M-row SELECT, raw protocol: ${ep.label}`, value: mbps(s), unit: 'MiB/s', note: `${(s.bytes / MiB).toFixed(1)} MiB, ${s.rows} rows in ${s.seconds.toFixed(2)} s (median of ${BIG_RUNS})` });
    }
    rows.push({ metric: '1M-row SELECT: wicket / direct', value: mbps(big.wicket.select) / mbps(big.direct.select), unit: 'ratio' });
    for (const ep of eps) {
      const c = big[ep.label].copy;
      rows.push({ metric: `1M-row COPY TO STDOUT via psql: ${ep.label}`, value: mbps(c), unit: 'MiB/s', note: `${(c.bytes / MiB).toFixed(1)} MiB of COPY text in ${c.seconds.toFixed(2)} s (median of ${BIG_RUNS})` });
    }
    rows.push(
      { metric: '1M-row COPY: wicket / direct', value: mbps(big.wicket.copy) / mbps(big.direct.copy), unit: 'ratio' },
      { metric: 'wicket RSS idle (after start)', value: idleRss / 1024, unit: 'MiB' },
      { metric: 'wicket RSS before large results', value: rssBefore.rssKiB / 1024, unit: 'MiB', note: `VmHWM so far ${(rssBefore.hwmKiB / 1024).toFixed(1)} MiB (pgbench, ${PGBENCH.clients} sessions)` },
      { metric: 'wicket RSS growth during large results', value: (rssPeak - rssBefore.rssKiB) / 1024, unit: 'MiB', note: `peak VmRSS ${(rssPeak / 1024).toFixed(1)} MiB sampled every 50 ms over ${2 * BIG_RUNS} runs; VmHWM ${(rssBefore.hwmKiB / 1024).toFixed(1)} -> ${(rssAfter.hwmKiB / 1024).toFixed(1)} MiB; target < 64` },
      { metric: 'wicket peak RSS (VmHWM, whole run)', value: rssAfter.hwmKiB / 1024, unit: 'MiB' },
      { metric: 'pgbouncer peak RSS (VmHWM, whole run)', value: bouncerMem.hwmKiB / 1024, unit: 'MiB' },
      { metric: 'wicket recorded query events', value: rec.queries, unit: 'events', note: `${rec.sessions} sessions; recording on` },
      { metric: 'other load on the machine: before / after pgbench / at end', value: Math.max(busyBefore, busyMid, busyEnd) * 100, unit: '% of all CPUs (max)',
        note: `${(busyBefore * 100).toFixed(0)}% / ${(busyMid * 100).toFixed(0)}% / ${(busyEnd * 100).toFixed(0)}% of ${cores} CPUs while the bench was idle; above ~${QUIET * 100}% every figure is skewed` },
      { metric: 'bench wall time', value: seconds, unit: 's', note: `includes ${waited.toFixed(0)} s waiting for a quiet machine and pgbench -i -s ${PGBENCH.scale} (${init.seconds.toFixed(1)} s); no TLS on any hop (PGSSLMODE=disable)` },
    );
    return { name: 'postgres: relay throughput, latency and memory (direct vs pgbouncer vs wicket)', rows };
  } finally {
    killPgbouncer();
    await killAll();
    if (dbCreated) await psqlAdmin(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`).catch((err: unknown) => log(`could not drop ${database}: ${String(err)}`));
    rmSync(dir, { recursive: true, force: true });
    if (pgbDir) rmSync(pgbDir, { recursive: true, force: true });
    unhook();
  }
}

runIfMain(import.meta.url, 'postgres', benchPostgres);
