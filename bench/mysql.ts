/**
 * MySQL/MariaDB relay cost: the same workloads against the machine's MariaDB
 * directly and through wicket (a child `wicket serve` process, recording on,
 * as always), in one run:
 *
 *   - mysqlslap --query="SELECT 1" at --concurrency=1 and 8: queries/s from
 *     its "Average number of seconds to run all queries" (which includes each
 *     iteration's connects) and its query count; the query count per path is
 *     sized from a calibration run so that each iteration lasts a few seconds.
 *   - sysbench oltp_point_select --threads=8, --db-ps-mode=disable (text
 *     protocol) and --db-ps-mode=auto (server-side prepared statements):
 *     queries/s; on a table of 10,000 rows prepared once, directly.
 *   - the same mysqlslap and sysbench runs through a plain Node pipe() relay
 *     (procs.ts startNodePipe: no TLS, framing, auth or recording), as the
 *     ceiling any Node relay can reach on this machine;
 *   - connect + auth + SELECT 1 + result, 100 sequential `mysql2` clients
 *     (direct and wicket in turn): median, p95.
 *   - a large result (1M rows of ~110 bytes, MariaDB's SEQUENCE engine) read
 *     by a raw-protocol streaming reader (bench/support/mysqlstream.ts): MB/s
 *     of bytes received, median of 3 (direct and wicket runs interleaved);
 *     wicket's RSS sampled every 50 ms meanwhile.
 *   - wicket's CPU per query in each throughput phase, its peak RSS, the query
 *     events it recorded (audit_events in its sqlite store, read after it
 *     stopped); other load on the machine; wall time.
 *
 * Caveat, load: this is a small machine; other work on it skews every figure
 * (the "other load" row says how much there was, wicket's own CPU excluded).
 *
 * Caveat, TLS: wicket requires TLS from clients (the person's password is
 * only ever sent inside TLS) and the machine's MariaDB has none, so every
 * wicket figure includes a TLS client leg that the direct one does not
 * (wicket -> MariaDB is plain, tls: disable). mysqlslap and the mysql2 / raw
 * clients use TLS without verification. sysbench 1.0's --mysql-ssl=on always
 * loads cacert.pem, client-cert.pem and client-key.pem from its working
 * directory (and so verifies the chain, not the host name): it runs in a temp
 * dir holding wicket's own self-signed certificate as cacert.pem and a
 * throwaway client certificate (wicket asks for none). If sysbench cannot
 * connect that way, its wicket rows say so instead of a figure.
 *
 * Needs the machine's MariaDB on 127.0.0.1:3306 (user root, no password, no
 * TLS), the `mariadb` client, mysqlslap, sysbench and openssl. Creates and
 * drops its own database.
 *
 *   npm run bench -- mysql
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import { runIfMain, type BenchResult, type BenchRow } from './types.js';
import { streamMysqlQuery } from './support/mysqlstream.js';
import { CLI, recorded, startBenchWicket } from './support/wicket.js';
import {
  QUIET, cpuSeconds, killAll, machineBusy, memStatus, onInterrupt, run, sampleRss, spawnTracked, startNodePipe, stop, waitForQuiet,
} from './support/procs.js';

const HOST = '127.0.0.1';
const MY_PORT = 3306;
const MYSQLSLAP = '/usr/bin/mysqlslap';
const SYSBENCH = '/usr/bin/sysbench';
const SLAP = { concurrencies: [1, 8], iterations: 2, secondsPerIteration: 2.5, calibrationQueries: 4000 } as const;
const SB = { threads: 8, seconds: 8, warmupSeconds: 2, tableSize: 10_000 } as const;
const PS_MODES = ['disable', 'auto'] as const;
const CONNECTS = 100;
/** Each large-result figure is the median of this many runs. */
const BIG_RUNS = 3;
const BIG_SQL = "SELECT seq, REPEAT('x', 100) FROM seq_1_to_1000000";
const MiB = 1024 * 1024;

type Label = 'direct' | 'wicket' | 'node-pipe';
type PsMode = (typeof PS_MODES)[number];

interface Endpoint {
  readonly label: Label;
  readonly port: number;
  readonly user: string;
  readonly password?: string;
  readonly database: string;
  /** TLS on the client's leg (wicket requires it; the machine's MariaDB has none). */
  readonly tls: boolean;
  /** The relay's process: wicket's, or the plain Node pipe's (none for direct). */
  readonly pid?: number;
}

