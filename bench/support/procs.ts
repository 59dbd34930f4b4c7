/**
 * Child processes for benchmarks: spawn and track them so that every exit
 * path (success, error, Ctrl-C) ends them; run a command to completion;
 * read a process's memory and CPU from /proc.
 */
import { spawn, execFileSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { availableParallelism } from 'node:os';
export { freePort } from '../../src/util/free-port.js';

const live = new Set<ChildProcess>();
const cleanups: Array<() => void> = [];

/** Ends every tracked child still running (SIGTERM, then SIGKILL after `graceMs`) and runs the registered cleanups. */
export async function killAll(graceMs = 3000): Promise<void> {
  await Promise.all([...live].map((c) => stop(c, graceMs)));
}

/** Registers a synchronous cleanup also run on SIGINT/SIGTERM of the bench process. */
export function onInterrupt(fn: () => void): () => void {
  cleanups.push(fn);
  return () => {
    const i = cleanups.indexOf(fn);
    if (i >= 0) cleanups.splice(i, 1);
  };
}

let installed = false;
function installSignalHandlers(): void {
  if (installed) return;
  installed = true;
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      for (const c of live) c.kill('SIGKILL');
      for (const fn of cleanups.splice(0).reverse()) {
        try { fn(); } catch { /* best effort */ }
      }
      process.exit(130);
    });
  }
  process.once('exit', () => { for (const c of live) c.kill('SIGKILL'); });
}

/** Spawns a tracked child. Its stderr (and stdout unless `keepStdout`) goes into a bounded tail for error messages. */
export function spawnTracked(cmd: string, args: readonly string[], opts: SpawnOptions = {}): ChildProcess & { tail: () => string } {
  installSignalHandlers();
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  live.add(child);
  child.once('exit', () => live.delete(child));
  child.once('error', () => live.delete(child));
  let tail = '';
  const keep = (d: Buffer): void => {
    tail = (tail + d.toString('utf8')).slice(-8000);
  };
  child.stderr?.on('data', keep);
  return Object.assign(child, { tail: () => tail });
}

/** SIGTERM, wait up to `graceMs`, then SIGKILL. Resolves once the child has exited. */
export function stop(child: ChildProcess, graceMs = 5000, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => { clearTimeout(t); resolve(); });
    child.kill(signal);
  });
}

export interface RunResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly seconds: number;
}

