/**
 * The authorization matrix of the HTTP API: every endpoint under /api (and
 * /healthz) called by every kind of caller, with the status each must get.
 * Over real HTTP to an in-process broker. Callers:
 *
 *   anonymous  no credentials
 *   owner      alice (developer): owns the sessions and requests used below
 *   other      bob (developer): same role as alice, owns none of them
 *   auditor    audrey (role with audit: true)
 *   approver   pete (role with approve: [payments])
 *   admin      adam (role with admin: true, and nothing else)
 *
 * A state-changing call gets a fresh fixture per caller (a new pending
 * request, a new live session ...), so each cell is independent of the order
 * in which the callers run.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createToken } from '../../src/auth/tokens.js';
import type { ActiveSession } from '../../src/broker.js';
import type { AccessRequestRecord } from '../../src/store/types.js';
import { startBroker, type Broker } from '../support/wicket-pg.js';
import { API_PASSWORDS as PW, API_YAML as YAML, type ApiUser, apiCaller, testHandle, type Call } from '../support/wicket-api.js';

const PERSONAS = ['anonymous', 'owner', 'other', 'auditor', 'approver', 'admin'] as const;
type Persona = (typeof PERSONAS)[number];
const USER_OF: Record<Exclude<Persona, 'anonymous'>, ApiUser> = { owner: 'alice', other: 'bob', auditor: 'audrey', approver: 'pete', admin: 'adam' };

type Expect = Record<Persona, number>;
/** One status for every authenticated caller, 401 for anonymous. */
const everyone = (status: number): Expect => ({ anonymous: 401, owner: status, other: status, auditor: status, approver: status, admin: status });

interface Row {
  readonly method: 'GET' | 'POST';
  /** The path as the table shows it. */
  readonly route: string;
  /** The concrete path: a fixture made afresh for every caller when it is a function. */
  readonly path: () => string | Promise<string>;
  readonly json?: unknown;
  readonly expect: Expect;
}

