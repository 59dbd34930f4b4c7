/**
 * SSH relay cost: the real OpenSSH client against a private sshd directly and
 * through wicket (a child `wicket serve`, recording on, as always), in one
 * run, with the client cipher forced to aes128-gcm@openssh.com and then to
 * chacha20-poly1305@openssh.com:
 *
 *   - throughput: `ssh host cat <200 MB file>` to our counter, MiB/s (median of 3);
 *   - keystroke echo: one byte at a time to a remote `cat` in a raw pty
 *     (`ssh -tt`), time until it comes back, p50 / p99 over 1000 keystrokes,
 *     direct and wicket in lockstep (one key to each in turn) so that bursts of
 *     other load hit both series alike;
 *   - login: `ssh host true` (connect + key exchange + publickey + exec), median of 20;
 *   - wicket's CPU seconds per workload and its peak RSS.
 *
 * The payload is printable text, not /dev/zero: ssh does not compress here
 * (Compression=no) either way, and text keeps wicket's recording 1:1 in size.
 * The cipher (and the key exchange, curve25519-sha256) are forced on the
 * client's leg only; wicket <-> sshd uses whatever ssh2's Client negotiates.
 *
 * Needs root (the private sshd logs in as root), /usr/sbin/sshd, ssh, ssh-keygen.
 *
 *   npm run bench -- ssh
 *
 * Debugging aid: WICKET_BENCH_SSH_DIRECT_ONLY=1 measures the direct path only
 * (no wicket), e.g. to check the harness while the adapter is being built.
 */
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as pty from 'node-pty';
import { runIfMain, type BenchResult, type BenchRow } from './types.js';
import { QUIET, cpuSeconds, killAll, listenerPort, machineBusy, memStatus, onInterrupt, run, sampleRss, spawnTracked, stop, waitForQuiet } from './support/procs.js';
import { sshArgs, sshClientKey, sshdUnavailable, startSshd, type Sshd } from './support/sshd.js';

const HOST = '127.0.0.1';
const CIPHERS = ['aes128-gcm@openssh.com', 'chacha20-poly1305@openssh.com'] as const;
/**
 * OpenSSH's default sntrup761x25519 costs tens of ms per handshake on a small
 * machine and ssh2 (wicket's side) does not offer it: the same key exchange on
 * both paths keeps the login figures comparable.
 */
const KEX = 'curve25519-sha256';
type Cipher = (typeof CIPHERS)[number];
const PAYLOAD_BYTES = 200_000_000;
const THROUGHPUT_RUNS = 3;
const KEYSTROKES = 1000;
const WARMUP_KEYSTROKES = 50;
/** Pause between keystrokes: a person types with gaps, and back-to-back bytes would pipeline. */
const KEY_GAP_MS = 1;
const LOGINS = 20;
const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const MiB = 1024 * 1024;
const DIRECT_ONLY = process.env.WICKET_BENCH_SSH_DIRECT_ONLY === '1';

type Label = 'direct' | 'wicket';

interface Endpoint {
  readonly label: Label;
  readonly port: number;
  /** Login name: `root` direct, `bench@benchssh` through wicket. */
  readonly login: string;
  readonly keyPath: string;
  /** wicket's process (none for direct). */
  readonly pid?: number;
}

function log(line: string): void {
  process.stderr.write(`bench ssh: ${line}\n`);
}

