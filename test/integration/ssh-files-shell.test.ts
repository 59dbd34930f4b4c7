/**
 * Interactive shells (ssh -tt in a pty), scp in both modes, sftp, and a
 * local `shell` target, through wicket with the real OpenSSH clients.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runClient, sshArgs, sshdUnavailable } from '../support/sshd.js';
import { spawnPty } from '../support/pty.js';
import { auditEvents, eventually, sessionsOf, startSshWorld, type SshWorld } from '../support/wicket-ssh.js';
import { castToText, readCast } from '../../recordings/reader.js';

const skip = sshdUnavailable();
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const MB = 1024 * 1024;

describe.skipIf(skip !== null)('ssh through wicket: shells and files', () => {
  let w: SshWorld;
  beforeAll(async () => {
    w = await startSshWorld();
  });
  afterAll(async () => {
    await w?.stop();
  });

  const sshPty = (login: string, extra: string[] = []): ReturnType<typeof spawnPty> =>
    spawnPty('ssh', [...sshArgs({ port: w.port, keyPath: w.aliceKey }), '-tt', ...extra, `${login}@127.0.0.1`], { cols: 100, rows: 30 });

  it('records an interactive shell: echo, edited command lines, a secret that is not echoed, resize, Ctrl-C', async () => {
    const p = sshPty('alice@web-1', []);
    try {
      await p.waitFor(/[#$] $/m, { timeoutMs: 15_000 });
      // A person waits for the prompt, then types one key at a time.
      const type = async (keys: string): Promise<void> => {
        for (const k of keys) {
          p.write(k);
          await new Promise((r) => setTimeout(r, 10));
        }
      };
      const line = async (keys: string, expectText: string): Promise<void> => {
        const from = p.output().length;
        await type(keys);
        await p.waitFor(expectText, { from });
        await p.waitFor(/wk> $/, { from });
      };
      p.write('export PS1="wk> "\r');
      await p.waitFor(/wk> $/);
      await line('echo hello-$((40+2))\r', 'hello-42');
      await line('echo tpyo\x7f\x7f\x7fypo-fixed\r', 'typo-fixed');
      let from = p.output().length;
      await type('read -s -p "secret: " S; echo got-${#S}\r');
      await p.waitFor('secret: ', { from });
      await type('hunter2-very-secret\r');
      await p.waitFor('got-19', { from });
      await p.waitFor(/wk> $/, { from });
      p.resize(120, 40);
      await new Promise((r) => setTimeout(r, 200));
      await line('stty size\r', '40 120');
      from = p.output().length;
      await type('sleep 30\r');
      await new Promise((r) => setTimeout(r, 300));
      p.write('\x03');
      await p.waitFor(/wk> $/, { from });
      p.write('exit\r');
      await p.exited;
    } finally {
      p.kill();
    }
    const s = await eventually('the shell session to end', async () => (await sessionsOf(w)).find((x) => x.target === 'web-1' && (x.meta as { channel?: string }).channel === 'shell' && x.endedAt !== null));
    const cast = await readCast(join(w.dataDir, s.recordingPath!));
    const text = castToText(cast.events);
    expect(text).toContain('hello-42');
    expect(cast.events.some((e) => e.code === 'r' && e.data === '120x40')).toBe(true);
    const input = cast.events.filter((e) => e.code === 'i').map((e) => e.data).join('');
    expect(input).not.toContain('hunter2');
    expect(JSON.stringify(cast)).not.toContain('hunter2');
    const commands = (await w.running.store.sessionEvents(s.id)).filter((e) => e.kind === 'command').map((e) => (e.data as { command: string }).command);
    expect(commands).toContain('echo hello-$((40+2))');
    expect(commands).toContain('echo typo-fixed');
    expect(commands).toContain('stty size');
    expect(commands.join('\n')).not.toContain('hunter2');
  });

  it('copies a 50 MB file both ways with scp (SFTP mode and legacy -O) and sftp, recording file events', async () => {
    const data = randomBytes(50 * MB);
    const local = join(w.dir, 'big.bin');
    writeFileSync(local, data);
    const scpArgs = sshArgs({ port: w.port, keyPath: w.aliceKey });
    for (const mode of [[], ['-O']]) {
      // Same base name both sides: legacy scp never tells the server whether the target is a directory.
      const name = `up${mode.length}.bin`;
      const remote = join(w.sshd.dir, name);
      const source = join(w.dir, name);
      writeFileSync(source, data);
      const up = await runClient('scp', [...scpArgs, ...mode, source, `alice@web-1@127.0.0.1:${remote}`], { timeoutMs: 120_000 });
      expect(up.stderr).toBe('');
      expect(up.code).toBe(0);
      expect(sha(readFileSync(remote))).toBe(sha(data));
      const back = join(w.dir, `down${mode.length}.bin`);
      const down = await runClient('scp', [...scpArgs, ...mode, `alice@web-1@127.0.0.1:${remote}`, back], { timeoutMs: 120_000 });
      expect(down.code).toBe(0);
      expect(sha(readFileSync(back))).toBe(sha(data));
      const files = await eventually('file events', async () => {
        const evs = (await auditEvents(w, 'file')).map((e) => e.data as { op: string; path: string; bytes?: number });
        const wrote = evs.find((e) => e.op === 'write' && e.path === remote && e.bytes === data.length);
        const read = evs.find((e) => e.op === 'read' && e.path === remote && e.bytes === data.length);
        return wrote && read ? { wrote, read } : null;
      });
      expect(files.wrote.bytes).toBe(50 * MB);
    }
    const batch = join(w.dir, 'batch.txt');
    const remoteDir = join(w.sshd.dir, 'sftp-dir');
    writeFileSync(batch, [`mkdir ${remoteDir}`, `put ${local} ${remoteDir}/a.bin`, `rename ${remoteDir}/a.bin ${remoteDir}/b.bin`, `get ${remoteDir}/b.bin ${w.dir}/b.bin`, `rm ${remoteDir}/b.bin`, ''].join('\n'));
    const sftp = await runClient('sftp', [...scpArgs, '-b', batch, 'alice@web-1@127.0.0.1'], { timeoutMs: 120_000 });
    expect(sftp.code).toBe(0);
    expect(sha(readFileSync(join(w.dir, 'b.bin')))).toBe(sha(data));
    const ops = await eventually('sftp events', async () => {
      const evs = (await auditEvents(w, 'file')).map((e) => e.data as { op: string; path: string });
      const want = ['mkdir', 'rename', 'remove'].every((op) => evs.some((e) => e.op === op && e.path.startsWith(remoteDir)));
      return want ? evs : null;
    });
    expect(ops.some((e) => e.op === 'write' && e.path === `${remoteDir}/a.bin`)).toBe(true);
    // file contents are not stored: no recording holds 50 MB
    const sessions = (await sessionsOf(w)).filter((s) => (s.meta as { scp?: string; subsystem?: string }).scp || (s.meta as { subsystem?: string }).subsystem);
    expect(sessions.length).toBeGreaterThanOrEqual(3);
    for (const s of sessions) expect(s.recordingPath).toBeNull();
  });

  it('reaches a local shell target through the SSH listener, recorded and listed', async () => {
    const r = await runClient('ssh', [...sshArgs({ port: w.port, keyPath: w.aliceKey }), 'alice@sandbox@127.0.0.1', 'echo from-sandbox; exit 5']);
    expect(r.stdout).toBe('from-sandbox\n');
    expect(r.code).toBe(5);
    const p = sshPty('alice@sandbox');
    try {
      await p.waitFor(/[#$] ?$/m, { timeoutMs: 15_000 });
      p.write('echo sandbox-$((2*21))\r');
      await p.waitFor('sandbox-42');
      p.write('exit\r');
      await p.exited;
    } finally {
      p.kill();
    }
    const s = await eventually('the sandbox shell session', async () => (await sessionsOf(w)).find((x) => x.target === 'sandbox' && (x.meta as { channel?: string }).channel === 'shell' && x.endedAt !== null));
    expect(s.protocol).toBe('shell');
    const commands = (await w.running.store.sessionEvents(s.id)).filter((e) => e.kind === 'command').map((e) => (e.data as { command: string }).command);
    expect(commands).toContain('echo sandbox-$((2*21))');
  });
});
