/**
 * WS /api/sessions/:id/live (web/live.ts) with a real WebSocket client (ws)
 * against an in-process broker: sessions are opened with broker.open and fed
 * through their recorder / emit, like an adapter does, and once through the
 * real SSH listener with an ssh2 client. Covers: the backlog + live stream
 * with no gap and no duplicate (compared with the .cast file), who may watch
 * (own user, audit role; 401/403/404, never 101 when refused), the
 * cookie's Origin check, the end message, slow watchers dropped (live and
 * while catching up) without holding the session back, database sessions.
 */
import { createServer, type Server } from 'node:http';
import { once } from 'node:events';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setImmediate as tick, setTimeout as sleep } from 'node:timers/promises';
import ssh2 from 'ssh2';
import { WebSocket } from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tmpDir } from '../support/cli.js';
import { startWicket, type Running } from '../../src/runtime.js';
import type { ActiveSession } from '../../src/broker.js';
import type { SessionHandle } from '../../src/session.js';
import { createToken } from '../../src/auth/tokens.js';
import { makePasswordCredential } from '../../src/auth/password.js';
import { readCast } from '../../recordings/reader.js';
import { REDACTED } from '../../recordings/typed.js';
import { attachLive, CLOSE_REVOKED, CLOSE_TOO_SLOW, type LiveServer } from '../../web/live.js';

const PW = { alice: 'alice-live-pass-1', bob: 'bob-live-pass-2', carol: 'carol-live-pass-3', dave: 'dave-live-pass-4', erin: 'erin-live-pass-5' } as const;
type User = keyof typeof PW;

const YAML = [
  'data_dir: ./data',
  'listen: { web: 127.0.0.1:0, ssh: 127.0.0.1:0 }',
  'segments: [{ name: sandbox }, { name: dbs }]',
  'targets:',
  '  - { name: sandbox, segment: sandbox, protocol: shell, command: [/bin/sh] }',
  '  - { name: bash-box, segment: sandbox, protocol: shell, command: [/bin/bash, --norc, --noprofile, -i] }',
  '  - { name: orders-db, segment: dbs, protocol: postgres, address: 127.0.0.1:5432, user: postgres, database: postgres }',
  'roles:',
  '  - { name: dev, allow: [{ segments: [sandbox, dbs] }] }',
  '  - { name: auditor, audit: true }',
  '  - { name: root, admin: true }',
  '  - { name: approver, approve: [sandbox] }',
  'users:',
  '  - { name: alice, roles: [dev] }',
  '  - { name: bob, roles: [dev] }',
  '  - { name: carol, roles: [auditor] }',
  '  - { name: dave, roles: [root] }',
  '  - { name: erin, roles: [approver] }',
  '',
].join('\n');

interface Header {
  readonly version: number;
  readonly width: number;
  readonly height: number;
  readonly title?: string;
}

type Msg =
  | { readonly type: 'header'; readonly header: Header }
  | { readonly type: 'event'; readonly t: number; readonly code: string; readonly data: string }
  | { readonly type: 'query'; readonly n: number; readonly event: { readonly ts: string; readonly kind: string; readonly actor: string; readonly data: Record<string, unknown> } }
  | { readonly type: 'end'; readonly status: string; readonly reason: string | null };

interface Watch {
  readonly ws: WebSocket;
  readonly msgs: Msg[];
  /** Bytes of message payloads received. */
  readonly received: () => number;
  readonly closed: Promise<{ readonly code: number; readonly reason: string }>;
  /** Resolves with the first message (from `from`) matching, polling. */
  waitFor(pred: (m: Msg) => boolean, timeoutMs?: number): Promise<Msg>;
}

interface Attempt {
  readonly status: number;
  readonly body: string;
  readonly watch: Watch | null;
}

interface Creds {
  readonly token?: string;
  readonly cookie?: string;
  readonly origin?: string;
  readonly from?: string;
  readonly authorization?: string;
}

/** The adapter side of a session, as a test double. */
function handle(): SessionHandle & { reasons: string[] } {
  const reasons: string[] = [];
  return { reasons, terminate: (r) => void reasons.push(r) };
}

