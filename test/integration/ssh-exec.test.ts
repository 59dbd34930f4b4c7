/**
 * SSH through wicket with the real OpenSSH client against a real sshd:
 * exec (exit codes, stdin, stderr), auth (key, password, wrong key, unknown
 * and denied targets), host-key mismatch, forwarding allowed and refused,
 * kill mid-session, hostile bytes and many parallel logins.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sshdUnavailable } from '../support/sshd.js';
import { ALICE_PASSWORD, askpassEnv, auditEvents, eventually, sessionsOf, ssh2Exec, ssh2Login, sshVia, startSshWorld, type SshWorld } from '../support/wicket-ssh.js';
import { runClient, sshArgs } from '../support/sshd.js';
import { wicketAsync } from '../support/cli.js';
import { createToken } from '../../src/auth/tokens.js';
import { castToText, readCast } from '../../recordings/reader.js';

const skip = sshdUnavailable();
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

describe.skipIf(skip !== null)('ssh through wicket: exec, auth, policy', () => {
  let w: SshWorld;
  beforeAll(async () => {
    w = await startSshWorld();
  });
  afterAll(async () => {
    await w?.stop();
  });

  it('runs a command: stdout and stderr stay separate, the exit status comes back, the command is recorded', async () => {
    const r = await sshVia(w, 'alice@web-1', ['echo out; echo err >&2; exit 3']);
    expect(r.stdout).toBe('out\n');
    expect(r.stderr).toBe('err\n');
    expect(r.code).toBe(3);
    const s = await eventually('the session to end', async () => (await sessionsOf(w)).find((x) => x.target === 'web-1' && x.endedAt !== null && (x.meta as { command?: string }).command?.includes('exit 3')));
    expect(s.protocol).toBe('ssh');
    expect(s.recordingPath).toMatch(/\.cast$/);
    const evs = await w.running.store.sessionEvents(s.id);
    expect(evs.find((e) => e.kind === 'command')?.data).toMatchObject({ source: 'exec', command: 'echo out; echo err >&2; exit 3' });
    const cast = await readCast(join(w.dataDir, s.recordingPath!));
    const out = castToText(cast.events);
    expect(out).toContain('out');
    expect(out).toContain('err');
  });

  it('passes stdin through to EOF: `cat > f` writes the whole file', async () => {
    const data = randomBytes(1024 * 1024);
    const path = join(w.sshd.dir, 'stdin-copy.bin');
    const r = await sshVia(w, 'alice@web-1', [`cat > ${path}`], { input: data });
    expect(r.code).toBe(0);
    expect(sha(readFileSync(path))).toBe(sha(data));
  });

  it('accepts a password (keyboard-interactive or password) and refuses a wrong one', async () => {
    const good = await runClient('ssh', [...sshArgs({ port: w.port }), 'alice@web-1@127.0.0.1', 'echo pw-ok'], { env: askpassEnv(w.dir, ALICE_PASSWORD) });
    expect(good.stdout).toBe('pw-ok\n');
    const bad = await runClient('ssh', [...sshArgs({ port: w.port }), 'alice@web-1@127.0.0.1', 'echo no'], { env: askpassEnv(w.dir, 'wrong password!') });
    expect(bad.code).toBe(255);
    expect(bad.stderr).toMatch(/Permission denied/);
    const fails = await auditEvents(w, 'auth.fail');
    expect(fails.some((e) => e.actor === 'alice' && (e.data as { reason?: string }).reason === 'bad password')).toBe(true);
  });

  it('refuses a key the user does not have', async () => {
    const r = await sshVia(w, 'alice@web-1', ['true'], { keyPath: w.strangerKey });
    expect(r.code).toBe(255);
    expect(r.stderr).toMatch(/Permission denied/);
  });

  it('tells the person why: unknown target, denied target', async () => {
    const unknown = await sshVia(w, 'alice@nope', ['true']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/wicket: .*unknown target/i);
    const denied = await sshVia(w, 'alice@vault', ['true']);
    expect(denied.code).toBe(1);
    expect(denied.stderr).toMatch(/wicket: /);
    expect((await auditEvents(w, 'policy.deny')).some((e) => e.target === 'vault')).toBe(true);
  });

  it('refuses an upstream whose host key does not match, with a clear message and an audit event', async () => {
    const r = await sshVia(w, 'alice@web-spoofed', ['echo should-not-run']);
    expect(r.stdout).toBe('');
    expect(r.code).toBe(255);
    expect(r.stderr).toMatch(/host key mismatch/);
    expect((await auditEvents(w, 'ssh.host_key_mismatch')).some((e) => e.target === 'web-spoofed')).toBe(true);
  });

  it('forwards -W / -L only where the rule says forwarding: true, recording each connection', async () => {
    const echo = net.createServer((s) => s.pipe(s));
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
    const port = (echo.address() as net.AddressInfo).port;
    try {
      const ok = await sshVia(w, 'alice@web-fwd', [], { extra: ['-W', `127.0.0.1:${port}`], input: 'ping-through-forward' });
      expect(ok.stdout).toBe('ping-through-forward');
      const fwd = await eventually('a forward event', async () => (await auditEvents(w, 'forward')).find((e) => (e.data as { destination?: string }).destination === `127.0.0.1:${port}`));
      expect(fwd.data).toMatchObject({ kind: 'direct-tcpip', bytesIn: 20, bytesOut: 20 });
      const refused = await sshVia(w, 'alice@web-1', [], { extra: ['-W', `127.0.0.1:${port}`], input: 'x' });
      expect(refused.stdout).toBe('');
      expect(refused.code).not.toBe(0);
      expect((await auditEvents(w, 'ssh.refused')).some((e) => String((e.data as { what?: string }).what).startsWith('direct-tcpip'))).toBe(true);
    } finally {
      echo.close();
    }
  });

  it('refuses X11 forwarding', async () => {
    const c = await ssh2Login(w, 'alice@web-1');
    try {
      const x11 = await ssh2Exec(c, 'echo ran', { x11: true });
      expect(x11).toMatch(/error/i);
    } finally {
      c.end();
    }
    expect((await auditEvents(w)).some((e) => JSON.stringify(e.data).includes('X11 forwarding is never allowed'))).toBe(true);
  });

  it('wicket kill ends a running session: the person sees why and the connection closes', async () => {
    const p = sshVia(w, 'alice@web-1', ['echo started; sleep 30; echo not-reached'], { timeoutMs: 20_000 });
    const live = await eventually('a live sleep session', async () => (await sessionsOf(w)).find((s) => s.status === 'live' && String((s.meta as { command?: string }).command).includes('sleep 30')));
    await new Promise((r) => setTimeout(r, 300));
    expect(w.running.broker.terminate(live.id, 'security review')).toBe(true);
    const r = await p;
    expect(r.stdout).toBe('started\n');
    expect(r.stderr).toMatch(/terminated by wicket: security review/);
    expect(r.code).not.toBe(0);
    const ended = await eventually('the session row', async () => (await w.running.store.getSession(live.id))?.endedAt ? w.running.store.getSession(live.id) : null);
    expect(ended?.status).toBe('terminated');
  });

  it('passes only TERM, LANG and LC_* from the client environment', async () => {
    const r = await sshVia(w, 'alice@web-1', ['echo "lang=$LANG foo=$WICKET_FOO"'], { extra: ['-o', 'SetEnv=LANG=C.UTF-8 WICKET_FOO=bar'] });
    expect(r.stdout).toBe('lang=C.UTF-8 foo=\n');
  });

  it('forwards -R connections back to the client where forwarding is allowed', async () => {
    const echo = net.createServer((s) => s.pipe(s));
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
    const local = (echo.address() as net.AddressInfo).port;
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const remotePort = (probe.address() as net.AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));
    try {
      // The remote side connects to its forwarded port and gets our echo server.
      const script = `sleep 0.5; exec 3<>/dev/tcp/127.0.0.1/${remotePort}; printf remote-hello >&3; head -c 12 <&3`;
      const ok = await sshVia(w, 'alice@web-fwd', [script], { extra: ['-R', `127.0.0.1:${remotePort}:127.0.0.1:${local}`, '-o', 'ExitOnForwardFailure=yes'] });
      expect(ok.stderr).toBe('');
      expect(ok.stdout).toBe('remote-hello');
      const fwd = await eventually('a tcpip-forward event', async () => (await auditEvents(w, 'forward')).find((e) => (e.data as { kind?: string }).kind === 'tcpip-forward'));
      expect(fwd.data).toMatchObject({ bytesIn: 12, bytesOut: 12 });
      const refused = await sshVia(w, 'alice@web-1', ['true'], { extra: ['-R', `127.0.0.1:${remotePort}:127.0.0.1:${local}`, '-o', 'ExitOnForwardFailure=yes'] });
      expect(refused.code).toBe(255);
      expect(refused.stderr).toMatch(/remote port forwarding failed/i);
    } finally {
      echo.close();
    }
  });

  it('refuses agent forwarding (a client with a running agent asks for it)', async () => {
    const sock = join(w.dir, 'agent.sock');
    const agent = await runClient('ssh-agent', ['-a', sock]);
    const pid = /SSH_AGENT_PID=(\d+)/.exec(agent.stdout)?.[1];
    const c = await ssh2Login(w, 'alice@web-1', { agent: sock, agentForward: true });
    try {
      const out = await ssh2Exec(c, 'echo "sock=$SSH_AUTH_SOCK"');
      expect(out).not.toMatch(/sock=\S/);
      expect((await auditEvents(w)).some((e) => JSON.stringify(e.data).includes('agent forwarding is never allowed'))).toBe(true);
    } finally {
      c.end();
      if (pid) process.kill(Number(pid));
    }
  });

  it('a segment lock ends the live session and refuses new ones until unlocked', async () => {
    const p = sshVia(w, 'alice@web-1', ['echo started; sleep 30'], { timeoutMs: 20_000 });
    await eventually('a live session', async () => (await sessionsOf(w)).find((s) => s.status === 'live' && String((s.meta as { command?: string }).command).includes('sleep 30')));
    const cfg = join(w.dir, 'wicket.yaml');
    const locked = await wicketAsync(['segment', 'lock', 'web', '--reason', 'INC-7 breach', '--config', cfg]);
    expect(locked.code).toBe(0);
    const r = await p;
    expect(r.stderr).toMatch(/terminated by wicket: .*INC-7 breach/);
    const again = await sshVia(w, 'alice@web-1', ['echo no']);
    expect(again.stdout).toBe('');
    expect(again.stderr).toMatch(/wicket: .*locked/i);
    expect((await wicketAsync(['segment', 'unlock', 'web', '--config', cfg])).code).toBe(0);
    const after = await sshVia(w, 'alice@web-1', ['echo back']);
    expect(after.stdout).toBe('back\n');
  });

  it('passes signals on (ssh2 client sends INT; to a shell target, since OpenSSH sshd ignores signal requests here)', async () => {
    const c = await ssh2Login(w, 'alice@sandbox');
    try {
      const exit = await new Promise<unknown[]>((resolve, reject) => {
        c.exec('echo ready; exec sleep 30', (err, stream) => {
          if (err) return reject(err);
          stream.on('data', (d: Buffer) => {
            if (d.toString().includes('ready')) setTimeout(() => stream.signal('INT'), 200);
          });
          stream.on('exit', (...args: unknown[]) => resolve(args));
        });
      });
      expect(exit[0]).toBeNull();
      expect(exit[1]).toBe('SIGINT');
    } finally {
      c.end();
    }
  });

  it('survives garbage, stalled handshakes and 100 parallel logins', { timeout: 90_000 }, async () => {
    // garbage, and a client stalled after its version line: both stay open meanwhile
    const garbage = net.connect(w.port, '127.0.0.1', () => garbage.write(randomBytes(4096)));
    garbage.on('error', () => undefined);
    const stalled = net.connect(w.port, '127.0.0.1', () => stalled.write('SSH-2.0-stall\r\n'));
    stalled.on('error', () => undefined);
    try {
      const results = await Promise.all(Array.from({ length: 100 }, (_, i) => sshVia(w, 'alice@web-1', [`echo n${i}`], { timeoutMs: 60_000 })));
      expect(results.map((r) => r.stdout)).toEqual(Array.from({ length: 100 }, (_, i) => `n${i}\n`));
    } finally {
      stalled.destroy();
      garbage.destroy();
    }
  });

  it('records exec output that is not UTF-8 without corrupting the recording', async () => {
    const path = join(w.sshd.dir, 'bin.dat');
    writeFileSync(path, Buffer.from([0xff, 0xfe, 0x00, 0x41, 0xc3, 0x28, 0x0a]));
    const r = await sshVia(w, 'alice@web-1', [`cat ${path}`]);
    expect(r.code).toBe(0);
    const s = await eventually('the session', async () => (await sessionsOf(w)).find((x) => String((x.meta as { command?: string }).command).includes('bin.dat') && x.endedAt !== null));
    const cast = await readCast(join(w.dataDir, s.recordingPath!));
    expect(castToText(cast.events)).toBe('\uFFFD\uFFFD\u0000A\uFFFD(\n');
  });
  it('accepts a personal token as the password; an empty password never works', async () => {
    const { token } = await createToken(w.running.store, 'alice', { name: 'ssh-test', now: Date.now() });
    const ok = await runClient('ssh', [...sshArgs({ port: w.port }), 'alice@web-1@127.0.0.1', 'echo token-ok'], { env: askpassEnv(w.dir, token) });
    expect(ok.stdout).toBe('token-ok\n');
    const empty = await runClient('ssh', [...sshArgs({ port: w.port }), 'alice@web-1@127.0.0.1', 'echo no'], { env: askpassEnv(w.dir, '') });
    expect(empty.code).toBe(255);
    expect(empty.stdout).toBe('');
  });

  it('revoking the token a login used ends its sessions: the person sees why', async () => {
    const { token, record } = await createToken(w.running.store, 'alice', { name: 'ssh-revoke', now: Date.now() });
    const p = runClient('ssh', [...sshArgs({ port: w.port }), 'alice@web-1@127.0.0.1', 'echo started; sleep 30; echo not-reached'], { env: askpassEnv(w.dir, token), timeoutMs: 20_000 });
    const live = await eventually('a live sleep session', async () => (await sessionsOf(w)).find((s) => s.status === 'live' && String((s.meta as { command?: string }).command).includes('sleep 30') && s.meta.authMethod === 'token'));
    const r0 = await wicketAsync(['token', 'revoke', record.id, '--config', join(w.dir, 'wicket.yaml')]);
    expect(r0.code).toBe(0);
    const r = await p;
    expect(r.stdout).toBe('started\n');
    expect(r.stderr).toContain(`terminated by wicket: the token it was opened with (${record.id}) was revoked`);
    expect(r.code).not.toBe(0);
    const ended = await eventually('the session row', async () => (await w.running.store.getSession(live.id))?.endedAt ? w.running.store.getSession(live.id) : null);
    expect(ended?.status).toBe('terminated');
  });

  // Last in this file: it blocks logins from 127.0.0.1 for a while.
  it('throttles repeated failures per user and source host', async () => {
    for (let i = 0; i < 3; i++) {
      const bad = await runClient('ssh', [...sshArgs({ port: w.port }), 'alice@web-1@127.0.0.1', 'true'], { env: askpassEnv(w.dir, `wrong-${i}-password`) });
      expect(bad.code).toBe(255);
    }
    // Even the right key is refused while the user and the host are blocked.
    const blocked = await sshVia(w, 'alice@web-1', ['echo should-not-run']);
    expect(blocked.stdout).toBe('');
    expect(blocked.code).toBe(255);
    expect((await auditEvents(w, 'auth.fail')).some((e) => (e.data as { reason?: string }).reason === 'throttled')).toBe(true);
  });
});