const short = (c: Cipher): string => c.replace('@openssh.com', '');
const pct = (sorted: readonly number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
const median = (xs: readonly number[]): number => pct([...xs].sort((a, b) => a - b), 0.5);
const signed = (x: number): string => `${x >= 0 ? '+' : ''}${x.toFixed(1)}`;

/** OpenSSH >= 9.5 delays and pads keystrokes (ObscureKeystrokeTiming); turn it off where the client has it. */
let clientFlags: string[] = [];
async function probeClient(): Promise<void> {
  const r = await run('ssh', ['-G', '-F', '/dev/null', '-o', 'ObscureKeystrokeTiming=no', HOST], { allowFail: true });
  clientFlags = r.code === 0 ? ['-o', 'ObscureKeystrokeTiming=no'] : [];
}

function sshCommand(ep: Endpoint, cipher: Cipher, remote: string, extra: readonly string[] = []): string[] {
  return [
    ...sshArgs({ port: ep.port, keyPath: ep.keyPath, extra: ['-c', cipher, '-o', `KexAlgorithms=${KEX}`, '-o', 'Compression=no', ...clientFlags, ...extra] }),
    `${ep.login}@${HOST}`,
    remote,
  ];
}

function cpuOf(ep: Endpoint): number {
  if (!ep.pid) return 0;
  if (!existsSync(`/proc/${ep.pid}`)) throw new Error(`${ep.label} (pid ${ep.pid}) is no longer running`);
  return cpuSeconds(ep.pid);
}

function requireTools(): void {
  const why = sshdUnavailable();
  if (why) throw new Error(`cannot run the ssh bench: ${why}`);
  if (!DIRECT_ONLY && !existsSync(CLI)) throw new Error(`${CLI} is missing: build first (npm run bench builds)`);
}

/** Printable lines (so a recording of them stays the same size), exactly `bytes` long. */
function writePayload(file: string, bytes: number): void {
  const line = 'wicket ssh bench payload 0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ\n';
  const block = Buffer.from(line.repeat(Math.ceil(MiB / line.length)).slice(0, MiB));
  const fd = openSync(file, 'w');
  try {
    for (let left = bytes; left > 0; left -= block.length) writeSync(fd, block, 0, Math.min(left, block.length));
  } finally {
    closeSync(fd);
  }
}

// ---------------------------------------------------------------- wicket

async function startWicketChild(dir: string, sshd: Sshd, personPub: string, personKey: string): Promise<{ ep: Endpoint; child: ReturnType<typeof spawnTracked>; dataDir: string }> {
  const config = join(dir, 'wicket.yaml');
  const q = (s: string): string => JSON.stringify(s); // a JSON string is a YAML double-quoted scalar
  writeFileSync(config, [
    'data_dir: ./data',
    'store: sqlite',
    'listen: { ssh: "127.0.0.1:0" }',
    'segments:',
    '  - { name: bench }',
    'targets:',
    `  - { name: benchssh, segment: bench, protocol: ssh, address: "${HOST}:${sshd.port}", user: ${sshd.user},`,
    `      private_key: ${q(`file:${sshd.clientKeyPath}`)}, host_key: ${q(sshd.hostKeyLine)} }`,
    'roles:',
    '  - name: bencher',
    '    allow:',
    '      - { segments: [bench], protocols: [ssh], access: write }',
    'users:',
    `  - { name: bench, roles: [bencher], ssh_keys: [${q(personPub)}] }`,
    '',
  ].join('\n'));
  const child = spawnTracked(process.execPath, [CLI, 'serve', '--config', config]);
  const port = await listenerPort(child, 'ssh', '(WICKET_BENCH_SSH_DIRECT_ONLY=1 measures the direct path alone)');
  return { ep: { label: 'wicket', port, login: 'bench@benchssh', keyPath: personKey, pid: child.pid! }, child, dataDir: join(dir, 'data') };
}

// ---------------------------------------------------------------- workloads

/** `cat` of the payload file to our stdout counter; the byte count must be exact. */
async function throughputOnce(ep: Endpoint, cipher: Cipher, payload: string): Promise<number> {
  const child = spawnTracked('ssh', sshCommand(ep, cipher, `cat ${payload}`));
  let bytes = 0;
  child.stdout!.on('data', (d: Buffer) => { bytes += d.length; });
  const t0 = process.hrtime.bigint();
  const code = await new Promise<number | null>((resolve, reject) => { child.once('error', reject); child.once('close', resolve); });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (code !== 0) throw new Error(`ssh cat via ${ep.label} (${short(cipher)}) exited ${code}: ${child.tail().trim()}`);
  if (bytes !== PAYLOAD_BYTES) throw new Error(`ssh cat via ${ep.label} (${short(cipher)}): got ${bytes} bytes, expected ${PAYLOAD_BYTES}`);
  return bytes / MiB / seconds;
}

/**
 * Keystroke round trips: `ssh -tt` runs a remote `cat` in a raw, non-echoing
 * pty, so every byte we type comes back from the remote process itself (as a
 * shell's line editor would echo it). ssh puts our local pty in raw mode, so
 * nothing echoes locally.
 */
interface EchoProbe {
  /** Types one key and resolves with the ms until it came back. */
  roundTrip(key: string, what: string): Promise<number>;
  close(): void;
}

async function openEchoProbe(ep: Endpoint, cipher: Cipher): Promise<EchoProbe> {
  const args = sshCommand(ep, cipher, 'stty raw -echo; printf READY; exec cat', ['-tt']);
  const term = pty.spawn('ssh', args, { name: 'xterm-256color', cols: 80, rows: 24, cwd: tmpdir(), env: { ...process.env, TERM: 'xterm-256color' } as Record<string, string> });
  let screen = '';
  let waiter: (() => void) | null = null;
  term.onData((d) => {
    screen += d;
    waiter?.();
  });
  let exited = false;
  term.onExit(() => { exited = true; waiter?.(); });
  const until = (test: () => boolean, what: string, timeoutMs = 10_000): Promise<void> =>
    new Promise((resolve, reject) => {
      const check = (): void => {
        if (test()) { clearTimeout(t); waiter = null; resolve(); }
        else if (exited) { clearTimeout(t); waiter = null; reject(new Error(`ssh -tt via ${ep.label} exited while waiting for ${what}; screen: ${JSON.stringify(screen.slice(-500))}`)); }
      };
      const t = setTimeout(() => { waiter = null; reject(new Error(`timed out waiting for ${what} via ${ep.label}; screen: ${JSON.stringify(screen.slice(-500))}`)); }, timeoutMs);
      waiter = check;
      check();
    });
  const close = (): void => {
    try { term.kill(); } catch { /* already gone */ }
  };
  try {
    await until(() => screen.includes('READY'), 'the remote cat to start', 20_000);
  } catch (e) {
    close();
    throw e;
  }
  return {
    async roundTrip(key, what) {
      screen = '';
      const t0 = process.hrtime.bigint();
      term.write(key);
      await until(() => screen.includes(key), what);
      return Number(process.hrtime.bigint() - t0) / 1e6;
    },
    close,
  };
}

/**
 * Keystrokes on every endpoint in lockstep: one key to each path in turn (the
 * order alternating), so a burst of other load on this small machine lands on
 * both series alike instead of on whichever happened to be measured then.
 * Returns ms per keystroke per endpoint (after a warmup).
 */
async function echoLatencies(eps: readonly Endpoint[], cipher: Cipher): Promise<Map<Label, number[]>> {
  const probes: { ep: Endpoint; probe: EchoProbe }[] = [];
  try {
    for (const ep of eps) probes.push({ ep, probe: await openEchoProbe(ep, cipher) });
    const out = new Map<Label, number[]>(eps.map((ep) => [ep.label, []]));
    for (let i = 0; i < WARMUP_KEYSTROKES + KEYSTROKES; i++) {
      const key = String.fromCharCode(97 + (i % 26));
      const order = i % 2 === 0 ? probes : [...probes].reverse();
      for (const { ep, probe } of order) {
        const ms = await probe.roundTrip(key, `the echo of keystroke ${i}`);
        if (i >= WARMUP_KEYSTROKES) out.get(ep.label)!.push(ms);
        await new Promise((r) => setTimeout(r, KEY_GAP_MS));
      }
    }
    return out;
  } finally {
    for (const { probe } of probes) probe.close();
  }
}

async function loginOnce(ep: Endpoint, cipher: Cipher): Promise<number> {
  const r = await run('ssh', sshCommand(ep, cipher, 'true'));
  return r.seconds * 1000;
}

// ---------------------------------------------------------------- the bench

interface CipherResult {
  mibps: Record<Label, number[]>;
  echo: Record<Label, { p50: number; p99: number; max: number }>;
  login: Record<Label, { median: number; p95: number }>;
  /** wicket CPU seconds per workload. */
  cpu: { throughput: number; echo: number; login: number };
}

export async function benchSsh(): Promise<BenchResult> {
  const t0 = Date.now();
  requireTools();
  const cores = availableParallelism();
  const { busyBefore, waitedS: waited } = await waitForQuiet(log);

  const dir = mkdtempSync(join(tmpdir(), 'wicket-bench-ssh-'));
  let sshd: Sshd | null = null;
  const unhook = onInterrupt(() => {
    if (sshd) { try { process.kill(sshd.pid, 'SIGKILL'); } catch { /* gone */ } }
    rmSync(dir, { recursive: true, force: true });
    if (sshd) rmSync(sshd.dir, { recursive: true, force: true });
  });
  try {
    await probeClient();
    sshd = await startSshd({ spawn: spawnTracked });
    const payload = join(sshd.dir, 'payload.txt');
    writePayload(payload, PAYLOAD_BYTES);
    const person = sshClientKey(dir, 'bench-person');
    const direct: Endpoint = { label: 'direct', port: sshd.port, login: sshd.user, keyPath: sshd.clientKeyPath };
    const eps: Endpoint[] = [direct];
    let w: Awaited<ReturnType<typeof startWicketChild>> | null = null;
    if (DIRECT_ONLY) {
      log('WICKET_BENCH_SSH_DIRECT_ONLY=1: direct path only');
    } else {
      mkdirSync(join(dir, 'wicket'));
      w = await startWicketChild(join(dir, 'wicket'), sshd, person.pub, person.path);
      eps.push(w.ep);
    }
    const idleRss = w ? memStatus(w.ep.pid!).rssKiB : 0;
    log(`sshd on :${sshd.port} (pid ${sshd.pid})${w ? `, wicket on :${w.ep.port} (pid ${w.ep.pid}, ${(idleRss / 1024).toFixed(1)} MiB RSS idle)` : ''}`);

    for (const ep of eps) for (const c of CIPHERS) for (let i = 0; i < 2; i++) await loginOnce(ep, c); // warm both ends

    const results = {} as Record<Cipher, CipherResult>;
    let rssPeakDuringThroughput = 0;
    for (const cipher of CIPHERS) {
      const r: CipherResult = {
        mibps: { direct: [], wicket: [] }, echo: {} as CipherResult['echo'], login: {} as CipherResult['login'], cpu: { throughput: 0, echo: 0, login: 0 },
      };
      log(`${short(cipher)}: throughput, ${THROUGHPUT_RUNS} x ${PAYLOAD_BYTES / 1e6} MB each way`);
      const sampler = w ? sampleRss(w.ep.pid!, 50) : null;
      for (let i = 0; i < THROUGHPUT_RUNS; i++) {
        for (const ep of eps) {
          const c0 = cpuOf(ep);
          r.mibps[ep.label].push(await throughputOnce(ep, cipher, payload));
          r.cpu.throughput += ep.pid ? cpuOf(ep) - c0 : 0;
        }
      }
      if (sampler) rssPeakDuringThroughput = Math.max(rssPeakDuringThroughput, sampler.stop());

      log(`${short(cipher)}: ${KEYSTROKES} keystrokes`);
      const echoCpu0 = w ? cpuOf(w.ep) : 0;
      const echoes = await echoLatencies(eps, cipher);
      if (w) r.cpu.echo = cpuOf(w.ep) - echoCpu0;
      for (const ep of eps) {
        const ms = [...echoes.get(ep.label)!].sort((a, b) => a - b);
        r.echo[ep.label] = { p50: pct(ms, 0.5), p99: pct(ms, 0.99), max: ms[ms.length - 1]! };
      }

      log(`${short(cipher)}: ${LOGINS} logins`);
      const logins: Record<Label, number[]> = { direct: [], wicket: [] };
      for (let i = 0; i < LOGINS; i++) {
        for (const ep of eps) {
          const c0 = cpuOf(ep);
          logins[ep.label].push(await loginOnce(ep, cipher));
          r.cpu.login += ep.pid ? cpuOf(ep) - c0 : 0;
        }
      }
      for (const ep of eps) {
        const s = [...logins[ep.label]].sort((a, b) => a - b);
        r.login[ep.label] = { median: pct(s, 0.5), p95: pct(s, 0.95) };
      }
      results[cipher] = r;
    }

    const wicketMem = w ? memStatus(w.ep.pid!) : null;
    const wicketCpuTotal = w ? cpuOf(w.ep) : 0;
    if (w) await stop(w.child, 10_000);
    const busyEnd = await machineBusy(1000); // after wicket stopped: it may still be writing recordings before
    const dataBytes = w ? Number((await run('du', ['-sb', w.dataDir])).stdout.split(/\s/)[0]) : 0;
    const seconds = (Date.now() - t0) / 1000;

    const rows: BenchRow[] = [];
    for (const cipher of CIPHERS) {
      const r = results[cipher];
      const c = short(cipher);
      for (const ep of eps) {
        const xs = r.mibps[ep.label];
        rows.push({ metric: `throughput ${c}: ${ep.label}`, value: median(xs), unit: 'MiB/s', note: `ssh host cat ${PAYLOAD_BYTES / 1e6} MB; median of ${THROUGHPUT_RUNS} (${xs.map((x) => x.toFixed(0)).join(', ')})` });
      }
      if (w) {
        rows.push({ metric: `throughput ${c}: wicket / direct`, value: median(r.mibps.wicket) / median(r.mibps.direct), unit: 'ratio', note: 'target >= 0.5' });
      }
      for (const ep of eps) {
        const e = r.echo[ep.label];
        rows.push({ metric: `keystroke echo ${c}: ${ep.label}`, value: e.p50, unit: 'ms (p50)', note: `p99 ${e.p99.toFixed(3)} ms, max ${e.max.toFixed(2)} ms; ${KEYSTROKES} keys to a remote cat in a raw pty, interleaved with the other path` });
      }
      if (w) {
        rows.push(
          { metric: `keystroke echo ${c}: added by wicket, p50`, value: r.echo.wicket.p50 - r.echo.direct.p50, unit: 'ms' },
          { metric: `keystroke echo ${c}: added by wicket, p99`, value: r.echo.wicket.p99 - r.echo.direct.p99, unit: 'ms', note: 'target <= 1' },
        );
      }
      for (const ep of eps) {
        const l = r.login[ep.label];
        rows.push({ metric: `login ${c}: ${ep.label}`, value: l.median, unit: 'ms (median)', note: `p95 ${l.p95.toFixed(1)} ms; ${LOGINS} x ssh host true (process start, kex, publickey, exec)` });
      }
      if (w) {
        rows.push(
          { metric: `login ${c}: wicket / direct`, value: r.login.wicket.median / r.login.direct.median, unit: 'ratio', note: `${signed(r.login.wicket.median - r.login.direct.median)} ms; through wicket = person's handshake + wicket's own to sshd` },
          { metric: `wicket CPU ${c}: throughput`, value: r.cpu.throughput, unit: 's', note: `${((r.cpu.throughput / (THROUGHPUT_RUNS * PAYLOAD_BYTES)) * 1e9).toFixed(2)} s per GB relayed (decrypt + re-encrypt + record)` },
          { metric: `wicket CPU ${c}: keystrokes`, value: r.cpu.echo, unit: 's', note: `${((r.cpu.echo / (WARMUP_KEYSTROKES + KEYSTROKES)) * 1e6).toFixed(0)} µs per keystroke round trip` },
          { metric: `wicket CPU ${c}: logins`, value: r.cpu.login, unit: 's', note: `${((r.cpu.login / LOGINS) * 1e3).toFixed(1)} ms per login` },
        );
      }
    }
    if (w && wicketMem) {
      rows.push(
        { metric: 'wicket CPU, whole run', value: wicketCpuTotal, unit: 's', note: 'user + system, from start to the end of the last workload' },
        { metric: 'wicket RSS idle (after start)', value: idleRss / 1024, unit: 'MiB' },
        { metric: 'wicket RSS peak during throughput', value: rssPeakDuringThroughput / 1024, unit: 'MiB', note: 'VmRSS sampled every 50 ms' },
        { metric: 'wicket peak RSS (VmHWM, whole run)', value: wicketMem.hwmKiB / 1024, unit: 'MiB' },
        { metric: 'wicket data dir after the run', value: dataBytes / MiB, unit: 'MiB', note: `store + recordings of ${CIPHERS.length * (THROUGHPUT_RUNS + 1 + LOGINS + 2)} sessions` },
      );
    }
    rows.push(
      { metric: 'other load on the machine: before / at end', value: Math.max(busyBefore, busyEnd) * 100, unit: '% of all CPUs (max)',
        note: `${(busyBefore * 100).toFixed(0)}% / ${(busyEnd * 100).toFixed(0)}% of ${cores} CPUs while the bench was idle; above ~${QUIET * 100}% every figure is skewed` },
      { metric: 'bench wall time', value: seconds, unit: 's',
        note: `includes ${waited.toFixed(0)} s waiting for a quiet machine; client leg forced to -c CIPHER and ${KEX}, the wicket -> sshd leg negotiates its own${DIRECT_ONLY ? '; DIRECT ONLY (WICKET_BENCH_SSH_DIRECT_ONLY=1)' : ''}` },
    );
    return { name: `ssh: relay throughput, keystroke latency and login time (direct${DIRECT_ONLY ? ' only' : ' vs wicket'})`, rows };
  } finally {
    // sshd first: it ends its sessions while they are still its children (killAll would orphan them).
    await sshd?.stop();
    await killAll();
    rmSync(dir, { recursive: true, force: true });
    unhook();
  }
}

runIfMain(import.meta.url, 'ssh', benchSsh);
