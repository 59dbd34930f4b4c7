/**
 * The private sshd the SSH adapter's tests and benchmark run against: the
 * real OpenSSH clients reach it directly with the authorized key (exec with
 * exit status, scp in SFTP and legacy mode, sftp batch), nothing else gets in,
 * the forwarding option does what it says, and stop() leaves nothing behind.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tmpDir } from '../support/cli.js';
import { runClient, sshArgs, sshClientKey, sshdUnavailable, startSshd, type Sshd } from '../support/sshd.js';

const unavailable = sshdUnavailable();
if (unavailable) console.warn(`sshd-support: skipped: ${unavailable}`);

const sha256 = (file: string): string => createHash('sha256').update(readFileSync(file)).digest('hex');

describe.skipIf(unavailable !== null)(`private sshd${unavailable ? ` (skipped: ${unavailable})` : ''}`, () => {
  let sshd: Sshd;
  let local: string;
  let dest: string;
  const args = (extra: string[] = []): string[] => sshArgs({ port: sshd.port, keyPath: sshd.clientKeyPath, extra });

  beforeAll(async () => {
    sshd = await startSshd();
    local = tmpDir('wicket-sshd-client-');
    dest = `${sshd.user}@127.0.0.1`;
  });
  afterAll(async () => {
    await sshd?.stop();
    if (local) rmSync(local, { recursive: true, force: true });
  });

  it('exposes keys in the forms wicket config wants', () => {
    expect(sshd.user).toBe('root');
    expect(sshd.hostKeyLine).toMatch(/^ssh-ed25519 [A-Za-z0-9+/=]+$/);
    expect(sshd.clientKeyPub).toMatch(/^ssh-ed25519 [A-Za-z0-9+/=]+ \S+$/);
    expect(readFileSync(sshd.clientKeyPath, 'utf8')).toContain('BEGIN OPENSSH PRIVATE KEY');
  });

  it('runs a command with the authorized key and passes its exit status back', async () => {
    const r = await runClient('ssh', [...args(), dest, 'echo ok; exit 3']);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('ok\n');
    expect(r.code).toBe(3);
  });

  it('presents the host key it reports', async () => {
    const r = await runClient('ssh-keyscan', ['-t', 'ed25519', '-p', String(sshd.port), '127.0.0.1']);
    expect(r.code).toBe(0);
    const line = r.stdout.split('\n').find((l) => l.includes('ssh-ed25519'));
    expect(line?.split(' ').slice(1, 3).join(' ')).toBe(sshd.hostKeyLine);
  });

  it('refuses a key it does not know', async () => {
    const stranger = sshClientKey(local, 'stranger');
    expect(stranger.pub).toMatch(/^ssh-ed25519 \S+ wicket-test-stranger$/);
    const r = await runClient('ssh', [...sshArgs({ port: sshd.port, keyPath: stranger.path }), dest, 'true']);
    expect(r.code).toBe(255);
    expect(r.stderr).toMatch(/Permission denied/);
  });

  for (const [mode, flag] of [['SFTP', []], ['legacy (-O)', ['-O']]] as const) {
    it(`copies 1 MB both ways with scp, ${mode} mode`, async () => {
      const tag = flag.length ? 'legacy' : 'sftp';
      const src = join(local, `up-${tag}.bin`);
      writeFileSync(src, randomBytes(1024 * 1024));
      const remote = join(sshd.dir, `scp-${tag}.bin`);
      const up = await runClient('scp', [...flag, ...args(), src, `${dest}:${remote}`]);
      expect(up.stderr).toBe('');
      expect(up.code).toBe(0);
      expect(sha256(remote)).toBe(sha256(src));
      const back = join(local, `down-${tag}.bin`);
      const down = await runClient('scp', [...flag, ...args(), `${dest}:${remote}`, back]);
      expect(down.code).toBe(0);
      expect(sha256(back)).toBe(sha256(src));
    });
  }

  it('runs an sftp batch (put, ls, get)', async () => {
    const src = join(local, 'sftp-up.bin');
    writeFileSync(src, randomBytes(1024 * 1024));
    const remote = join(sshd.dir, 'sftp.bin');
    const back = join(local, 'sftp-down.bin');
    const batch = join(local, 'batch');
    writeFileSync(batch, [`put ${src} ${remote}`, `ls -l ${remote}`, `get ${remote} ${back}`, ''].join('\n'));
    const r = await runClient('sftp', ['-b', batch, ...args(), dest]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('sftp.bin');
    expect(sha256(remote)).toBe(sha256(src));
    expect(sha256(back)).toBe(sha256(src));
  });

  it('refuses TCP forwarding unless asked to allow it', async () => {
    const denied = await runClient('ssh', [...args(['-W', `127.0.0.1:${sshd.port}`]), dest], { timeoutMs: 10_000 });
    expect(denied.code).toBe(255);
    expect(denied.stderr).toMatch(/stdio forwarding failed|administratively prohibited/);

    const open = await startSshd({ allowTcpForwarding: true, extraConfig: ['LogLevel VERBOSE'] });
    try {
      expect(readFileSync(join(open.dir, 'sshd_config'), 'utf8')).toMatch(/^LogLevel VERBOSE$/m);
      // -W relays stdio to the target: the first thing back is sshd's own banner.
      const r = await runClient('ssh', [...sshArgs({ port: open.port, keyPath: open.clientKeyPath, extra: ['-W', `127.0.0.1:${open.port}`] }), dest], { timeoutMs: 10_000 });
      expect(r.stdout).toMatch(/^SSH-2\.0-OpenSSH/);
    } finally {
      await open.stop();
    }
  });

  it('stop() ends open sessions, frees the port and removes its dir', async () => {
    const s = await startSshd();
    const session = runClient('ssh', [...sshArgs({ port: s.port, keyPath: s.clientKeyPath }), dest, 'echo started; sleep 600'], { timeoutMs: 20_000 });
    for (let i = 0; i < 200 && !s.log().includes('Accepted publickey'); i++) await new Promise((r) => setTimeout(r, 25));
    await s.stop();
    const r = await session;
    expect(r.code).not.toBe(0);
    expect(r.stderr).not.toMatch(/killed after/);
    expect(existsSync(s.dir)).toBe(false);
    const refused = await new Promise<boolean>((resolve) => {
      const c = net.connect(s.port, '127.0.0.1');
      c.once('connect', () => { c.destroy(); resolve(false); });
      c.once('error', () => resolve(true));
    });
    expect(refused).toBe(true);
    await s.stop(); // idempotent
  });
});
