/**
 * WS /api/terminal (web/terminal.ts) with a real WebSocket client (ws)
 * against an in-process broker (startWicket, listen.web): a local `shell`
 * target (bash in a pty) and, when OpenSSH is installed, an `ssh` target on a
 * private sshd. Covers: typing and output, the recording (.cast with output,
 * input, resize; the typed `command` event; a `read -s` secret redacted),
 * authentication before any 101 (token, cookie + Origin), denials after the
 * 101 as {type:'error'} + 4003 with their policy.deny audit rows (no rule,
 * approval required naming `wicket request`, unknown target, the per-user
 * session limit), `wicket kill`, a revoked token, malformed and oversized frames, and that
 * the live tail (web/live.ts) still answers next to it.
 */
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { WebSocket } from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tmpDir } from '../support/cli.js';
import { sshClientKey, sshdUnavailable, startSshd, type Sshd } from '../support/sshd.js';
import { startWicket, type Running } from '../../src/runtime.js';
import { createToken } from '../../src/auth/tokens.js';
import { makePasswordCredential } from '../../src/auth/password.js';
import type { AuditEvent, SessionRecord } from '../../src/store/types.js';
import { castToText, readCast } from '../../recordings/reader.js';
import { REDACTED } from '../../recordings/typed.js';
import { CLOSE_DENIED } from '../../web/terminal.js';

const PW = { alice: 'alice-term-pass-1', bob: 'bob-term-pass-2', carol: 'carol-term-pass-3' } as const;
type User = keyof typeof PW;
const SHELL = 'command: [/bin/bash, --norc, --noprofile, -i]';
const noSshd = sshdUnavailable();

type Msg =
  | { readonly type: 'ready'; readonly session: string; readonly target: string }
  | { readonly type: 'output'; readonly data: string }
  | { readonly type: 'exit'; readonly code: number | null; readonly reason: string }
  | { readonly type: 'error'; readonly message: string };

interface Term {
  readonly ws: WebSocket;
  readonly msgs: Msg[];
  readonly closed: Promise<{ readonly code: number; readonly reason: string }>;
  /** All output so far. */
  output(): string;
  /** Waits until the output from `from` matches. */
  waitOutput(what: string | RegExp, from?: number, timeoutMs?: number): Promise<void>;
  waitFor<T extends Msg['type']>(type: T, timeoutMs?: number): Promise<Extract<Msg, { type: T }>>;
  /** One key at a time, as a person types. */
  type(keys: string): Promise<void>;
  send(m: unknown): void;
}

interface Attempt {
  readonly status: number;
  readonly body: string;
  readonly term: Term | null;
}

interface Creds {
  readonly token?: string;
  readonly cookie?: string;
  readonly origin?: string;
}

