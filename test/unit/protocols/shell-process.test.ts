import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type LocalProcess,
  type ShellSpawn,
  SFTP_SERVER_PATHS,
  buildArgv,
  groupsOf,
  parsePasswd,
  spawnLocal,
} from '../../../protocols/shell/index.js';
import { isWicketError } from '../../../src/errors.js';

const BASH = ['/bin/bash', '--norc', '--noprofile'];
const INTERACTIVE = [...BASH, '-i'];
const isRoot = process.getuid?.() === 0;
const passwd = parsePasswd(readFileSync('/etc/passwd', 'utf8'));
const nobody = passwd.find((a) => a.name === 'nobody');
const sftpServer = SFTP_SERVER_PATHS.find((p) => existsSync(p));

interface Run {
  readonly proc: LocalProcess;
  readonly stdout: () => string;
  readonly stderr: () => string;
  readonly exit: Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }>;
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
}

const live = new Set<LocalProcess>();

function run(spec: ShellSpawn): Run {
  const proc = spawnLocal(spec);
  live.add(proc);
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const waiters = new Set<() => void>();
  const stdout = () => Buffer.concat(out).toString('utf8');
  const stderr = () => Buffer.concat(err).toString('utf8');
  proc.onStdout((d) => { out.push(d); for (const w of waiters) w(); });
  proc.onStderr((d) => { err.push(d); });
  const exit = new Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }>((resolve) => {
    proc.onExit((code, signal) => { live.delete(proc); resolve({ code, signal, stdout: stdout(), stderr: stderr() }); });
  });
  const waitFor = (pattern: RegExp, timeoutMs = 5000) => new Promise<RegExpMatchArray>((resolve, reject) => {
    const check = () => {
      const m = stdout().match(pattern);
      if (!m) return;
      waiters.delete(check);
      clearTimeout(timer);
      resolve(m);
    };
    const timer = setTimeout(() => {
      waiters.delete(check);
      reject(new Error(`timed out waiting for ${pattern}; output so far: ${JSON.stringify(stdout())}`));
    }, timeoutMs);
    waiters.add(check);
    check();
  });
  return { proc, stdout, stderr, exit, waitFor };
}

const exec = (cmd: string, extra: Partial<ShellSpawn> = {}) => run({ command: BASH, exec: cmd, ...extra });
const pty = (extra: Partial<ShellSpawn> = {}) =>
  run({ command: INTERACTIVE, pty: { term: 'xterm-256color', cols: 80, rows: 24 }, ...extra });

/** Descriptors of this process that are pty masters. */
function ptyMasters(): number {
  return readdirSync('/proc/self/fd').filter((fd) => {
    try { return readlinkSync(`/proc/self/fd/${fd}`) === '/dev/ptmx'; } catch { return false; }
  }).length;
}

/** Children of this process that are zombies (exited, not reaped). */
function zombieChildren(): number[] {
  const out: number[] = [];
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (state === 'Z' && Number(ppid) === process.pid) out.push(Number(pid));
    } catch { /* gone */ }
  }
  return out;
}

let dir: string;
let mastersBefore = 0;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'wicket-shell-'));
  mastersBefore = ptyMasters();
});
afterAll(() => {
  for (const p of live) p.kill();
  rmSync(dir, { recursive: true, force: true });
});

describe('pty', () => {
  it('runs an interactive bash: input, resize, exit code', async () => {
    const r = pty();
    r.proc.write(Buffer.from('echo $((6*7))\r'));
    await r.waitFor(/\r42\r\n/);
    r.proc.resize(101, 33);
    r.proc.write(Buffer.from('stty size\r'));
    await r.waitFor(/33 101/);
    r.proc.write(Buffer.from('exit 3\r'));
    const e = await r.exit;
    expect(e).toMatchObject({ code: 3, signal: null, stderr: '' });
  });

  it('delivers all output before onExit', async () => {
    const r = run({ command: BASH, exec: 'head -c 200000 /dev/zero | tr "\\0" x; echo END', pty: { term: 'xterm', cols: 80, rows: 24 } });
    const e = await r.exit;
    expect(e.code).toBe(0);
    const text = e.stdout.replace(/\r?\n/g, '');
    expect({ length: text.length, xs: /^x+END$/.test(text), tail: text.slice(-40) }).toEqual({ length: 200003, xs: true, tail: `${'x'.repeat(37)}END` });
  });

  it('loses no output when many sessions end at once', async () => {
    const runs = Array.from({ length: 8 }, () =>
      run({ command: BASH, exec: 'head -c 100000 /dev/zero | tr "\\0" x; echo END', pty: { term: 'xterm', cols: 80, rows: 24 } }));
    for (const e of await Promise.all(runs.map((r) => r.exit))) {
      expect(e.stdout.replace(/\r?\n/g, '')).toHaveLength(100003);
      expect(e.stdout.endsWith('END\r\n')).toBe(true);
    }
  });

  it('sets TERM from the pty request and runs in a new session', async () => {
    const r = run({ command: BASH, exec: 'echo "T=$TERM"; ps -o sid= -p $$', pty: { term: 'vt100', cols: 80, rows: 24 } });
    const e = await r.exit;
    expect(e.stdout).toContain('T=vt100');
    expect(Number(e.stdout.trim().split(/\s+/).pop())).toBe(r.proc.pid);
  });

  it('kill() hangs up the shell', async () => {
    const r = pty();
    r.proc.write(Buffer.from('echo rea""dy\r'));
    await r.waitFor(/ready\r\n/);
    r.proc.kill();
    r.proc.kill();
    const e = await r.exit;
    expect(e.code).toBeNull();
    expect(e.signal).toBe('HUP');
  });
});

