/**
 * Shared pieces of the SSH integration tests: a private OpenSSH server, a
 * broker in-process with an ssh listener pointing at it, the person's key,
 * and real ssh/scp/sftp clients (always asynchronous: a blocking spawn would
 * freeze the broker living in this process).
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import ssh2 from 'ssh2';
import { join } from 'node:path';
import { startWicket, type Running } from '../../src/runtime.js';
import { makePasswordCredential } from '../../src/auth/password.js';
import type { AuditEvent, SessionRecord } from '../../src/store/types.js';
import { tmpDir } from './cli.js';
import { runClient, sshArgs, sshClientKey, startSshd, type ClientResult, type Sshd } from './sshd.js';

export interface SshWorld {
  readonly sshd: Sshd;
  readonly running: Running;
  readonly dir: string;
  readonly dataDir: string;
  readonly port: number;
  /** alice's key (in her ssh_keys). */
  readonly aliceKey: string;
  /** A key nobody has configured. */
  readonly strangerKey: string;
  readonly logs: string[];
  stop(): Promise<void>;
}

export const ALICE_PASSWORD = 'alice-ssh-password-1';

export async function startSshWorld(extraYaml: { targets?: string[]; roles?: string[]; users?: string[] } = {}): Promise<SshWorld> {
  const sshd = await startSshd({ allowTcpForwarding: true });
  const dir = tmpDir('wicket-ssh-');
  mkdirSync(join(dir, 'keys'));
  const alice = sshClientKey(join(dir, 'keys'), 'alice');
  const stranger = sshClientKey(join(dir, 'keys'), 'stranger');
  const other = sshClientKey(join(dir, 'keys'), 'otherhost');
  const upstream = `address: "127.0.0.1:${sshd.port}", user: ${sshd.user}, private_key: "file:${sshd.clientKeyPath}"`;
  const yaml = [
    'data_dir: ./data',
    'store: sqlite',
    'listen: { ssh: "127.0.0.1:0" }',
    'segments:',
    '  - { name: web }',
    '  - { name: fwd }',
    '  - { name: sandbox }',
    '  - { name: secret }',
    'targets:',
    `  - { name: web-1, segment: web, protocol: ssh, ${upstream}, host_key: "${sshd.hostKeyLine}" }`,
    `  - { name: web-fwd, segment: fwd, protocol: ssh, ${upstream}, host_key: "${sshd.hostKeyLine}" }`,
    `  - { name: web-spoofed, segment: web, protocol: ssh, ${upstream}, host_key: "${other.pub.split(' ').slice(0, 2).join(' ')}" }`,
    `  - { name: vault, segment: secret, protocol: ssh, ${upstream}, host_key: "${sshd.hostKeyLine}" }`,
    '  - { name: sandbox, segment: sandbox, protocol: shell, command: [/bin/bash, --norc, --noprofile, -i] }',
    ...(extraYaml.targets ?? []),
    'roles:',
    '  - name: dev',
    '    allow:',
    '      - { segments: [web, sandbox] }',
    '      - { segments: [fwd], protocols: [ssh], forwarding: true }',
    ...(extraYaml.roles ?? []),
    'users:',
    `  - { name: alice, roles: [dev], ssh_keys: ["${alice.pub}"] }`,
    '  - { name: bob, roles: [] }',
    ...(extraYaml.users ?? []),
    '',
  ].join('\n');
  const cfg = join(dir, 'wicket.yaml');
  writeFileSync(cfg, yaml);
  const logs: string[] = [];
  const running = await startWicket(cfg, { log: (l) => logs.push(l), pollMs: 100 });
  await running.store.upsertUser('alice', await makePasswordCredential(ALICE_PASSWORD, Buffer.from('salt-alice').toString('base64')), false, Date.now());
  const addr = running.addresses.ssh!;
  return {
    sshd, running, dir, dataDir: join(dir, 'data'), port: Number(addr.slice(addr.lastIndexOf(':') + 1)),
    aliceKey: alice.path, strangerKey: stranger.path, logs,
    stop: async () => {
      await running.stop('test over');
      await sshd.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** `ssh` through wicket with alice's key (or `keyPath`). */
export function sshVia(w: SshWorld, login: string, command: string[], opts: { keyPath?: string; input?: string | Buffer; extra?: string[]; timeoutMs?: number } = {}): Promise<ClientResult> {
  return runClient('ssh', [...sshArgs({ port: w.port, keyPath: opts.keyPath ?? w.aliceKey, extra: opts.extra }), `${login}@127.0.0.1`, ...command], {
    input: opts.input, timeoutMs: opts.timeoutMs,
  });
}

/** Password logins: OpenSSH reads the password from SSH_ASKPASS when forced. */
export function askpassEnv(dir: string, password: string): NodeJS.ProcessEnv {
  const script = join(dir, `askpass-${Math.random().toString(36).slice(2)}.sh`);
  writeFileSync(script, `#!/bin/sh\nprintf '%s\\n' '${password.replace(/'/g, "'\\''")}'\n`, { mode: 0o700 });
  return { ...process.env, SSH_ASKPASS: script, SSH_ASKPASS_REQUIRE: 'force', DISPLAY: ':0' };
}

export async function auditEvents(w: SshWorld, kind?: string): Promise<AuditEvent[]> {
  await w.running.audit.flush();
  const all = await w.running.store.readAudit(0, 100_000);
  return kind ? all.filter((e) => e.kind === kind) : all;
}

export async function sessionsOf(w: SshWorld): Promise<SessionRecord[]> {
  return w.running.store.listSessions({ limit: 1000 });
}

/** Waits until `pred` holds (polling), or throws with `what`. */
export async function eventually<T>(what: string, fn: () => Promise<T | null | undefined | false>, timeoutMs = 10_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** An ssh2 Client logged in through wicket with alice's key (for requests OpenSSH will not send on demand). */
export async function ssh2Login(w: SshWorld, login: string, extra: Partial<ssh2.ConnectConfig> = {}): Promise<ssh2.Client> {
  const c = new ssh2.Client();
  await new Promise<void>((resolve, reject) => {
    c.once('ready', () => resolve());
    c.once('error', reject);
    c.connect({ host: '127.0.0.1', port: w.port, username: login, privateKey: readFileSync(w.aliceKey, 'utf8'), ...extra });
  });
  return c;
}

/** Runs `command` on an ssh2 Client; resolves with stdout, or `error: ...` when the request failed. */
export function ssh2Exec(c: ssh2.Client, command: string, opts: ssh2.ExecOptions = {}): Promise<string> {
  return new Promise<string>((resolve) => {
    c.exec(command, opts, (err, stream) => {
      if (err) return resolve(`error: ${err.message}`);
      let out = '';
      stream.on('data', (d: Buffer) => (out += d.toString()));
      stream.on('close', () => resolve(out));
    });
  });
}