describe('WS /api/terminal', () => {
  const dir = tmpDir('wicket-webterm-');
  let running: Running;
  let sshd: Sshd | null = null;
  let web: { host: string; port: number };
  const tokens: Partial<Record<User, string>> = {};
  const tok = (u: User): Creds => ({ token: tokens[u]! });

  function connect(query: string, c: Creds = {}): Promise<Attempt> {
    const headers: Record<string, string> = {};
    if (c.token !== undefined) headers.authorization = `Bearer ${c.token}`;
    if (c.cookie !== undefined) headers.cookie = c.cookie;
    const ws = new WebSocket(`ws://${web.host}:${web.port}/api/terminal${query}`, { headers, origin: c.origin, perMessageDeflate: false });
    const msgs: Msg[] = [];
    let text = '';
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      expect(isBinary).toBe(false);
      const m = JSON.parse(data.toString('utf8')) as Msg;
      msgs.push(m);
      if (m.type === 'output') text += m.data;
    });
    const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
    const until = async <T>(what: string, f: () => T | undefined, timeoutMs: number): Promise<T> => {
      const end = Date.now() + timeoutMs;
      for (;;) {
        const v = f();
        if (v !== undefined) return v;
        if (Date.now() > end) throw new Error(`timed out waiting for ${what}; output tail: ${JSON.stringify(text.slice(-300))}; last: ${JSON.stringify(msgs.slice(-2))}`);
        await sleep(10);
      }
    };
    const term: Term = {
      ws, msgs, closed,
      output: () => text,
      waitOutput: async (what, from = 0, timeoutMs = 15_000) => {
        await until(String(what), () => {
          const s = text.slice(from);
          return (typeof what === 'string' ? s.includes(what) : what.test(s)) || undefined;
        }, timeoutMs);
      },
      waitFor: (type, timeoutMs = 15_000) => until(type, () => msgs.find((m) => m.type === type) as Extract<Msg, { type: typeof type }> | undefined, timeoutMs),
      type: async (keys) => {
        for (const k of keys) {
          ws.send(JSON.stringify({ type: 'input', data: k }));
          await sleep(8);
        }
      },
      send: (m) => ws.send(typeof m === 'string' ? m : JSON.stringify(m)),
    };
    return new Promise<Attempt>((resolve, reject) => {
      ws.once('open', () => resolve({ status: 101, body: '', term }));
      ws.once('unexpected-response', (_req, res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), term: null }));
      });
      ws.once('error', (e) => reject(e));
    });
  }

  async function open(query: string, c: Creds): Promise<Term> {
    const a = await connect(query, c);
    if (a.status !== 101 || !a.term) throw new Error(`expected 101, got ${a.status}: ${a.body}`);
    return a.term;
  }

  /** A terminal at a `wk> ` prompt. */
  async function shell(target: string, c: Creds, size = ''): Promise<{ t: Term; id: string }> {
    const t = await open(`?target=${target}${size}`, c);
    const ready = await t.waitFor('ready');
    await t.waitOutput(/[$#] $/);
    const from = t.output().length;
    t.send({ type: 'input', data: 'PS1="wk> "\r' });
    await t.waitOutput(/wk> $/, from);
    return { t, id: ready.session };
  }

  async function line(t: Term, keys: string, expectText: string): Promise<void> {
    const from = t.output().length;
    await t.type(keys);
    await t.waitOutput(expectText, from);
    await t.waitOutput(/wk> $/, from);
  }

  async function audit(kind: string): Promise<AuditEvent[]> {
    await running.audit.flush();
    return (await running.store.readAudit(0, 100_000)).filter((e) => e.kind === kind);
  }

  async function ended(id: string): Promise<SessionRecord> {
    const end = Date.now() + 10_000;
    for (;;) {
      const s = await running.store.getSession(id);
      if (s && s.endedAt !== null && !running.broker.liveSessions().some((r) => r.id === id)) return s;
      if (Date.now() > end) throw new Error(`session ${id} did not end`);
      await sleep(25);
    }
  }

  async function login(user: User): Promise<string> {
    const res = await fetch(`http://${web.host}:${web.port}/api/login`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ user, password: PW[user] }),
    });
    expect(res.status).toBe(200);
    return res.headers.getSetCookie()[0]!.split(';')[0]!;
  }

  beforeAll(async () => {
    if (noSshd === null) sshd = await startSshd();
    const other = sshClientKey(dir, 'otherhost').pub.split(' ').slice(0, 2).join(' ');
    const upstream = sshd
      ? [
          `  - { name: web-1, segment: web, protocol: ssh, address: "127.0.0.1:${sshd.port}", user: ${sshd.user}, private_key: "file:${sshd.clientKeyPath}", host_key: "${sshd.hostKeyLine}" }`,
          `  - { name: web-spoofed, segment: web, protocol: ssh, address: "127.0.0.1:${sshd.port}", user: ${sshd.user}, private_key: "file:${sshd.clientKeyPath}", host_key: "${other}" }`,
        ]
      : [];
    writeFileSync(join(dir, 'wicket.yaml'), [
      'data_dir: ./data',
      'listen: { web: 127.0.0.1:0 }',
      'limits: { sessions_per_user: 2 }',
      'segments: [{ name: sandbox }, { name: vault }, { name: web }, { name: dbs }]',
      'targets:',
      `  - { name: sandbox, segment: sandbox, protocol: shell, ${SHELL} }`,
      `  - { name: guarded, segment: vault, protocol: shell, ${SHELL} }`,
      '  - { name: orders-db, segment: dbs, protocol: postgres, address: 127.0.0.1:5432, user: postgres, database: postgres }',
      ...upstream,
      'roles:',
      '  - name: dev',
      '    allow:',
      '      - { segments: [sandbox, web, dbs] }',
      '      - { segments: [vault], approval: required, max_duration: 1h }',
      '  - { name: auditor, audit: true }',
      'users:',
      '  - { name: alice, roles: [dev] }',
      '  - { name: bob, roles: [] }',
      '  - { name: carol, roles: [dev, auditor] }',
      '',
    ].join('\n'));
    running = await startWicket(join(dir, 'wicket.yaml'), { log: () => undefined, pollMs: 100 });
    const addr = running.addresses.web!;
    const i = addr.lastIndexOf(':');
    web = { host: addr.slice(0, i), port: Number(addr.slice(i + 1)) };
    for (const user of Object.keys(PW) as User[]) {
      await running.store.upsertUser(user, await makePasswordCredential(PW[user], Buffer.from(`salt-${user}`).toString('base64')), false, Date.now());
      tokens[user] = (await createToken(running.store, user, { now: Date.now(), ttlMs: 3_600_000 })).token;
    }
  }, 60_000);

  afterAll(async () => {
    await running?.stop('test over');
    await sshd?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('runs a shell target: typed input, output, resize, a `read -s` secret redacted, exit; all recorded', async () => {
    const { t, id } = await shell('sandbox', tok('alice'), '&cols=90&rows=25');
    await line(t, 'echo web-$((6*7))\r', 'web-42');
    await line(t, 'stty size\r', '25 90');
    t.send({ type: 'resize', cols: 100, rows: 30 });
    await sleep(150);
    await line(t, 'stty size\r', '30 100');
    const from = t.output().length;
    await t.type('read -s -p "secret: " S; echo got-${#S}\r');
    await t.waitOutput('secret: ', from);
    await t.type('hunter2-web-secret\r');
    await t.waitOutput('got-18', from);
    await t.waitOutput(/wk> $/, from);
    await t.type('exit 3\r');
    const exit = await t.waitFor('exit');
    expect(exit).toEqual({ type: 'exit', code: 3, reason: 'exit 3' });
    expect((await t.closed).code).toBe(1000);

    const s = await ended(id);
    expect(s).toMatchObject({ user: 'alice', target: 'sandbox', protocol: 'shell', status: 'ended', endReason: 'exit 3' });
    expect(s.meta).toMatchObject({ authMethod: 'web', via: 'web' });
    const cast = await readCast(join(dir, 'data', s.recordingPath!));
    expect(cast.header).toMatchObject({ width: 90, height: 25 });
    const out = castToText(cast.events);
    expect(out).toContain('web-42');
    expect(out).toContain('got-18');
    expect(out).not.toContain('hunter2');
    const input = cast.events.filter((e) => e.code === 'i').map((e) => e.data).join('');
    expect(input).toContain('echo web-$((6*7))');
    expect(input).toContain(REDACTED);
    expect(input).not.toContain('hunter2');
    expect(cast.events.some((e) => e.code === 'r' && e.data === '100x30')).toBe(true);
    const commands = (await running.store.sessionEvents(id)).filter((e) => e.kind === 'command').map((e) => e.data.command);
    expect(commands).toContain('echo web-$((6*7))');
    expect(commands.join('\n')).not.toContain('hunter2');
    const start = (await audit('session.start')).find((e) => e.sessionId === id)!;
    expect(start.data).toMatchObject({ protocol: 'shell', authMethod: 'web', meta: { via: 'web' } });
  }, 60_000);

  it('never answers 101 without a caller: no credentials, a bad token, a cookie from another Origin; a bad query is 400', async () => {
    const none = await connect('?target=sandbox');
    expect(none.status).toBe(401);
    expect(none.term).toBeNull();
    expect((await connect('?target=sandbox', { token: 'wkt_0000000000000000_nope' })).status).toBe(401);
    const cookie = await login('alice');
    expect((await connect('?target=sandbox', { cookie })).status).toBe(403);
    expect((await connect('?target=sandbox', { cookie, origin: 'http://evil.example' })).status).toBe(403);
    expect((await connect('', tok('alice'))).status).toBe(400);
    expect((await connect('?target=sandbox&cols=0', tok('alice'))).status).toBe(400);
    expect((await connect('?target=sandbox&rows=100000', tok('alice'))).status).toBe(400);
    // The cookie from the page's own origin works.
    const { t, id } = await shell('sandbox', { cookie, origin: `http://${web.host}:${web.port}` });
    await line(t, 'echo cookie-$((1+1))\r', 'cookie-2');
    t.ws.close();
    expect((await ended(id)).endReason).toBe('browser closed the terminal');
  }, 30_000);

  it('a user without a rule gets an error message and 4003, audited as policy.deny', async () => {
    const t = await open('?target=sandbox', tok('bob'));
    const err = await t.waitFor('error');
    expect(err.message).toContain('no role of bob');
    expect((await t.closed).code).toBe(CLOSE_DENIED);
    const denies = (await audit('policy.deny')).filter((e) => e.actor === 'bob' && e.target === 'sandbox');
    expect(denies.length).toBeGreaterThan(0);
    expect(denies.at(-1)!.data).toMatchObject({ reason: 'no_rule', protocol: 'shell' });
    expect(t.msgs.some((m) => m.type === 'ready' || m.type === 'output')).toBe(false);
  });

  it('approval required: the message names the `wicket request` command; unknown and non-terminal targets are refused', async () => {
    const t = await open('?target=guarded', tok('alice'));
    const err = await t.waitFor('error');
    expect(err.message).toContain('wicket request guarded');
    expect((await t.closed).code).toBe(CLOSE_DENIED);
    expect((await audit('policy.deny')).some((e) => e.actor === 'alice' && e.target === 'guarded' && e.data.reason === 'approval_required')).toBe(true);

    const u = await open('?target=nowhere', tok('alice'));
    expect((await u.waitFor('error')).message).toMatch(/nowhere/);
    expect((await u.closed).code).toBe(CLOSE_DENIED);

    const db = await open('?target=orders-db', tok('alice'));
    expect((await db.waitFor('error')).message).toBeTruthy();
    expect((await db.closed).code).toBe(CLOSE_DENIED);
  });

  it('wicket kill ends it with the reason', async () => {
    const { t, id } = await shell('sandbox', tok('alice'));
    await running.store.pushControl({ kind: 'kill', ts: Date.now(), actor: 'carol', sessionId: id, reason: 'incident 42' });
    const exit = await t.waitFor('exit');
    expect(exit.reason).toBe('terminated by wicket: incident 42');
    expect((await t.closed).code).toBe(1000);
    const s = await ended(id);
    expect(s.status).toBe('terminated');
    expect(s.endReason).toBe('incident 42');
  }, 30_000);

  it('revoking the token a terminal was opened with ends it (the broker checks every second)', async () => {
    const created = await createToken(running.store, 'alice', { now: Date.now(), ttlMs: 3_600_000 });
    const { t, id } = await shell('sandbox', { token: created.token });
    await line(t, 'echo still-$((1+1))\r', 'still-2');
    await sleep(1200); // a token check with the token still valid changes nothing
    expect(t.msgs.some((m) => m.type === 'exit' || m.type === 'error')).toBe(false);
    await line(t, 'echo still-$((2+2))\r', 'still-4');
    expect(await running.store.revokeToken(created.record.id, Date.now())).toBe(true);
    const exit = await t.waitFor('exit', 5_000);
    expect(exit.reason).toBe(`terminated by wicket: the token it was opened with (${created.record.id}) was revoked`);
    expect((await t.closed).code).toBe(1000);
    const s = await ended(id);
    expect(s.status).toBe('terminated');
    // The token no longer opens one at all.
    expect((await connect('?target=sandbox', { token: created.token })).status).toBe(401);
  }, 30_000);

  it('limits.sessions_per_user applies to web terminals', async () => {
    const a = await shell('sandbox', tok('carol'));
    const b = await shell('sandbox', tok('carol'));
    const c = await open('?target=sandbox', tok('carol'));
    expect((await c.waitFor('error')).message).toContain('sessions_per_user');
    expect((await c.closed).code).toBe(CLOSE_DENIED);
    a.t.ws.close();
    b.t.ws.close();
    await ended(a.id);
    await ended(b.id);
  }, 30_000);

  it('malformed, binary and oversized frames close the terminal and end the session', async () => {
    const a = await shell('sandbox', tok('alice'));
    a.t.send('{"type":"paste","data":"x"}');
    expect((await a.t.closed).code).toBe(1008);
    await ended(a.id);
    const b = await shell('sandbox', tok('alice'));
    b.t.ws.send(Buffer.from('binary'), { binary: true });
    expect((await b.t.closed).code).toBe(1003);
    await ended(b.id);
    const c = await shell('sandbox', tok('alice'));
    c.t.send({ type: 'input', data: 'x'.repeat(70 * 1024) });
    expect((await c.t.closed).code).toBe(1009);
    await ended(c.id);
  }, 30_000);

  it('the live tail still answers on the same server, and sees the web terminal', async () => {
    const { t, id } = await shell('sandbox', tok('alice'));
    await line(t, 'echo watched-$((2*3))\r', 'watched-6');
    const ws = new WebSocket(`ws://${web.host}:${web.port}/api/sessions/${id}/live`, { headers: { authorization: `Bearer ${tokens.carol!}` } });
    let seen = '';
    ws.on('message', (d: Buffer) => {
      const m = JSON.parse(d.toString('utf8')) as { type: string; code?: string; data?: string };
      if (m.type === 'event' && m.code === 'o') seen += m.data;
    });
    const end = Date.now() + 10_000;
    while (!seen.includes('watched-6')) {
      if (Date.now() > end) throw new Error('the watcher never saw the output');
      await sleep(20);
    }
    ws.close();
    t.ws.close();
    await ended(id);
  }, 30_000);

  it.skipIf(noSshd !== null)('runs an ssh target through the upstream sshd, recorded', async () => {
    const { t, id } = await shell('web-1', tok('alice'));
    await line(t, 'echo web-$((6*7))\r', 'web-42');
    await t.type('exit\r');
    expect((await t.waitFor('exit')).code).toBe(0);
    const s = await ended(id);
    expect(s).toMatchObject({ target: 'web-1', protocol: 'ssh', status: 'ended' });
    const cast = await readCast(join(dir, 'data', s.recordingPath!));
    expect(castToText(cast.events)).toContain('web-42');
    const commands = (await running.store.sessionEvents(id)).filter((e) => e.kind === 'command').map((e) => e.data.command);
    expect(commands).toContain('echo web-$((6*7))');
  }, 60_000);

  it.skipIf(noSshd !== null)('an ssh target whose host key does not match is refused (1011), the session failed, the mismatch audited', async () => {
    const t = await open('?target=web-spoofed', tok('alice'));
    expect((await t.waitFor('error')).message).toContain('host key mismatch');
    expect((await t.closed).code).toBe(1011);
    expect(t.msgs.some((m) => m.type === 'ready')).toBe(false);
    const row = (await audit('ssh.host_key_mismatch')).find((e) => e.target === 'web-spoofed');
    expect(row?.actor).toBe('alice');
    const s = (await running.store.listSessions({ limit: 100 })).find((r) => r.target === 'web-spoofed')!;
    expect((await ended(s.id)).status).toBe('failed');
  }, 30_000);
});