describe('exec without a pty', () => {
  it('keeps stdout and stderr apart and reports the exit code', async () => {
    const e = await exec('echo out; echo err >&2; exit 4').exit;
    expect(e).toEqual({ code: 4, signal: null, stdout: 'out\n', stderr: 'err\n' });
  });

  it('pipes 1 MB of stdin exactly, then EOF', async () => {
    const file = join(dir, 'in.bin');
    const data = randomBytes(1024 * 1024);
    const r = exec(`cat > ${file}`);
    let waits = 0;
    let drained = () => {};
    r.proc.onDrain(() => drained());
    for (let i = 0; i < data.length; i += 32 * 1024) {
      if (!r.proc.write(data.subarray(i, i + 32 * 1024))) {
        waits++;
        await new Promise<void>((res) => { drained = res; });
      }
    }
    r.proc.endInput();
    expect(waits).toBeGreaterThan(0); // a pipe holds 64 KiB: write() asked us to wait
    expect((await r.exit).code).toBe(0);
    expect(readFileSync(file).equals(data)).toBe(true);
  });

  it('does not inherit the broker environment', async () => {
    process.env.WICKET_SECRET_TEST = 'xyz';
    try {
      const e = await exec('env', { env: { LANG: 'C.UTF-8', PATH: '/evil', LC_TIME: 'C', LD_PRELOAD: '/x.so', BASH_ENV: '/x' } }).exit;
      expect(e.stdout).not.toMatch(/LD_PRELOAD|BASH_ENV|\/evil/);
      expect(e.stdout).not.toContain('WICKET_SECRET_TEST');
      expect(e.stdout).not.toContain('xyz');
      const vars = new Map(e.stdout.trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
      expect(vars.get('PATH')).toBe('/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin');
      expect(vars.get('LANG')).toBe('C.UTF-8');
      expect(vars.get('LC_TIME')).toBe('C');
      expect(vars.has('TERM')).toBe(false);
      for (const k of ['HOME', 'USER', 'LOGNAME', 'SHELL']) expect(vars.has(k)).toBe(true);
    } finally {
      delete process.env.WICKET_SECRET_TEST;
    }
  });

  it('passes only stdin, stdout and stderr to the child, not other sessions\' terminals', async () => {
    const other = pty(); // its master descriptor is open in this process and not close-on-exec
    other.proc.write(Buffer.from('echo $((1+1))\r'));
    await other.waitFor(/\r2\r\n/);
    // ls itself opens one descriptor to read the directory
    const e = await exec('ls /proc/self/fd').exit;
    expect(e.stdout.trim().split('\n').map(Number).filter((n) => n > 3)).toEqual([]);
    const p = await run({ command: BASH, exec: 'ls /proc/self/fd', pty: { term: 'xterm', cols: 80, rows: 24 } }).exit;
    expect(p.stdout.trim().split(/\s+/).map(Number).filter((n) => n > 3)).toEqual([]);
    other.proc.kill();
    await other.exit;
  });

  it('signal INT ends sleep with signal INT', async () => {
    const r = exec('sleep 30');
    await new Promise((res) => setTimeout(res, 200));
    r.proc.signal('BOGUS'); // ignored
    r.proc.signal('INT');
    expect(await r.exit).toMatchObject({ code: null, signal: 'INT' });
  });

  it('kill() ends the whole process group', async () => {
    const r = exec('sleep 30 & echo $!; wait');
    const bg = Number((await r.waitFor(/^(\d+)\n/))[1]);
    r.proc.kill();
    await r.exit;
    await new Promise((res) => setTimeout(res, 100));
    expect(existsSync(`/proc/${bg}`) && !readFileSync(`/proc/${bg}/stat`, 'utf8').includes(') Z ')).toBe(false);
  });

  it('does not wait forever for a background process holding stdout', async () => {
    const started = Date.now();
    const e = await exec('(sleep 5 & echo $! >&2) ; echo done').exit;
    expect(e).toMatchObject({ code: 0, stdout: 'done\n' });
    expect(Date.now() - started).toBeLessThan(3000);
    process.kill(Number(e.stderr.trim()), 'SIGTERM');
  });

  it('holds output while paused and fires onExit after resume', async () => {
    const r = exec('echo one; echo two');
    r.proc.pause();
    let exited = false;
    void r.exit.then(() => { exited = true; });
    await new Promise((res) => setTimeout(res, 300));
    expect(r.stdout()).toBe('');
    expect(exited).toBe(false);
    r.proc.resume();
    expect((await r.exit).stdout).toBe('one\ntwo\n');
  });
});

describe('refusals', () => {
  it('refuses exec when the command is not a shell', () => {
    expect(() => spawnLocal({ command: ['/bin/cat'], exec: 'ls' })).toThrow(/shell/);
    try { spawnLocal({ command: ['/bin/cat'], exec: 'ls' }); } catch (e) { expect(isWicketError(e, 'WICKET_ERR_CONFIG')).toBe(true); }
  });

  it('refuses an unknown user and a missing program', () => {
    expect(() => spawnLocal({ command: BASH, user: 'no-such-user-wicket' })).toThrow(/no-such-user-wicket.*does not exist/);
    expect(() => spawnLocal({ command: ['/nonexistent/prog'] })).toThrow(/not an executable/);
  });

  it('builds `command -c exec` for shells', () => {
    expect(buildArgv({ command: ['/bin/bash', '-l'], exec: 'ls -la' })).toEqual(['/bin/bash', '-l', '-c', 'ls -la']);
    expect(buildArgv({ command: ['sh'], exec: 'id' })).toEqual([expect.stringMatching(/\/sh$/), '-c', 'id']);
  });

  it('parses passwd and group files', () => {
    expect(parsePasswd('# c\nalice:x:1000:1000:Alice:/home/alice:/bin/bash\n+nis\nbad:x:z:1::/:/bin/sh\n'))
      .toEqual([{ name: 'alice', uid: 1000, gid: 1000, home: '/home/alice', shell: '/bin/bash' }]);
    expect(groupsOf('alice:x:1000:\nsudo:x:27:bob,alice\nwheel:x:10:bob\n', 'alice', 1000)).toEqual([1000, 27]);
  });
});

describe.skipIf(!isRoot || !nobody)('user drop (root only, uses the existing nobody account)', () => {
  it('runs exec as nobody with only its own groups', async () => {
    const e = await exec('id -u; id -G; echo "$HOME $USER"; pwd', { user: 'nobody' }).exit;
    const [uid, groups, ident, cwd] = e.stdout.trim().split('\n');
    expect(uid).toBe(String(nobody!.uid));
    expect(groups!.split(' ')).not.toContain('0');
    expect(ident).toBe(`${nobody!.home} nobody`);
    expect(cwd).toBe(existsSync(nobody!.home) ? nobody!.home : '/');
  });

  it('runs a pty as nobody without root groups', async () => {
    const r = pty({ user: 'nobody' });
    r.proc.write(Buffer.from('echo "U=$(id -u) G=$(id -G) F=$(echo $(ls /proc/self/fd))"\r'));
    const m = await r.waitFor(/U=(\d+) G=([\d ]+) F=([\d ]+)\r\n/);
    expect(m[1]).toBe(String(nobody!.uid));
    expect(m[2]!.split(' ')).not.toContain('0');
    expect(m[3]!.split(' ').map(Number).filter((n) => n > 3 && n !== 255)).toEqual([]); // 255: bash's own tty
    r.proc.write(Buffer.from('exit\r'));
    expect((await r.exit).code).toBe(0);
  });
});

describe('sftp subsystem', () => {
  it.skipIf(!sftpServer)('answers SSH_FXP_INIT with SSH_FXP_VERSION (needs OpenSSH sftp-server: apt-get install openssh-server)', async () => {
    const r = run({ command: ['/bin/bash', '-l'], subsystem: 'sftp', ...(isRoot && nobody ? { user: 'nobody' } : {}) });
    const init = Buffer.alloc(9);
    init.writeUInt32BE(5, 0);
    init.writeUInt8(1, 4); // SSH_FXP_INIT
    init.writeUInt32BE(3, 5); // version 3
    r.proc.write(init);
    const reply = await new Promise<Buffer>((resolve) => {
      let buf = Buffer.alloc(0);
      r.proc.onStdout((d) => {
        buf = Buffer.concat([buf, d]);
        if (buf.length >= 4 && buf.length >= 4 + buf.readUInt32BE(0)) resolve(buf);
      });
    });
    expect(reply.readUInt8(4)).toBe(2); // SSH_FXP_VERSION
    expect(reply.readUInt32BE(5)).toBe(3);
    r.proc.endInput();
    expect((await r.exit).code).toBe(0);
  });
});

describe('cleanup', () => {
  it('leaves no pty descriptors or zombie children behind', async () => {
    expect(live.size).toBe(0);
    await new Promise((res) => setTimeout(res, 100));
    expect(ptyMasters()).toBe(mastersBefore);
    expect(zombieChildren()).toEqual([]);
  });
});