function log(line: string): void {
  process.stderr.write(`bench mysql: ${line}\n`);
}

const pct = (sorted: readonly number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;

/** Client environment: the password via MYSQL_PWD (never on the command line), none at all for direct. */
function clientEnv(ep: Endpoint): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.MYSQL_PWD;
  return ep.password === undefined ? env : { ...env, MYSQL_PWD: ep.password };
}

function mariadbAdmin(sql: string): Promise<unknown> {
  return run('mariadb', ['-h', HOST, '-P', String(MY_PORT), '-u', 'root', '--skip-ssl', '-N', '-B', '-e', sql], { env: clientEnv({ label: 'direct', port: MY_PORT, user: 'root', database: '', tls: false }) });
}

function dropDatabaseSync(db: string): void {
  execFileSync('mariadb', ['-h', HOST, '-P', String(MY_PORT), '-u', 'root', '--skip-ssl', '-e', `DROP DATABASE IF EXISTS \`${db}\``], { stdio: 'ignore' });
}

function requireTools(): void {
  for (const [tool, args] of [['mariadb', ['--version']], [MYSQLSLAP, ['--version']], [SYSBENCH, ['--version']], ['openssl', ['version']]] as const) {
    try {
      execFileSync(tool, args, { stdio: 'ignore' });
    } catch {
      throw new Error(`${tool} is not available`);
    }
  }
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: build first (npm run bench builds)`);
}

function cpuOf(ep: Endpoint): number {
  if (!ep.pid) return 0;
  if (!existsSync(`/proc/${ep.pid}`)) throw new Error(`${ep.label} (pid ${ep.pid}) is no longer running`);
  return cpuSeconds(ep.pid);
}

// ---------------------------------------------------------------- wicket

async function startWicketChild(dir: string, database: string): Promise<{ ep: Endpoint; child: ReturnType<typeof spawnTracked>; dataDir: string }> {
  const w = await startBenchWicket(dir, 'mysql', 'benchmy', `address: "${HOST}:${MY_PORT}", user: root, database: ${database}, tls: disable`);
  return { ep: { label: 'wicket', port: w.port, user: w.user, password: w.password, database, tls: true, pid: w.child.pid! }, child: w.child, dataDir: w.dataDir };
}

/**
 * sysbench 1.0 with --mysql-ssl=on passes cacert.pem, client-cert.pem and
 * client-key.pem (relative paths) to mysql_ssl_set: a dir holding wicket's own
 * certificate as the CA and a throwaway client certificate, to run it in.
 */
async function sysbenchTlsDir(dir: string, wicketDataDir: string): Promise<string> {
  const d = join(dir, 'sysbench-tls');
  mkdirSync(d);
  copyFileSync(join(wicketDataDir, 'tls', 'cert.pem'), join(d, 'cacert.pem'));
  await run('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2', '-subj', '/CN=wicket-bench-client',
    '-keyout', join(d, 'client-key.pem'), '-out', join(d, 'client-cert.pem'),
  ]);
  return d;
}

// ---------------------------------------------------------------- workloads

interface SlapResult {
  readonly qps: number;
  readonly queries: number;
  readonly avgSeconds: number;
  /** wicket CPU seconds over the whole mysqlslap run (all iterations). */
  readonly cpu: number;
}

/** mysqlslap --query="SELECT 1": queries/s = clients x queries per client / average seconds per iteration. */
async function mysqlslap(ep: Endpoint, concurrency: number, queries: number, iterations: number): Promise<SlapResult> {
  const args = [
    '-h', HOST, '-P', String(ep.port), '-u', ep.user, ep.tls ? '--ssl' : '--skip-ssl', `--create-schema=${ep.database}`,
    '--query=SELECT 1', `--concurrency=${concurrency}`, `--number-of-queries=${queries}`, `--iterations=${iterations}`,
  ];
  const cpu0 = cpuOf(ep);
  const r = await run(MYSQLSLAP, args, { env: clientEnv(ep), allowFail: true });
  const cpu = cpuOf(ep) - cpu0;
  // mysqlslap exits 0 and prints figures even when its clients could not connect: any error on stderr voids the run.
  if (r.code !== 0 || /error/i.test(r.stderr)) throw new Error(`mysqlslap via ${ep.label} (c=${concurrency}) failed (exit ${r.code}): ${r.stderr.trim().split('\n').slice(0, 5).join('\n')}`);
  const num = (re: RegExp): number => {
    const m = re.exec(r.stdout);
    if (!m) throw new Error(`mysqlslap (${ep.label}, c=${concurrency}): no ${re.source} in output:\n${r.stdout}\n${r.stderr}`);
    return Number(m[1]);
  };
  const avgSeconds = num(/Average number of seconds to run all queries: ([\d.]+) seconds/);
  const clients = num(/Number of clients running queries: (\d+)/);
  const perClient = num(/Average number of queries per client: (\d+)/);
  return { qps: (clients * perClient) / avgSeconds, queries: clients * perClient, avgSeconds, cpu };
}

interface SysbenchResult {
  readonly qps: number;
  readonly queries: number;
  readonly errors: number;
  readonly latencyMs: number;
  readonly p95Ms: number;
  /** wicket CPU seconds per wall second (1.0 = one core); null for direct. */
  readonly proxyCores: number | null;
  readonly cpu: number;
}

function sysbenchArgs(ep: Endpoint, extra: readonly string[]): string[] {
  return [
    'oltp_point_select', '--db-driver=mysql', `--mysql-host=${HOST}`, `--mysql-port=${ep.port}`, `--mysql-user=${ep.user}`, `--mysql-password=${ep.password ?? ''}`,
    `--mysql-db=${ep.database}`, '--tables=1', `--table-size=${SB.tableSize}`, ...(ep.tls ? ['--mysql-ssl=on'] : []), ...extra,
  ];
}

async function sysbench(ep: Endpoint, mode: PsMode, seconds: number, cwd: string | undefined): Promise<SysbenchResult> {
  const cpu0 = cpuOf(ep);
  const r = await run(SYSBENCH, sysbenchArgs(ep, [`--threads=${SB.threads}`, `--time=${seconds}`, `--db-ps-mode=${mode}`, 'run']), { cwd, allowFail: true });
  const cpu = cpuOf(ep) - cpu0;
  if (r.code !== 0) {
    const why = `${r.stderr}\n${r.stdout}`.split('\n').filter((l) => /FATAL|error|ALERT/i.test(l)).slice(0, 4).join(' | ') || r.stderr.trim() || r.stdout.trim();
    throw new Error(`sysbench oltp_point_select --db-ps-mode=${mode} via ${ep.label} exited ${r.code}: ${why}`);
  }
  const num = (re: RegExp): number => {
    const m = re.exec(r.stdout);
    if (!m) throw new Error(`sysbench (${ep.label}, ps-mode=${mode}): no ${re.source} in output:\n${r.stdout}\n${r.stderr}`);
    return Number(m[1]);
  };
  const errors = /ignored errors:\s+(\d+)/.exec(r.stdout);
  return {
    qps: num(/queries:\s+\d+\s+\(([\d.]+) per sec\.\)/),
    queries: num(/queries:\s+(\d+)\s+\(/),
    errors: errors ? Number(errors[1]) : 0,
    latencyMs: num(/avg:\s+([\d.]+)/),
    p95Ms: num(/95th percentile:\s+([\d.]+)/),
    proxyCores: ep.pid ? cpu / r.seconds : null,
    cpu,
  };
}

/** connect + auth + `SELECT 1` + result with mysql2; ms per connection (end() is awaited but not timed). */
async function connectOnce(ep: Endpoint): Promise<number> {
  const t0 = process.hrtime.bigint();
  const c = await mysql.createConnection({
    host: HOST, port: ep.port, user: ep.user, password: ep.password ?? '', database: ep.database,
    ssl: ep.tls ? { rejectUnauthorized: false } : undefined, connectTimeout: 10_000,
  });
  try {
    await c.query('SELECT 1');
    return Number(process.hrtime.bigint() - t0) / 1e6;
  } finally {
    await c.end();
  }
}

/**
 * Both paths in turn (the order alternating), so bursts of other load hit both
 * series alike. A failed connection is counted (and its first error kept), not
 * retried; more than a tenth failing ends the bench.
 */
async function connectTimes(eps: readonly Endpoint[], n: number): Promise<Map<Label, { median: number; p95: number; failed: number; firstError: string | null }>> {
  const ms = new Map<Label, number[]>(eps.map((ep) => [ep.label, []]));
  const failed = new Map<Label, { n: number; first: string | null }>(eps.map((ep) => [ep.label, { n: 0, first: null }]));
  const attempt = async (ep: Endpoint, keep: boolean): Promise<void> => {
    try {
      const t = await connectOnce(ep);
      if (keep) ms.get(ep.label)!.push(t);
    } catch (err) {
      const f = failed.get(ep.label)!;
      f.n++;
      f.first ??= err instanceof Error ? `${(err as { code?: string }).code ?? ''} ${err.message}`.trim() : String(err);
      if (f.n > n / 10) throw new Error(`${f.n} connections via ${ep.label} failed; the first: ${f.first}`);
    }
  };
  for (let i = 0; i < 10; i++) for (const ep of eps) await attempt(ep, false); // warm both ends
  for (let i = 0; i < n; i++) {
    for (const ep of i % 2 === 0 ? eps : [...eps].reverse()) await attempt(ep, true);
  }
  return new Map(eps.map((ep) => {
    const s = [...ms.get(ep.label)!].sort((a, b) => a - b);
    const f = failed.get(ep.label)!;
    return [ep.label, { median: pct(s, 0.5), p95: pct(s, 0.95), failed: f.n, firstError: f.first }];
  }));
}

/** machineBusy over 1 s minus what wicket itself used meanwhile (it may still be writing recorded events). */
async function othersBusy(ep: Endpoint, cores: number): Promise<number> {
  const c0 = cpuOf(ep);
  const busy = await machineBusy(1000);
  return Math.max(0, busy - (cpuOf(ep) - c0) / cores);
}

// ---------------------------------------------------------------- the bench

export async function benchMysql(): Promise<BenchResult> {
  const t0 = Date.now();
  requireTools();
  const cores = availableParallelism();
  const { busyBefore, waitedS: waited } = await waitForQuiet(log);
  const database = `wicket_bench_${process.pid}`;
  const dir = mkdtempSync(join(tmpdir(), 'wicket-bench-my-'));
  let dbCreated = false;
  let wicketTail: (() => string) | null = null;
  const unhook = onInterrupt(() => {
    if (dbCreated) dropDatabaseSync(database);
    rmSync(dir, { recursive: true, force: true });
  });
  try {
    log(`creating ${database} and running sysbench oltp_point_select prepare (1 table, ${SB.tableSize} rows)`);
    await mariadbAdmin(`CREATE DATABASE \`${database}\``);
    dbCreated = true;
    const direct: Endpoint = { label: 'direct', port: MY_PORT, user: 'root', database, tls: false };
    const prep = await run(SYSBENCH, sysbenchArgs(direct, ['prepare']));

    mkdirSync(join(dir, 'wicket'));
    const w = await startWicketChild(join(dir, 'wicket'), database);
    wicketTail = w.child.tail;
    const eps: Endpoint[] = [direct, w.ep];
    const idleRss = memStatus(w.ep.pid!).rssKiB;
    log(`wicket on :${w.ep.port} (pid ${w.ep.pid}, ${(idleRss / 1024).toFixed(1)} MiB RSS idle)`);
    const tlsDir = await sysbenchTlsDir(dir, w.dataDir);
    // The floor for any Node relay: the same query workloads through a bare pipe() (no TLS, framing or recording).
    const pipe = await startNodePipe(HOST, MY_PORT);
    const pipeEp: Endpoint = { label: 'node-pipe', port: pipe.port, user: 'root', database, tls: false, pid: pipe.child.pid! };
    const loadEps: Endpoint[] = [...eps, pipeEp];
    /** Queries sent through wicket, to compare with the query events it recorded. */
    let sentViaWicket = 0;

    // mysqlslap: a calibration run per path and concurrency (also the warmup) sizes the measured one.
    const slap = new Map<string, SlapResult>();
    for (const c of SLAP.concurrencies) {
      for (const ep of loadEps) {
        const cal = await mysqlslap(ep, c, SLAP.calibrationQueries * c, 1);
        const queries = Math.max(c, Math.round((cal.qps * SLAP.secondsPerIteration) / c) * c);
        log(`mysqlslap c=${c} via ${ep.label}: ${queries} queries x ${SLAP.iterations} iterations (calibrated at ${cal.qps.toFixed(0)} q/s)`);
        const r = await mysqlslap(ep, c, queries, SLAP.iterations);
        slap.set(`${c}:${ep.label}`, r);
        if (ep.label === 'wicket') sentViaWicket += cal.queries + r.queries * SLAP.iterations;
      }
    }

    // sysbench: a short warmup per path, then each ps-mode on each path. A wicket failure (e.g. TLS) is reported, not fatal.
    const sb = new Map<string, SysbenchResult | Error>();
    for (const ep of loadEps) {
      try {
        const r = await sysbench(ep, 'disable', SB.warmupSeconds, ep.tls ? tlsDir : undefined);
        if (ep.label === 'wicket') sentViaWicket += r.queries;
      } catch (err) {
        if (ep.label !== 'wicket') throw err;
        log(`sysbench warmup via wicket failed: ${(err as Error).message}`);
      }
    }
    for (const mode of PS_MODES) {
      for (const ep of loadEps) {
        log(`sysbench oltp_point_select --db-ps-mode=${mode} --threads=${SB.threads} --time=${SB.seconds} via ${ep.label}`);
        try {
          const r = await sysbench(ep, mode, SB.seconds, ep.tls ? tlsDir : undefined);
          sb.set(`${mode}:${ep.label}`, r);
          if (ep.label === 'wicket') sentViaWicket += r.queries;
        } catch (err) {
          if (ep.label !== 'wicket') throw err;
          log((err as Error).message);
          sb.set(`${mode}:${ep.label}`, err as Error);
        }
      }
    }

    // Our clients idle: anything seen here is someone else's, or wicket still catching up (its own CPU is taken out).
    const busyMid = await othersBusy(w.ep, cores);
    log(`${CONNECTS} sequential mysql2 connections each`);
    const connCpu0 = cpuOf(w.ep);
    const conn = await connectTimes(eps, CONNECTS);
    const connCpu = cpuOf(w.ep) - connCpu0;
    sentViaWicket += CONNECTS + 10;

    log('large results');
    const rssBefore = memStatus(w.ep.pid!);
    const big = {} as Record<Label, { bytes: number; rows: number; seconds: number }>;
    const bigRuns = new Map<Label, Array<{ bytes: number; rows: number; seconds: number }>>(eps.map((ep) => [ep.label, []]));
    let bigCpu = 0;
    // Direct and wicket in turn (the order alternating), so a burst of other load lands on both series alike.
    const sampler = sampleRss(w.ep.pid!, 50);
    for (let i = 0; i < BIG_RUNS; i++) {
      for (const ep of i % 2 === 0 ? eps : [...eps].reverse()) {
        const c0 = cpuOf(ep);
        const r = await streamMysqlQuery({ host: HOST, port: ep.port, user: ep.user, password: ep.password, database: ep.database, tls: ep.tls, sql: BIG_SQL });
        if (ep.pid) bigCpu += cpuOf(ep) - c0;
        if (r.rows !== 1_000_000) throw new Error(`1M-row SELECT via ${ep.label}: got ${r.rows} rows`);
        bigRuns.get(ep.label)!.push(r);
      }
    }
    const rssPeak = sampler.stop();
    sentViaWicket += BIG_RUNS;
    for (const ep of eps) big[ep.label] = [...bigRuns.get(ep.label)!].sort((a, b) => a.seconds - b.seconds)[Math.floor(BIG_RUNS / 2)]!;
    const rssAfter = memStatus(w.ep.pid!);
    const wicketCpuTotal = cpuOf(w.ep);

    await stop(w.child, 10_000);
    await stop(pipe.child, 5_000);
    const busyEnd = await machineBusy(1000); // after wicket stopped: it may still be writing its store before
    const rec = recorded(w.dataDir);
    const seconds = (Date.now() - t0) / 1000;

    const rows: BenchRow[] = [];
    const us = (cpu: number, queries: number): string => `${((cpu / queries) * 1e6).toFixed(0)} µs/query`;
    for (const c of SLAP.concurrencies) {
      for (const ep of eps) {
        const r = slap.get(`${c}:${ep.label}`)!;
        const cpu = ep.pid ? `; wicket CPU ${r.cpu.toFixed(2)} s = ${us(r.cpu, r.queries * SLAP.iterations)}` : '';
        rows.push({
          metric: `mysqlslap c=${c}: ${ep.label}`, value: r.qps, unit: 'queries/s',
          note: `${r.queries} x SELECT 1 in ${r.avgSeconds.toFixed(3)} s (average of ${SLAP.iterations} iterations, connects included)${ep.tls ? ', TLS client leg' : ''}${cpu}`,
        });
      }
      rows.push({
        metric: `mysqlslap c=${c}: wicket / direct`, value: slap.get(`${c}:wicket`)!.qps / slap.get(`${c}:direct`)!.qps, unit: 'ratio',
        ...(c === 8 ? { note: 'target >= 0.5' } : {}),
      });
      const p = slap.get(`${c}:node-pipe`)!;
      rows.push({
        metric: `mysqlslap c=${c}: plain Node pipe() relay / direct`, value: p.qps / slap.get(`${c}:direct`)!.qps, unit: 'ratio',
        note: `${p.qps.toFixed(0)} queries/s; the ceiling for a Node relay here (no TLS, framing, auth or recording); pipe CPU ${us(p.cpu, p.queries * SLAP.iterations)}`,
      });
    }
    for (const mode of PS_MODES) {
      const d = sb.get(`${mode}:direct`) as SysbenchResult;
      const wr = sb.get(`${mode}:wicket`)!;
      const name = `sysbench point_select (ps-mode=${mode}) c=${SB.threads}`;
      const sbNote = (r: SysbenchResult): string =>
        `latency avg ${r.latencyMs.toFixed(3)} ms, p95 ${r.p95Ms.toFixed(3)} ms; ${r.queries} queries in ${SB.seconds} s${r.errors ? `, ${r.errors} ERRORS ignored` : ''}`;
      rows.push({ metric: `${name}: direct`, value: d.qps, unit: 'queries/s', note: sbNote(d) });
      if (wr instanceof Error) {
        rows.push(
          { metric: `${name}: wicket`, value: 0, unit: 'queries/s', note: `NOT MEASURED: ${wr.message.replace(/\|/g, '/').slice(0, 300)}` },
          { metric: `${name}: wicket / direct`, value: 0, unit: 'ratio', note: 'target >= 0.5; NOT MEASURED (see above)' },
        );
      } else {
        rows.push(
          {
            metric: `${name}: wicket`, value: wr.qps, unit: 'queries/s',
            note: `${sbNote(wr)}; TLS client leg (--mysql-ssl=on, wicket's cert as cacert.pem); wicket CPU ${wr.proxyCores!.toFixed(2)} cores = ${us(wr.cpu, wr.queries)}`,
          },
          { metric: `${name}: wicket / direct`, value: wr.qps / d.qps, unit: 'ratio', note: 'target >= 0.5' },
        );
      }
      const p = sb.get(`${mode}:node-pipe`) as SysbenchResult;
      rows.push({
        metric: `${name}: plain Node pipe() relay / direct`, value: p.qps / d.qps, unit: 'ratio',
        note: `${p.qps.toFixed(0)} queries/s, latency avg ${p.latencyMs.toFixed(3)} ms; the ceiling for a Node relay here; pipe CPU ${p.proxyCores!.toFixed(2)} cores = ${us(p.cpu, p.queries)}`,
      });
    }
    for (const ep of eps) {
      const c = conn.get(ep.label)!;
      const how = ep.tls
        ? `TLS (no verification) + wicket's password check + wicket's own login to MariaDB; wicket CPU ${((connCpu / (CONNECTS + 10)) * 1e3).toFixed(1)} ms per connection`
        : 'no TLS, mysql_native_password';
      const failures = c.failed ? `; ${c.failed} of ${CONNECTS + 10} FAILED (first: ${c.firstError!.replace(/\|/g, '/').slice(0, 200)})` : '';
      rows.push({ metric: `connect + auth + SELECT 1: ${ep.label}`, value: c.median, unit: 'ms (median)', note: `p95 ${c.p95.toFixed(2)} ms; ${CONNECTS} sequential mysql2 connections; ${how}${failures}` });
    }
    rows.push({ metric: 'connect + auth + SELECT 1: wicket / direct', value: conn.get('wicket')!.median / conn.get('direct')!.median, unit: 'ratio', note: 'the wicket path includes a TLS handshake, the direct one does not' });
    const mbps = (r: { bytes: number; seconds: number }): number => r.bytes / MiB / r.seconds;
    for (const ep of eps) {
      const s = big[ep.label];
      rows.push({
        metric: `1M-row SELECT, raw protocol: ${ep.label}`, value: mbps(s), unit: 'MiB/s',
        note: `${(s.bytes / MiB).toFixed(1)} MiB, ${s.rows} rows in ${s.seconds.toFixed(2)} s (median of ${BIG_RUNS}: ${bigRuns.get(ep.label)!.map((r) => mbps(r).toFixed(0)).join(', ')} MiB/s, interleaved with the other path)${ep.tls ? '; TLS client leg' : ''}`,
      });
    }
    rows.push(
      { metric: '1M-row SELECT: wicket / direct', value: mbps(big.wicket) / mbps(big.direct), unit: 'ratio' },
      { metric: 'wicket CPU: 1M-row SELECTs', value: bigCpu, unit: 's', note: `${((bigCpu / ((BIG_RUNS * big.wicket.bytes) / 1e9))).toFixed(2)} s per GB relayed (${BIG_RUNS} runs)` },
      { metric: 'wicket CPU, whole run', value: wicketCpuTotal, unit: 's', note: 'user + system, from start to the end of the last workload' },
      { metric: 'wicket RSS idle (after start)', value: idleRss / 1024, unit: 'MiB' },
      { metric: 'wicket RSS before large results', value: rssBefore.rssKiB / 1024, unit: 'MiB', note: `VmHWM so far ${(rssBefore.hwmKiB / 1024).toFixed(1)} MiB (mysqlslap, sysbench: up to ${Math.max(SB.threads, ...SLAP.concurrencies)} sessions)` },
      { metric: 'wicket RSS growth during large results', value: (rssPeak - rssBefore.rssKiB) / 1024, unit: 'MiB', note: `peak VmRSS ${(rssPeak / 1024).toFixed(1)} MiB sampled every 50 ms over ${BIG_RUNS} runs; VmHWM ${(rssBefore.hwmKiB / 1024).toFixed(1)} -> ${(rssAfter.hwmKiB / 1024).toFixed(1)} MiB` },
      { metric: 'wicket peak RSS (VmHWM, whole run)', value: rssAfter.hwmKiB / 1024, unit: 'MiB' },
      { metric: 'wicket recorded query events', value: rec.queries, unit: 'events', note: `${rec.sessions} sessions; about ${sentViaWicket} statements sent through wicket by the workloads (plus what the clients send on their own); recording on` },
      { metric: 'other load on the machine: before / after sysbench / at end', value: Math.max(busyBefore, busyMid, busyEnd) * 100, unit: '% of all CPUs (max)',
        note: `${(busyBefore * 100).toFixed(0)}% / ${(busyMid * 100).toFixed(0)}% / ${(busyEnd * 100).toFixed(0)}% of ${cores} CPUs while the bench was idle; above ~${QUIET * 100}% every figure is skewed` },
      { metric: 'bench wall time', value: seconds, unit: 's', note: `includes ${waited.toFixed(0)} s waiting for a quiet machine and sysbench prepare (${prep.seconds.toFixed(1)} s); TLS on the client -> wicket leg only` },
    );
    return { name: 'mysql: relay throughput, latency and memory (MariaDB direct vs wicket)', rows };
  } catch (err) {
    // wicket's own account of what went wrong is usually the useful half.
    const tail = wicketTail?.().trim();
    if (tail) log(`failed; wicket serve stderr (tail):\n${tail.slice(-3000)}`);
    throw err;
  } finally {
    await killAll();
    if (dbCreated) await mariadbAdmin(`DROP DATABASE IF EXISTS \`${database}\``).catch((err: unknown) => log(`could not drop ${database}: ${String(err)}`));
    rmSync(dir, { recursive: true, force: true });
    unhook();
  }
}

runIfMain(import.meta.url, 'mysql', benchMysql);