describe('HTTP API authorization matrix', () => {
  let b: Broker;
  let call: Call;
  const tokens: Partial<Record<ApiUser, string>> = {};
  const ids = { aliceShell: '', aliceDb: '', bobShell: '' };
  const open: ActiveSession[] = [];

  /** A session of `user` straight on the broker (no client), ended unless `live`. */
  async function session(user: string, target: string, live: boolean): Promise<string> {
    const terminal = target === 'sandbox' ? { cols: 80, rows: 24 } : undefined;
    const s = await b.running.broker.open({ user, target, protocol: target === 'sandbox' ? 'shell' : 'postgres', clientAddr: '127.0.0.1:40000', authMethod: 'password' }, testHandle(), terminal);
    if (s.terminal) {
      s.terminal.output(Buffer.from('$ '));
      s.terminal.input(Buffer.from('id\r'));
      s.terminal.output(Buffer.from(`id\r\nuid=1000(${user})\r\n$ `));
      s.emit({ type: 'command', at: Date.now(), source: 'typed', command: 'id' });
    } else {
      s.emit({ type: 'query', step: 'query', startedAt: Date.now(), durationMs: 1, sql: `SELECT '${user}'`, rows: 1, tag: 'SELECT 1' });
    }
    if (live) open.push(s);
    else await s.end({ status: 'ended' });
    return s.id;
  }

  /**
   * A request of alice's for orders-db: pending straight in the store (several may be pending at once),
   * or approved by pete through the access service (so it has a live grant).
   */
  async function request(state: 'pending' | 'approved'): Promise<AccessRequestRecord> {
    const now = Date.now();
    const req = await b.running.store.createRequest({
      user: 'alice', target: 'orders-db', segment: 'payments', durationMs: 3_600_000, reason: 'matrix fixture', state: 'pending',
      approvalsRequired: 1, decisions: [], createdAt: now, pendingUntil: now + 3_600_000, updatedAt: now, grantId: null,
    });
    return state === 'pending' ? req : (await b.running.access.approve(req.id, 'pete')).request;
  }

  beforeAll(async () => {
    b = await startBroker(YAML, PW);
    call = apiCaller(b);
    for (const user of Object.keys(PW) as ApiUser[]) tokens[user] = (await createToken(b.running.store, user, { now: Date.now(), ttlMs: 3_600_000 })).token;
    ids.aliceShell = await session('alice', 'sandbox', false);
    ids.aliceDb = await session('alice', 'reports-db', false);
    ids.bobShell = await session('bob', 'sandbox', false);
  });

  afterAll(async () => {
    for (const s of open) await s.end({ status: 'ended' }).catch(() => undefined);
    await b?.stop();
  });

  const pending = async (): Promise<string> => `/api/requests/${(await request('pending')).id}`;
  const approved = async (): Promise<string> => `/api/requests/${(await request('approved')).id}`;
  const liveAlice = async (): Promise<string> => `/api/sessions/${await session('alice', 'reports-db', true)}`;

  const ROWS: Row[] = [
    { method: 'GET', route: '/healthz', path: () => '/healthz', expect: { ...everyone(200), anonymous: 200 } },
    { method: 'GET', route: '/api/me', path: () => '/api/me', expect: everyone(200) },
    { method: 'GET', route: '/api/map', path: () => '/api/map', expect: everyone(200) },
    { method: 'GET', route: '/api/sessions', path: () => '/api/sessions', expect: everyone(200) },
    { method: 'GET', route: '/api/sessions?user=alice', path: () => '/api/sessions?user=alice', expect: everyone(200) },
    {
      method: 'GET', route: '/api/sessions/:id (alice\'s)', path: () => `/api/sessions/${ids.aliceShell}`,
      expect: { anonymous: 401, owner: 200, other: 404, auditor: 200, approver: 404, admin: 404 },
    },
    {
      method: 'GET', route: '/api/sessions/:id (bob\'s)', path: () => `/api/sessions/${ids.bobShell}`,
      expect: { anonymous: 401, owner: 404, other: 200, auditor: 200, approver: 404, admin: 404 },
    },
    { method: 'GET', route: '/api/sessions/:id (unknown)', path: () => '/api/sessions/zzzz0000nothere', expect: everyone(404) },
    {
      method: 'GET', route: '/api/sessions/:id/cast (alice\'s shell)', path: () => `/api/sessions/${ids.aliceShell}/cast`,
      expect: { anonymous: 401, owner: 200, other: 404, auditor: 200, approver: 404, admin: 404 },
    },
    { method: 'GET', route: '/api/sessions/:id/cast (alice\'s db session)', path: () => `/api/sessions/${ids.aliceDb}/cast`, expect: everyone(404) },
    {
      method: 'POST', route: '/api/sessions/:id/kill (alice\'s live)', path: async () => `${await liveAlice()}/kill`, json: { reason: 'matrix' },
      expect: { anonymous: 401, owner: 403, other: 403, auditor: 403, approver: 403, admin: 200 },
    },
    {
      method: 'POST', route: '/api/sessions/:id/kill (ended)', path: () => `/api/sessions/${ids.aliceDb}/kill`, json: {},
      expect: { anonymous: 401, owner: 403, other: 403, auditor: 403, approver: 403, admin: 409 },
    },
    {
      method: 'POST', route: '/api/sessions/:id/kill (unknown)', path: () => '/api/sessions/zzzz0000nothere/kill', json: {},
      expect: { anonymous: 401, owner: 403, other: 403, auditor: 403, approver: 403, admin: 404 },
    },
    { method: 'GET', route: '/api/audit', path: () => '/api/audit', expect: { anonymous: 401, owner: 403, other: 403, auditor: 200, approver: 403, admin: 403 } },
    { method: 'GET', route: '/api/audit/verify', path: () => '/api/audit/verify', expect: { anonymous: 401, owner: 403, other: 403, auditor: 200, approver: 403, admin: 403 } },
    { method: 'GET', route: '/api/requests', path: () => '/api/requests', expect: everyone(200) },
    { method: 'GET', route: '/api/requests/:id (alice\'s)', path: pending, expect: { anonymous: 401, owner: 200, other: 404, auditor: 404, approver: 200, admin: 200 } },
    {
      // A segment-wide request: the per-target fixtures above stay pending and would make a target request a duplicate.
      method: 'POST', route: '/api/requests', path: () => '/api/requests', json: { target: 'payments', duration: '1h', reason: 'matrix' },
      expect: { anonymous: 401, owner: 201, other: 201, auditor: 403, approver: 403, admin: 403 },
    },
    { method: 'POST', route: '/api/requests/:id/approve', path: async () => `${await pending()}/approve`, json: {}, expect: { anonymous: 401, owner: 403, other: 403, auditor: 403, approver: 200, admin: 403 } },
    { method: 'POST', route: '/api/requests/:id/deny', path: async () => `${await pending()}/deny`, json: {}, expect: { anonymous: 401, owner: 403, other: 403, auditor: 403, approver: 200, admin: 403 } },
    { method: 'POST', route: '/api/requests/:id/cancel', path: async () => `${await pending()}/cancel`, json: {}, expect: { anonymous: 401, owner: 200, other: 403, auditor: 403, approver: 403, admin: 200 } },
    { method: 'POST', route: '/api/requests/:id/revoke', path: async () => `${await approved()}/revoke`, json: {}, expect: { anonymous: 401, owner: 403, other: 403, auditor: 403, approver: 200, admin: 200 } },
    { method: 'POST', route: '/api/segments/:name/lock', path: () => '/api/segments/lab/lock', json: { reason: 'matrix' }, expect: { anonymous: 401, owner: 403, other: 403, auditor: 403, approver: 403, admin: 200 } },
    { method: 'POST', route: '/api/segments/:name/unlock', path: () => '/api/segments/lab/unlock', json: {}, expect: { anonymous: 401, owner: 403, other: 403, auditor: 403, approver: 403, admin: 200 } },
  ];

  it.each(ROWS.map((r) => [`${r.method} ${r.route}`, r] as const))('%s', async (_name, row) => {
    const got = {} as Record<Persona, number>;
    for (const p of PERSONAS) {
      const path = await row.path();
      const token = p === 'anonymous' ? undefined : tokens[USER_OF[p]];
      const r = await call(row.method, path, { token, json: row.json });
      got[p] = r.status;
      // Every /api answer is JSON (errors included), except a recording download.
      if (path.startsWith('/api') && !(path.endsWith('/cast') && r.status === 200)) expect(r.headers['content-type'], `${p} ${path}`).toMatch(/^application\/json/);
    }
    expect(got).toEqual(row.expect);
  });

  it('the matrix names every route the API serves', () => {
    const routes = new Set(ROWS.map((r) => `${r.method} ${r.route.replace(/ \(.*\)$/, '').replace(/\?.*$/, '')}`));
    expect([...routes].sort()).toEqual([
      'GET /api/audit', 'GET /api/audit/verify', 'GET /api/map', 'GET /api/me',
      'GET /api/requests', 'GET /api/requests/:id', 'GET /api/sessions', 'GET /api/sessions/:id', 'GET /api/sessions/:id/cast',
      'GET /healthz',
      'POST /api/requests', 'POST /api/requests/:id/approve', 'POST /api/requests/:id/cancel', 'POST /api/requests/:id/deny', 'POST /api/requests/:id/revoke',
      'POST /api/segments/:name/lock', 'POST /api/segments/:name/unlock', 'POST /api/sessions/:id/kill',
    ]);
  });

  it('the login cookie works on every read endpoint; a cookie POST without JSON is refused (403) before authorization', async () => {
    const login = await call('POST', '/api/login', { json: { user: 'adam', password: PW.adam } });
    expect(login.status).toBe(200);
    const cookie = (login.headers['set-cookie']?.[0] ?? '').split(';')[0]!;
    for (const path of ['/api/me', '/api/map', '/api/sessions', '/api/requests']) expect((await call('GET', path, { cookie })).status, path).toBe(200);
    const live = await liveAlice();
    const form = await call('POST', `${live}/kill`, { cookie, raw: 'reason=csrf', contentType: 'application/x-www-form-urlencoded' });
    expect(form.status).toBe(403);
    const bare = await call('POST', `${live}/kill`, { cookie });
    expect(bare.status).toBe(403);
    expect((await b.running.store.getSession(live.split('/').pop()!))?.status).toBe('live');
    const ok = await call('POST', `${live}/kill`, { cookie, json: { reason: 'via the viewer' } });
    expect(ok.status).toBe(200);
    expect(ok.body).toEqual({ ok: true });
  });
});