describe('WS /api/sessions/:id/live', () => {
  const dir = tmpDir('wicket-live-');
  let running: Running;
  let web: { host: string; port: number };
  const tokens: Partial<Record<User, string>> = {};
  const tok = (u: User): Creds => ({ token: tokens[u]! });

  /** Opens a watch; resolves with the HTTP status (101 = a watch) and, when refused, the body. */
  function connect(id: string, c: Creds = {}, server: { host: string; port: number } = web, path = `/api/sessions/${id}/live`): Promise<Attempt> {
    const headers: Record<string, string> = {};
    if (c.token !== undefined) headers.authorization = `Bearer ${c.token}`;
    if (c.authorization !== undefined) headers.authorization = c.authorization;
    if (c.cookie !== undefined) headers.cookie = c.cookie;
    const ws = new WebSocket(`ws://${server.host}:${server.port}${path}`, { headers, origin: c.origin, localAddress: c.from, perMessageDeflate: false });
    const msgs: Msg[] = [];
    let bytes = 0;
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      expect(isBinary).toBe(false);
      bytes += data.length;
      msgs.push(JSON.parse(data.toString('utf8')) as Msg);
    });
    const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
    const watch: Watch = {
      ws, msgs, closed, received: () => bytes,
      async waitFor(pred, timeoutMs = 15_000) {
        const until = Date.now() + timeoutMs;
        for (;;) {
          const m = msgs.find(pred);
          if (m) return m;
          if (Date.now() > until) throw new Error(`timed out; last messages: ${JSON.stringify(msgs.slice(-3))}`);
          await sleep(10);
        }
      },
    };
    return new Promise<Attempt>((resolve, reject) => {
      ws.once('open', () => resolve({ status: 101, body: '', watch }));
      ws.once('unexpected-response', (_req, res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), watch: null }));
      });
      ws.once('error', (e) => reject(e));
    });
  }

  async function watchOk(id: string, c: Creds, server?: { host: string; port: number }): Promise<Watch> {
    const a = await connect(id, c, server);
    if (a.status !== 101 || !a.watch) throw new Error(`expected 101, got ${a.status}: ${a.body}`);
    return a.watch;
  }

  const openShell = (user: User, target = 'sandbox'): Promise<ActiveSession> =>
    running.broker.open({ user, target, protocol: 'shell', clientAddr: '127.0.0.1:5555', authMethod: 'password' }, handle(), { cols: 80, rows: 24 });
  const openDb = (user: User): Promise<ActiveSession> =>
    running.broker.open({ user, target: 'orders-db', protocol: 'postgres', clientAddr: '127.0.0.1:5556', authMethod: 'password' }, handle());

  async function login(user: User): Promise<string> {
    const res = await fetch(`http://${web.host}:${web.port}/api/login`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ user, password: PW[user] }),
    });
    expect(res.status).toBe(200);
    return res.headers.getSetCookie()[0]!.split(';')[0]!;
  }

  const events = (w: Watch): Extract<Msg, { type: 'event' }>[] => w.msgs.filter((m): m is Extract<Msg, { type: 'event' }> => m.type === 'event');
  const castPath = (s: ActiveSession): string => join(dir, 'data', s.record.recordingPath!);

  beforeAll(async () => {
    writeFileSync(join(dir, 'wicket.yaml'), YAML);
    running = await startWicket(join(dir, 'wicket.yaml'), { log: () => undefined, pollMs: 100 });
    const addr = running.addresses.web!;
    const i = addr.lastIndexOf(':');
    web = { host: addr.slice(0, i), port: Number(addr.slice(i + 1)) };
    for (const user of Object.keys(PW) as User[]) {
      await running.store.upsertUser(user, await makePasswordCredential(PW[user], Buffer.from(`salt-${user}`).toString('base64')), false, Date.now());
      tokens[user] = (await createToken(running.store, user, { now: Date.now(), ttlMs: 3_600_000 })).token;
    }
  });

  afterAll(async () => {
    await running?.stop('test over');
    rmSync(dir, { recursive: true, force: true });
  });

  it('a watcher joining mid-session gets the whole recording, then live events: nothing missing, nothing doubled', async () => {
    const s = await openShell('alice');
    const line = (i: number): string => `line-${String(i).padStart(4, '0')}\r\n`;
    const out = (i: number): void => s.terminal!.output(Buffer.from(line(i)));
    for (let i = 0; i < 250; i++) out(i);
    await sleep(150); // these are on disk (the recorder writes every 50 ms) ...
    for (let i = 250; i < 500; i++) out(i); // ... these still in its batch when the watcher arrives
    s.terminal!.input(Buffer.from('typed'));
    s.terminal!.resize(100, 30);
    // Keep recording while the watcher connects: its subscription lands somewhere in here.
    let joined = false;
    const pending = connect(s.id, tok('carol')).then((a) => ((joined = true), a));
    let i = 500;
    for (; !joined; i++) {
      out(i);
      if (i % 4 === 0) await tick();
    }
    const w = (await pending).watch!;
    const typed = ['typed'];
    const total = i + 1500;
    for (; i < total; i++) {
      out(i);
      if (i % 100 === 0) {
        s.terminal!.input(Buffer.from(`k${i}`));
        typed.push(`k${i}`);
      }
      if (i % 4 === 0) await tick();
    }
    await w.waitFor((m) => m.type === 'event' && m.data === line(total - 1));
    await s.end({ status: 'ended', reason: 'bye' });
    const end = await w.waitFor((m) => m.type === 'end');
    expect(end).toEqual({ type: 'end', status: 'ended', reason: 'bye' });
    expect((await w.closed).code).toBe(1000);

    expect(w.msgs[0]!.type).toBe('header');
    const header = (w.msgs[0] as Extract<Msg, { type: 'header' }>).header;
    expect(header).toMatchObject({ version: 2, width: 80, height: 24, title: 'alice@sandbox' });
    expect(w.msgs.at(-1)!.type).toBe('end');
    expect(w.msgs.filter((m) => m.type === 'header')).toHaveLength(1);
    const got = events(w);
    const text = got.filter((e) => e.code === 'o').map((e) => e.data).join('');
    expect(text).toBe(Array.from({ length: total }, (_, k) => line(k)).join(''));
    // Exactly the recording, event for event (times, codes, data, resize and input included).
    const cast = await readCast(castPath(s));
    expect(header).toEqual(JSON.parse(JSON.stringify(cast.header)));
    expect(got.map((e) => [e.t, e.code, e.data])).toEqual(cast.events.map((e) => [e.time, e.code, e.data]));
    expect(got.some((e) => e.code === 'r' && e.data === '100x30')).toBe(true);
    expect(got.filter((e) => e.code === 'i').map((e) => e.data).join('')).toBe(typed.join(''));
  });

  it('the session user and an auditor may watch; anyone else (an admin without audit too) gets a 404, never a 101', async () => {
    const s = await openShell('alice');
    s.terminal!.output(Buffer.from('hello\r\n'));
    for (const u of ['alice', 'carol'] as const) {
      const w = await watchOk(s.id, tok(u));
      await w.waitFor((m) => m.type === 'event' && m.data === 'hello\r\n');
      w.ws.close();
    }
    for (const u of ['bob', 'dave', 'erin'] as const) {
      const a = await connect(s.id, tok(u));
      expect(a.status).toBe(404);
      expect(JSON.parse(a.body)).toMatchObject({ error: { code: 'WICKET_ERR_NOT_FOUND', message: `no session ${s.id}` } });
    }
    await running.audit.flush();
    const rows = await running.store.readAudit(0, 100_000);
    const denied = rows.filter((r) => r.kind === 'session.watch_denied' && r.data.session === s.id).map((r) => r.actor);
    expect(denied.sort()).toEqual(['bob', 'dave', 'erin']);
    const allowed = rows.filter((r) => r.kind === 'session.watch' && r.data.session === s.id).map((r) => r.actor);
    expect(allowed.sort()).toEqual(['alice', 'carol']);
    await s.end({ status: 'ended' });
  });

  it('no, malformed or bad credentials: 401; unknown, ended or other paths: 404', async () => {
    const s = await openShell('alice');
    const none = await connect(s.id);
    expect(none.status).toBe(401);
    expect(JSON.parse(none.body)).toMatchObject({ error: { code: 'WICKET_ERR_AUTH' } });
    const from = '127.0.0.3'; // its own throttle bucket
    expect((await connect(s.id, { token: `wkt_${'0'.repeat(16)}_${'A'.repeat(32)}`, from })).status).toBe(401);
    expect((await connect(s.id, { token: `${tokens.alice!.slice(0, -2)}xx`, from })).status).toBe(401);
    expect((await connect(s.id, { authorization: 'Basic YWxpY2U6eA==', from })).status).toBe(401);
    expect((await connect(s.id, { cookie: `wicket_session=${'x'.repeat(43)}`, origin: `http://${web.host}:${web.port}`, from })).status).toBe(401);

    expect((await connect('zzzzzzzzzzzzzzzzzz', tok('carol'))).status).toBe(404);
    expect((await connect(s.id, tok('carol'), web, `/api/sessions/${s.id}/other`)).status).toBe(404);
    expect((await connect(s.id, tok('carol'), web, '/api/sessions/../live')).status).toBe(404);
    // Unknown and ended ids answer 401 before anything else without credentials.
    expect((await connect('zzzzzzzzzzzzzzzzzz')).status).toBe(401);

    await s.end({ status: 'ended' });
    const ended = await connect(s.id, tok('alice'));
    expect(ended.status).toBe(404);
    expect(JSON.parse(ended.body).error.message).toContain('/cast');
    // Another user learns nothing more about an ended session than about a running one.
    expect((await connect(s.id, tok('bob'))).status).toBe(404);
  });

  it('the HTTP API authenticates as before (identify() is shared with the upgrade)', async () => {
    const base = `http://${web.host}:${web.port}`;
    const none = await fetch(`${base}/api/requests`);
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toBe('Bearer realm="wicket"');
    expect(((await none.json()) as { error: { code: string } }).error.code).toBe('WICKET_ERR_AUTH');
    expect((await fetch(`${base}/api/requests`, { headers: { authorization: `Bearer ${tokens.alice!}` } })).status).toBe(200);
    expect((await fetch(`${base}/api/requests`, { headers: { authorization: 'Basic eDp5' } })).status).toBe(401);
    const cookie = await login('alice');
    expect((await fetch(`${base}/api/requests`, { headers: { cookie } })).status).toBe(200);
    const form = await fetch(`${base}/api/requests`, { method: 'POST', headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' }, body: 'target=sandbox' });
    expect(form.status).toBe(403);
  });

  it('the login cookie works only with this server\'s own Origin', async () => {
    const s = await openShell('alice');
    s.terminal!.output(Buffer.from('cookie-view\r\n'));
    const cookie = await login('carol');
    const self = `http://${web.host}:${web.port}`;
    expect((await connect(s.id, { cookie })).status).toBe(403);
    expect((await connect(s.id, { cookie, origin: 'http://evil.example' })).status).toBe(403);
    expect((await connect(s.id, { cookie, origin: `http://${web.host}:${web.port + 1}` })).status).toBe(403);
    expect((await connect(s.id, { cookie, origin: 'null' })).status).toBe(403);
    const w = await watchOk(s.id, { cookie, origin: self });
    await w.waitFor((m) => m.type === 'event' && m.data === 'cookie-view\r\n');
    // A bearer token needs no Origin (a browser cannot attach one to a WebSocket).
    const t = await watchOk(s.id, { ...tok('carol'), origin: 'http://evil.example' });
    t.ws.close();
    // bob's login cookie from the right origin is still bob.
    expect((await connect(s.id, { cookie: await login('bob'), origin: self })).status).toBe(404);
    await s.end({ status: 'ended' });
    expect((await w.waitFor((m) => m.type === 'end')).type).toBe('end');
  });

  it('sends end when the session is terminated, then closes', async () => {
    const s = await openShell('alice');
    const w = await watchOk(s.id, tok('carol'));
    await w.waitFor((m) => m.type === 'header');
    expect(running.broker.terminate(s.id, 'killed for the test')).toBe(true);
    await s.end({ status: 'ended' });
    expect(await w.waitFor((m) => m.type === 'end')).toEqual({ type: 'end', status: 'terminated', reason: 'killed for the test' });
    expect(await w.closed).toEqual({ code: 1000, reason: 'session ended' });
  });

  it('a watcher that stops reading is dropped (4008) while the session and a reading watcher go on at full speed', async () => {
    const s = await openShell('alice');
    const slow = await watchOk(s.id, tok('carol'));
    const fast = await watchOk(s.id, tok('carol'));
    await slow.waitFor((m) => m.type === 'header');
    await fast.waitFor((m) => m.type === 'header');
    slow.ws.pause(); // stops reading: the kernel buffers fill, then the server's send buffer
    const chunk = 'x'.repeat(64 * 1024 - 8);
    const total = 768; // 48 MiB, well past socket buffers + the 4 MiB cap
    const t0 = performance.now();
    for (let i = 0; i < total; i++) {
      s.terminal!.output(Buffer.from(`${String(i).padStart(6, '0')}\r\n${chunk}`));
      await tick();
    }
    const elapsed = performance.now() - t0;
    await fast.waitFor((m) => m.type === 'event' && m.data.startsWith(`${String(total - 1).padStart(6, '0')}\r\n`), 60_000);
    slow.ws.resume();
    const closed = await slow.closed;
    expect(closed.code).toBe(CLOSE_TOO_SLOW);
    expect(closed.reason).toContain('too slow');
    expect(slow.received()).toBeLessThan(total * chunk.length);
    // The session is untouched: still live, its recorder writable, every chunk recorded and sent to the reader.
    expect(running.broker.liveSessions().some((r) => r.id === s.id)).toBe(true);
    const seen = events(fast).filter((e) => e.code === 'o').map((e) => e.data.slice(0, 6));
    expect(seen).toEqual(Array.from({ length: total }, (_, k) => String(k).padStart(6, '0')));
    expect(elapsed).toBeLessThan(30_000);
    await s.end({ status: 'ended' });
    await fast.waitFor((m) => m.type === 'end');
    const cast = await readCast(castPath(s));
    expect(cast.events.filter((e) => e.code === 'o')).toHaveLength(total);
  }, 90_000);

  describe('with small limits (a second server on the same broker)', () => {
    let server: Server;
    let live: LiveServer;
    let addr: { host: string; port: number };
    beforeAll(async () => {
      server = createServer((_req, res) => res.writeHead(404).end());
      live = attachLive(server, {
        broker: running.broker, store: running.store, config: running.config,
        audit: async (e) => void (await running.audit.appendNow(e)),
        limits: { stallMs: 100, maxQueuedBytes: 256 * 1024, maxWatchers: 3, recheckMs: 200 }, log: () => undefined,
      });
      server.listen(0, '127.0.0.1');
      await once(server, 'listening');
      const a = server.address();
      addr = { host: '127.0.0.1', port: typeof a === 'object' && a ? a.port : 0 };
    });
    afterAll(() => {
      live?.close();
      server?.close();
    });

    it('a watcher that does not read its backlog is dropped; the session goes on', async () => {
      const s = await openShell('alice');
      const chunk = 'y'.repeat(64 * 1024);
      for (let i = 0; i < 400; i++) s.terminal!.output(Buffer.from(chunk)); // 25 MiB of backlog
      const w = await watchOk(s.id, tok('carol'), addr);
      w.ws.pause();
      const t0 = performance.now();
      for (let i = 0; i < 200 && live.watchers > 0; i++) {
        s.terminal!.output(Buffer.from(`live-${i}\r\n`));
        await sleep(10);
      }
      expect(live.watchers).toBe(0);
      expect(performance.now() - t0).toBeLessThan(2000);
      w.ws.resume();
      expect((await w.closed).code).toBe(CLOSE_TOO_SLOW);
      expect(running.broker.liveSessions().some((r) => r.id === s.id)).toBe(true);
      await s.end({ status: 'ended' });
    });

    it('a watch ends (4003) when its token is revoked', async () => {
      const s = await openShell('alice');
      const { token, record } = await createToken(running.store, 'carol', { now: Date.now(), ttlMs: 3_600_000 });
      const w = await watchOk(s.id, { token }, addr);
      await w.waitFor((m) => m.type === 'header');
      await sleep(1000);
      expect(w.ws.readyState).toBe(WebSocket.OPEN); // still allowed: the re-checks passed
      await running.store.revokeToken(record.id, Date.now());
      expect((await w.closed).code).toBe(CLOSE_REVOKED);
      expect(live.watchers).toBe(0);
      await s.end({ status: 'ended' });
    });

    it('caps the number of watchers (503)', async () => {
      const s = await openShell('alice');
      const ws = [await watchOk(s.id, tok('alice'), addr), await watchOk(s.id, tok('carol'), addr), await watchOk(s.id, tok('carol'), addr)];
      const a = await connect(s.id, tok('alice'), addr);
      expect(a.status).toBe(503);
      await s.end({ status: 'ended' });
      for (const w of ws) expect((await w.closed).code).toBe(1000);
      expect(live.watchers).toBe(0);
    });
  });

  it('database sessions: the statements so far, then each new one as it is recorded, then end', async () => {
    const db = await openDb('alice');
    const q = (i: number): void => {
      db.emit({ type: 'query', step: i % 2 ? 'bind' : 'query', startedAt: Date.now(), durationMs: 0.5, sql: `SELECT ${i}`, rows: 1, tag: 'SELECT 1', params: i % 2 ? [{ type: 23, format: 'text', value: String(i) }] : undefined });
    };
    const before = 1200; // a backlog of several store pages (Broker EVENT_BATCH)
    for (let i = 1; i <= before; i++) q(i);
    let joined = false;
    const pending = connect(db.id, tok('alice')).then((a) => ((joined = true), a));
    let i = before + 1;
    for (; !joined; i++) {
      q(i);
      if (i % 3 === 0) await tick();
    }
    const w = (await pending).watch!;
    const last = i + 1000;
    for (; i <= last; i++) {
      q(i);
      if (i % 3 === 0) await tick();
    }
    db.emit({ type: 'refused', at: Date.now(), what: 'DROP TABLE x', rule: 'deny_sql', message: 'ddl refused' });
    await w.waitFor((m) => m.type === 'query' && m.n === last + 1);
    await db.end({ status: 'ended' });
    await w.waitFor((m) => m.type === 'end');
    expect((await w.closed).code).toBe(1000);
    const qs = w.msgs.filter((m): m is Extract<Msg, { type: 'query' }> => m.type === 'query');
    expect(qs.map((m) => m.n)).toEqual(Array.from({ length: last + 1 }, (_, k) => k + 1));
    expect(qs.slice(0, last).map((m) => m.event.data.sql)).toEqual(Array.from({ length: last }, (_, k) => `SELECT ${k + 1}`));
    expect(qs[last]!.event).toMatchObject({ kind: 'refused', actor: 'alice', data: { what: 'DROP TABLE x', rule: 'deny_sql' } });
    expect(qs[0]!.event).toMatchObject({ kind: 'query', actor: 'alice', data: { step: 'bind', params: [{ type: 23, format: 'text', value: '1' }] } });
    // The same data as the audit rows.
    const rows = (await running.store.sessionEvents(db.id)).filter((e) => e.kind === 'query' || e.kind === 'refused');
    expect(qs.map((m) => m.event.data)).toEqual(rows.map((r) => r.data));
    expect(qs.map((m) => m.event.ts)).toEqual(rows.map((r) => new Date(r.ts).toISOString()));
    expect(w.msgs.at(-1)).toEqual({ type: 'end', status: 'ended', reason: null });
  });

  it('a database watcher sees statements made before anything was flushed, and an idle session\'s later ones', async () => {
    const db = await openDb('bob');
    const w0 = await watchOk(db.id, tok('carol')); // nothing yet: empty backlog
    db.emit({ type: 'query', step: 'query', startedAt: Date.now(), durationMs: 1, sql: 'SELECT now()' });
    const w1 = await watchOk(db.id, tok('bob'));
    await w0.waitFor((m) => m.type === 'query' && m.n === 1);
    await w1.waitFor((m) => m.type === 'query' && m.n === 1);
    db.emit({ type: 'query', step: 'query', startedAt: Date.now(), durationMs: 1, sql: 'SELECT 2' });
    for (const w of [w0, w1]) expect(((await w.waitFor((m) => m.type === 'query' && m.n === 2)) as Extract<Msg, { type: 'query' }>).event.data.sql).toBe('SELECT 2');
    expect((await connect(db.id, tok('alice'))).status).toBe(404);
    await db.end({ status: 'ended' });
    for (const w of [w0, w1]) {
      await w.waitFor((m) => m.type === 'end');
      expect(w.msgs.filter((m) => m.type === 'query')).toHaveLength(2);
    }
  });

  it('a real SSH shell watched live: the prompt from before, typing as it happens, a hidden password stays redacted', async () => {
    const sshAddr = running.addresses.ssh!;
    const c = new ssh2.Client();
    await new Promise<void>((resolve, reject) => {
      c.once('ready', () => resolve());
      c.once('error', reject);
      c.connect({ host: '127.0.0.1', port: Number(sshAddr.slice(sshAddr.lastIndexOf(':') + 1)), username: 'alice@bash-box', password: PW.alice });
    });
    try {
      const stream = await new Promise<ssh2.ClientChannel>((resolve, reject) => c.shell({ term: 'xterm', cols: 90, rows: 25 }, (err, st) => (err ? reject(err) : resolve(st))));
      let screen = '';
      stream.on('data', (d: Buffer) => (screen += d.toString('utf8')));
      const waitScreen = async (re: RegExp | string, from: number): Promise<void> => {
        const until = Date.now() + 15_000;
        while (!(typeof re === 'string' ? screen.slice(from).includes(re) : re.test(screen.slice(from)))) {
          if (Date.now() > until) throw new Error(`timed out waiting for ${String(re)}; screen: ${JSON.stringify(screen.slice(-200))}`);
          await sleep(20);
        }
      };
      const type = async (keys: string): Promise<void> => {
        for (const k of keys) {
          stream.write(k);
          await sleep(10);
        }
      };
      stream.write('PS1="wk> "\r');
      await waitScreen(/wk> $/, 0);
      const session = running.broker.liveSessions().find((r) => r.target === 'bash-box' && r.user === 'alice');
      expect(session).toBeDefined();
      const w = await watchOk(session!.id, tok('carol'));
      let from = screen.length;
      await type('echo watched-$((6*7))\r');
      await waitScreen('watched-42', from);
      await w.waitFor((m) => m.type === 'event' && m.code === 'o' && m.data.includes('watched-42'));
      from = screen.length;
      await type('read -s -p "pw: " S; echo got-${#S}\r');
      await waitScreen('pw: ', from);
      await type('hunter2-secret\r');
      await waitScreen('got-14', from);
      await w.waitFor((m) => m.type === 'event' && m.data.includes('got-14'));
      stream.write('exit\r');
      await w.waitFor((m) => m.type === 'end', 20_000);
      const rec = await running.store.getSession(session!.id);
      const cast = await readCast(join(dir, 'data', rec!.recordingPath!));
      expect(w.msgs[0]).toEqual({ type: 'header', header: JSON.parse(JSON.stringify(cast.header)) });
      expect(events(w).map((e) => [e.t, e.code, e.data])).toEqual(cast.events.map((e) => [e.time, e.code, e.data]));
      expect(events(w).filter((e) => e.code === 'o').map((e) => e.data).join('')).toContain('wk> '); // from before the watch
      const all = JSON.stringify(w.msgs);
      expect(all).not.toContain('hunter2');
      // The watcher saw the redaction marker where the recording has it, not the keys.
      expect(events(w).some((e) => e.code === 'i' && e.data.includes(REDACTED))).toBe(true);
      expect(readFileSync(join(dir, 'data', rec!.recordingPath!), 'utf8')).not.toContain('hunter2');
    } finally {
      c.end();
    }
  });
});