/** Runs a command to completion, collecting its output; rejects on a non-zero exit unless `allowFail`. */
export function run(cmd: string, args: readonly string[], opts: SpawnOptions & { input?: string; allowFail?: boolean } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawnTracked(cmd, args, { ...opts, stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout?.on('data', (d: Buffer) => out.push(d));
    child.stderr?.on('data', (d: Buffer) => err.push(d));
    if (opts.input !== undefined) child.stdin?.end(opts.input);
    const start = process.hrtime.bigint();
    child.once('error', reject);
    child.once('close', (code) => {
      const r = { code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), seconds: Number(process.hrtime.bigint() - start) / 1e9 };
      if (code !== 0 && !opts.allowFail) reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${r.stderr.trim() || r.stdout.trim()}`));
      else resolve(r);
    });
  });
}


/** Resolves once something accepts TCP connections on 127.0.0.1:port. */
export async function waitForPort(port: number, timeoutMs: number, alive: () => boolean = () => true): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => { s.destroy(); resolve(true); });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (!alive()) throw new Error(`the process meant to listen on port ${port} exited`);
    if (Date.now() > deadline) throw new Error(`nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export interface MemStatus {
  /** Current resident set, KiB. */
  readonly rssKiB: number;
  /** Peak resident set since the process started, KiB. */
  readonly hwmKiB: number;
}

export function memStatus(pid: number): MemStatus {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string): number => {
    const m = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text);
    if (!m) throw new Error(`/proc/${pid}/status has no ${name}`);
    return Number(m[1]);
  };
  return { rssKiB: field('VmRSS'), hwmKiB: field('VmHWM') };
}

let clockTicks: number | undefined;
/** User + system CPU seconds the process has used so far. */
export function cpuSeconds(pid: number): number {
  clockTicks ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the parenthesised command name (which may contain spaces): state is field 3, utime 14, stime 15.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(rest[11]) + Number(rest[12])) / clockTicks;
}

/** The children of `pid` (Linux >= 3.5 exposes them per task). */
export function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** Samples VmRSS every `everyMs` until stopped; returns the peak seen. */
export function sampleRss(pid: number, everyMs = 50): { stop: () => number } {
  let peak = 0;
  const take = (): void => {
    try { peak = Math.max(peak, memStatus(pid).rssKiB); } catch { /* exited */ }
  };
  take();
  const t = setInterval(take, everyMs);
  return { stop: () => { clearInterval(t); take(); return peak; } };
}

function cpuTimes(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!; // "cpu  user nice system idle iowait irq softirq steal ..."
  const v = line.trim().split(/\s+/).slice(1, 9).map(Number);
  const total = v.reduce((a, b) => a + b, 0);
  return { busy: total - v[3]! - v[4]!, total };
}

/** Fraction of all CPUs busy over the next `ms` (another workload on the machine skews every figure). */
export async function machineBusy(ms = 1000): Promise<number> {
  const a = cpuTimes();
  await new Promise((r) => setTimeout(r, ms));
  const b = cpuTimes();
  return b.total > a.total ? (b.busy - a.busy) / (b.total - a.total) : 0;
}

/** Machine CPU busy fraction (all CPUs) below which we call it quiet. */
export const QUIET = 0.15;

/**
 * Other work on the machine skews every figure: wait up to BENCH_QUIET_WAIT_S
 * (default 60) for quiet, then measure anyway and say so.
 */
export async function waitForQuiet(log: (line: string) => void): Promise<{ busyBefore: number; waitedS: number }> {
  const t0 = Date.now();
  const cores = availableParallelism();
  const waitS = Number(process.env.BENCH_QUIET_WAIT_S ?? 60);
  let busyBefore = await machineBusy(2000);
  for (const until = Date.now() + waitS * 1000; busyBefore > QUIET && Date.now() < until; busyBefore = await machineBusy(2000)) {
    log(`machine ${(busyBefore * 100).toFixed(0)}% busy (${cores} CPUs) before start; waiting up to ${waitS} s for < ${QUIET * 100}% (BENCH_QUIET_WAIT_S)`);
  }
  if (busyBefore > QUIET) log(`warning: starting on a busy machine (${(busyBefore * 100).toFixed(0)}%); figures will be skewed`);
  return { busyBefore, waitedS: (Date.now() - t0) / 1000 };
}

/**
 * Waits for a `wicket serve` child to log `<name> listening on <addr>` and
 * returns the port. Rejects with the child's stderr when it exits first, logs
 * that the listener is not available, or stays silent for 30 s.
 */
export function listenerPort(child: ChildProcess & { tail: () => string }, name: string, hint = ''): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    let seen = '';
    const fail = (why: string): void => {
      clearTimeout(t);
      child.stderr?.off('data', onData);
      reject(new Error(`${why}\n--- wicket serve stderr ---\n${child.tail().trim()}${hint ? `\n${hint}` : ''}`));
    };
    const t = setTimeout(() => fail(`wicket serve did not log "${name} listening on <addr>" within 30 s`), 30_000);
    const onData = (d: Buffer): void => {
      seen += d.toString('utf8');
      const m = new RegExp(`${name} listening on (\\S+)`).exec(seen);
      if (m) {
        clearTimeout(t);
        child.stderr?.off('data', onData);
        resolve(Number(m[1]!.slice(m[1]!.lastIndexOf(':') + 1)));
      } else if (new RegExp(`listen\\.${name} .*not listening`).test(seen)) {
        fail(`this wicket build has no ${name} adapter: \`wicket serve\` said it is not listening on listen.${name}`);
      }
    };
    child.stderr?.on('data', onData);
    child.once('exit', (code, signal) => fail(`wicket serve exited (${signal ?? code}) before its ${name} listener came up`));
  });
}

/**
 * The floor for any Node relay on this machine: a child process that only
 * pipe()s bytes both ways between its listener and host:port (no framing, no
 * auth, no recording). The database benches run it in the same pass as
 * wicket, so "a plain Node relay reaches about N x" is measured on today's
 * machine, not assumed.
 */
export async function startNodePipe(host: string, upstreamPort: number): Promise<{ port: number; child: ChildProcess & { tail: () => string } }> {
  const code = `const net=require('net');const s=net.createServer({noDelay:true},(c)=>{const u=net.connect(${upstreamPort},'${host}');u.setNoDelay(true);c.pipe(u);u.pipe(c);c.on('error',()=>u.destroy());u.on('error',()=>c.destroy());});s.listen(0,'${host}',()=>console.log('port',s.address().port));`;
  const child = spawnTracked(process.execPath, ['-e', code]);
  const port = await new Promise<number>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('node pipe relay did not start')), 10_000);
    child.stdout?.on('data', (d: Buffer) => {
      const m = /port (\d+)/.exec(d.toString());
      if (m) {
        clearTimeout(t);
        resolve(Number(m[1]));
      }
    });
  });
  return { port, child };
}
