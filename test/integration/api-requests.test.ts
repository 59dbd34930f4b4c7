/**
 * The HTTP API for just-in-time access and lockdown, over real HTTP against
 * an in-process broker (web + postgres listeners on 127.0.0.1:0): bearer
 * tokens and the login cookie, request -> approve -> live psql session ->
 * revoke ends it, the state conflicts, cancel, segment lock/unlock, body cap
 * and error shapes. The postgres target is the machine's PostgreSQL
 * (127.0.0.1:5432, trust).
 */
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createToken } from '../../src/auth/tokens.js';
import { auditEvents, liveSession, pgConnect, startBroker, waitFor, type Broker } from '../support/wicket-pg.js';

const PW = { alice: 'alice-correct-horse-1', bob: 'bob-battery-staple-2', carol: 'carol-admin-pass-3', dave: 'dave-no-roles-pass-4' } as const;

const YAML = [
  'data_dir: ./data',
  'listen: { web: 127.0.0.1:0, postgres: 127.0.0.1:0 }',
  'segments: [{ name: payments }, { name: dev }]',
  'targets:',
  '  - { name: orders-db, segment: payments, protocol: postgres, address: 127.0.0.1:5432, user: postgres, database: postgres, tls: disable }',
  'roles:',
  '  - { name: developer, allow: [{ segments: [payments], protocols: [postgres], access: read, approval: required, max_duration: 4h }] }',
  '  - { name: approver, approve: [payments] }',
  '  - { name: secops, admin: true }',
  'users:',
  '  - { name: alice, roles: [developer] }',
  '  - { name: bob, roles: [approver] }',
  '  - { name: carol, roles: [secops] }',
  '  - { name: dave, roles: [] }',
  '',
].join('\n');

interface Reply {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly text: string;
  /** Parsed JSON body (every API response is JSON). */
  readonly body: Record<string, unknown>;
}

interface ErrorBody {
  readonly error: { readonly code: string; readonly message: string };
}

const errOf = (r: Reply): ErrorBody['error'] => (r.body as unknown as ErrorBody).error;

describe('HTTP API: requests, approvals, revoke and lockdown', () => {
  let b: Broker;
  let web: { host: string; port: number };
  const tokens: Record<string, string> = {};

  /** One HTTP call; `from` binds the client to another loopback address (separate throttle bucket). */
  function call(method: string, path: string, o: { token?: string; cookie?: string; json?: unknown; raw?: string; contentType?: string; headers?: Record<string, string>; from?: string } = {}): Promise<Reply> {
    const payload = o.raw ?? (o.json === undefined ? undefined : JSON.stringify(o.json));
    const headers: Record<string, string> = { ...o.headers };
    if (o.token !== undefined) headers.authorization = `Bearer ${o.token}`;
    if (o.cookie !== undefined) headers.cookie = o.cookie;
    if (payload !== undefined) {
      headers['content-type'] = o.contentType ?? 'application/json';
      headers['content-length'] = String(Buffer.byteLength(payload));
    }
    return new Promise((resolve, reject) => {
      const req = http.request({ host: web.host, port: web.port, method, path, headers, localAddress: o.from, agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let body: Record<string, unknown> = {};
          try {
            body = JSON.parse(text) as Record<string, unknown>;
          } catch {
            reject(new Error(`${method} ${path}: not JSON (${res.statusCode}): ${text.slice(0, 200)}`));
            return;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, body });
        });
      });
      req.on('error', reject);
      req.end(payload);
    });
  }

  const as = (user: keyof typeof PW) => ({ token: tokens[user]! });

  beforeAll(async () => {
    b = await startBroker(YAML, PW);
    const addr = b.running.addresses.web!;
    const i = addr.lastIndexOf(':');
    web = { host: addr.slice(0, i), port: Number(addr.slice(i + 1)) };
    for (const user of Object.keys(PW)) tokens[user] = (await createToken(b.running.store, user, { now: Date.now(), ttlMs: 3_600_000 })).token;
  });

  afterAll(async () => {
    await b?.stop();
  });

  it('healthz stays open; /api needs a caller: 401 JSON without a token and with a bad one', async () => {
    expect((await call('GET', '/healthz')).status).toBe(200);

    const none = await call('GET', '/api/requests');
    expect(none.status).toBe(401);
    expect(errOf(none).code).toBe('WICKET_ERR_AUTH');
    expect(none.headers['www-authenticate']).toBe('Bearer realm="wicket"');
    expect(none.headers['content-type']).toMatch(/^application\/json/);

    const from = '127.0.0.2';
    const unknown = await call('GET', '/api/requests', { token: `wkt_${'0'.repeat(16)}_${'A'.repeat(32)}`, from });
    expect(unknown.status).toBe(401);
    expect(errOf(unknown).code).toBe('WICKET_ERR_AUTH');
    // Right id, wrong secret: the id alone never authenticates.
    const forged = tokens.alice!.slice(0, 21) + 'B'.repeat(32);
    expect((await call('GET', '/api/requests', { token: forged, from })).status).toBe(401);
    expect((await call('GET', '/api/requests', { token: 'not-a-token', from })).status).toBe(401);
    expect((await call('GET', '/api/requests', { headers: { authorization: `Basic ${Buffer.from('alice:x').toString('base64')}` } })).status).toBe(401);

    const { token: revoked, record } = await createToken(b.running.store, 'alice', { now: Date.now(), ttlMs: 3_600_000 });
    expect((await call('GET', '/api/requests', { token: revoked, from })).status).toBe(200);
    await b.running.store.revokeToken(record.id, Date.now());
    expect((await call('GET', '/api/requests', { token: revoked, from })).status).toBe(401);

    const fails = await auditEvents(b, 'auth.fail');
    expect(fails.some((e) => e.actor === 'alice' && e.data.protocol === 'http')).toBe(true);
  });

  it('repeated bad tokens from one address are throttled (429 with Retry-After)', async () => {
    const from = '127.0.0.3';
    const bad = `wkt_${'1'.repeat(16)}_${'C'.repeat(32)}`;
    const statuses: number[] = [];
    for (let n = 0; n < 6; n++) statuses.push((await call('GET', '/api/requests', { token: bad, from })).status);
    expect(statuses).toEqual([401, 401, 401, 401, 401, 429]);
    const r = await call('GET', '/api/requests', { token: tokens.alice!, from });
    expect(r.status).toBe(429);
    expect(errOf(r).code).toBe('WICKET_ERR_AUTH_THROTTLED');
    expect(Number(r.headers['retry-after'])).toBeGreaterThan(0);
  });

  let reqId = 0;

  it('alice requests orders-db for 1h; bad input is a 400/404 with wicket codes', async () => {
    const r = await call('POST', '/api/requests', { ...as('alice'), json: { target: 'orders-db', duration: '1h', reason: 'INC-42 refund check' } });
    expect(r.status).toBe(201);
    const request = r.body.request as Record<string, unknown>;
    expect(request).toMatchObject({ user: 'alice', target: 'orders-db', segment: 'payments', state: 'pending', duration: '1h', durationMs: 3_600_000, reason: 'INC-42 refund check', approvalsRequired: 1 });
    reqId = request.id as number;
    expect(reqId).toBeGreaterThan(0);

    const dup = await call('POST', '/api/requests', { ...as('alice'), json: { target: 'orders-db', duration: '1h', reason: 'again' } });
    expect(dup.status).toBe(409);
    expect(errOf(dup).code).toBe('WICKET_ERR_CONFLICT');

    const badDuration = await call('POST', '/api/requests', { ...as('alice'), json: { target: 'orders-db', duration: 'soon', reason: 'x' } });
    expect(badDuration.status).toBe(400);
    expect(errOf(badDuration).code).toBe('WICKET_ERR_USAGE');
    const tooLong = await call('POST', '/api/requests', { ...as('alice'), json: { target: 'orders-db', duration: '5h', reason: 'x' } });
    expect(tooLong.status).toBe(400);
    const noReason = await call('POST', '/api/requests', { ...as('alice'), json: { target: 'orders-db', duration: '1h' } });
    expect(noReason.status).toBe(400);
    const unknown = await call('POST', '/api/requests', { ...as('alice'), json: { target: 'nope-db', duration: '1h', reason: 'x' } });
    expect(unknown.status).toBe(404);
    expect(errOf(unknown).code).toBe('WICKET_ERR_UNKNOWN_TARGET');
    const nothingToRequest = await call('POST', '/api/requests', { ...as('bob'), json: { target: 'orders-db', duration: '1h', reason: 'x' } });
    expect(nothingToRequest.status).toBe(403);
    expect(errOf(nothingToRequest).code).toBe('WICKET_ERR_POLICY_DENY');
    const notJson = await call('POST', '/api/requests', { ...as('alice'), raw: '{"target":', contentType: 'application/json' });
    expect(notJson.status).toBe(400);
    expect(errOf(notJson).code).toBe('WICKET_ERR_USAGE');
  });

  it('lists: alice sees her own, bob (approver of payments) and carol (admin) see it, dave does not; ?state= filters', async () => {
    const ids = (r: Reply): number[] => (r.body.requests as Array<{ id: number }>).map((x) => x.id);
    expect(ids(await call('GET', '/api/requests', as('alice')))).toContain(reqId);
    expect(ids(await call('GET', '/api/requests?state=pending', as('bob')))).toContain(reqId);
    expect(ids(await call('GET', '/api/requests?state=approved', as('bob')))).not.toContain(reqId);
    expect(ids(await call('GET', '/api/requests', as('carol')))).toContain(reqId);
    expect(ids(await call('GET', '/api/requests', as('dave')))).toEqual([]);
    const bad = await call('GET', '/api/requests?state=bogus', as('alice'));
    expect(bad.status).toBe(400);
    expect(errOf(bad).code).toBe('WICKET_ERR_USAGE');
    expect((await call('GET', `/api/requests/${reqId}`, as('bob'))).status).toBe(200);
    expect((await call('GET', `/api/requests/${reqId}`, as('dave'))).status).toBe(404);
    expect((await call('GET', '/api/requests/abc', as('alice'))).status).toBe(404);
  });

  it('alice cannot approve her own request (403); carol, not an approver, neither', async () => {
    const own = await call('POST', `/api/requests/${reqId}/approve`, { ...as('alice'), json: {} });
    expect(own.status).toBe(403);
    expect(errOf(own).code).toBe('WICKET_ERR_FORBIDDEN');
    const carol = await call('POST', `/api/requests/${reqId}/approve`, as('carol'));
    expect(carol.status).toBe(403);
    expect((await call('POST', '/api/requests/999999/approve', as('bob'))).status).toBe(404);
  });

  let grantId = '';

  it('bob approves: 200 with the grant; approving again or denying after is 409', async () => {
    const r = await call('POST', `/api/requests/${reqId}/approve`, { ...as('bob'), json: { comment: 'ok for INC-42' } });
    expect(r.status).toBe(200);
    expect(r.body.request).toMatchObject({ id: reqId, state: 'approved' });
    const grant = r.body.grant as Record<string, unknown>;
    expect(grant).toMatchObject({ user: 'alice', target: 'orders-db', segment: 'payments', requestId: String(reqId), revokedAt: null });
    grantId = grant.id as string;
    expect(Date.parse(grant.expiresAt as string) - Date.parse(grant.validFrom as string)).toBe(3_600_000);
    expect((r.body.request as { decisions: unknown[] }).decisions).toEqual([expect.objectContaining({ by: 'bob', verdict: 'approve', comment: 'ok for INC-42' })]);

    const again = await call('POST', `/api/requests/${reqId}/approve`, as('bob'));
    expect(again.status).toBe(409);
    expect(errOf(again).code).toBe('WICKET_ERR_CONFLICT');
    const deny = await call('POST', `/api/requests/${reqId}/deny`, { ...as('bob'), json: { comment: 'changed my mind' } });
    expect(deny.status).toBe(409);
    expect(errOf(deny).code).toBe('WICKET_ERR_CONFLICT');
    const cancel = await call('POST', `/api/requests/${reqId}/cancel`, as('alice'));
    expect(cancel.status).toBe(409);
  });

  it('revoke ends alice\'s live psql session that relies on the grant, and pushes the revoke control', async () => {
    const client = await pgConnect(b, { user: 'alice@orders-db', password: PW.alice, database: 'postgres' });
    try {
      expect((await client.query('select 1 as one')).rows).toEqual([{ one: 1 }]);
      const sid = await liveSession(b, 'alice', 'orders-db');
      expect(b.running.broker.liveSessions().find((s) => s.id === sid)?.grantId).toBe(grantId);

      const notApprover = await call('POST', `/api/requests/${reqId}/revoke`, { ...as('alice'), json: { reason: 'done' } });
      expect(notApprover.status).toBe(403);

      const r = await call('POST', `/api/requests/${reqId}/revoke`, { ...as('bob'), json: { reason: 'incident closed' } });
      expect(r.status).toBe(200);
      expect(r.body.request).toMatchObject({ id: reqId, state: 'revoked' });
      const controls = await b.running.store.readControl(0);
      expect(controls.some((c) => c.kind === 'revoke' && c.grantId === grantId && c.actor === 'bob')).toBe(true);

      await Promise.race([client.ended, new Promise((_r, reject) => setTimeout(() => reject(new Error('session did not end')), 5000))]);
      await waitFor(() => (b.running.broker.liveSessions().some((s) => s.id === sid) ? null : true), 5000, 'session gone');
      const row = await b.running.store.getSession(sid);
      expect(row?.status).toBe('terminated');
      expect(row?.endReason).toMatch(/revoked/);

      expect((await call('POST', `/api/requests/${reqId}/revoke`, as('bob'))).status).toBe(409);
    } finally {
      await client.end().catch(() => undefined);
    }
  });

  it('cancel: only the requester (or an admin) withdraws a pending request', async () => {
    const r = await call('POST', '/api/requests', { ...as('alice'), json: { target: 'payments', duration: '30m', reason: 'segment-wide look' } });
    expect(r.status).toBe(201);
    const id = (r.body.request as { id: number; target: string | null }).id;
    expect((r.body.request as { target: string | null }).target).toBeNull();
    const byBob = await call('POST', `/api/requests/${id}/cancel`, as('bob'));
    expect(byBob.status).toBe(403);
    const ok = await call('POST', `/api/requests/${id}/cancel`, as('alice'));
    expect(ok.status).toBe(200);
    expect(ok.body.request).toMatchObject({ id, state: 'cancelled' });
  });

  it('deny: bob denies a pending request with a comment', async () => {
    const r = await call('POST', '/api/requests', { ...as('alice'), json: { target: 'orders-db', duration: '15m', reason: 'one more look' } });
    const id = (r.body.request as { id: number }).id;
    const d = await call('POST', `/api/requests/${id}/deny`, { ...as('bob'), json: { comment: 'not now' } });
    expect(d.status).toBe(200);
    expect(d.body.request).toMatchObject({ id, state: 'denied' });
    expect((await call('POST', `/api/requests/${id}/approve`, as('bob'))).status).toBe(409);
  });

  it('segment lock/unlock: admin 200, non-admin 403, unknown 404, no reason 400; audited', async () => {
    const alice = await call('POST', '/api/segments/payments/lock', { ...as('alice'), json: { reason: 'nope' } });
    expect(alice.status).toBe(403);
    expect(errOf(alice).code).toBe('WICKET_ERR_FORBIDDEN');
    expect((await call('POST', '/api/segments/payments/lock', { ...as('bob'), json: { reason: 'nope' } })).status).toBe(403);
    expect((await call('POST', '/api/segments/payments/lock', { ...as('carol'), json: {} })).status).toBe(400);
    const unknown = await call('POST', '/api/segments/nowhere/lock', { ...as('carol'), json: { reason: 'x' } });
    expect(unknown.status).toBe(404);
    expect(errOf(unknown).code).toBe('WICKET_ERR_UNKNOWN_SEGMENT');

    const lock = await call('POST', '/api/segments/payments/lock', { ...as('carol'), json: { reason: 'incident 7' } });
    expect(lock.status).toBe(200);
    expect(lock.body).toEqual({ segment: 'payments', locked: true, alreadyLocked: false });
    expect((await b.running.store.listLocks()).map((l) => [l.segment, l.lockedBy, l.reason])).toEqual([['payments', 'carol', 'incident 7']]);
    const again = await call('POST', '/api/segments/payments/lock', { ...as('carol'), json: { reason: 'incident 7' } });
    expect(again.body).toMatchObject({ alreadyLocked: true });
    expect((await b.running.store.readControl(0)).some((c) => c.kind === 'lock' && c.segment === 'payments' && c.actor === 'carol')).toBe(true);

    expect((await call('POST', '/api/segments/payments/unlock', as('alice'))).status).toBe(403);
    const unlock = await call('POST', '/api/segments/payments/unlock', as('carol'));
    expect(unlock.status).toBe(200);
    expect(unlock.body).toEqual({ segment: 'payments', locked: false, wasLocked: true });
    expect(await b.running.store.listLocks()).toEqual([]);

    const locks = await auditEvents(b, 'segment.lock');
    expect(locks.map((e) => [e.actor, e.data])).toContainEqual(['carol', { segment: 'payments', reason: 'incident 7', alreadyLocked: false }]);
    expect((await auditEvents(b, 'segment.unlock')).map((e) => [e.actor, e.data])).toContainEqual(['carol', { segment: 'payments', wasLocked: true }]);
  });

  it('login sets an HttpOnly SameSite=Strict cookie that authenticates; bad passwords 401; logout ends it', async () => {
    const from = '127.0.0.4';
    const wrong = await call('POST', '/api/login', { json: { user: 'alice', password: 'wrong' }, from });
    expect(wrong.status).toBe(401);
    expect(errOf(wrong).code).toBe('WICKET_ERR_AUTH');
    const ghost = await call('POST', '/api/login', { json: { user: 'mallory', password: 'x' }, from });
    expect(ghost.status).toBe(401);
    expect(errOf(ghost).message).toBe(errOf(wrong).message);
    expect((await call('POST', '/api/login', { raw: 'user=alice&password=x', contentType: 'application/x-www-form-urlencoded', from })).status).toBe(400);

    const ok = await call('POST', '/api/login', { json: { user: 'alice', password: PW.alice }, from });
    expect(ok.status).toBe(200);
    expect(ok.body.user).toBe('alice');
    const setCookie = ok.headers['set-cookie']?.[0] ?? '';
    expect(setCookie).toMatch(/^wicket_session=[A-Za-z0-9_-]{43};/);
    expect(setCookie).toMatch(/HttpOnly/);
    expect(setCookie).toMatch(/SameSite=Strict/);
    expect(setCookie).toMatch(/Path=\/api/);
    const cookie = setCookie.split(';')[0]!;

    const list = await call('GET', '/api/requests', { cookie });
    expect(list.status).toBe(200);
    // A state change with the cookie must be JSON (a cross-site form cannot send that).
    const form = await call('POST', '/api/requests', { cookie, raw: 'target=orders-db', contentType: 'application/x-www-form-urlencoded' });
    expect(form.status).toBe(403);
    const made = await call('POST', '/api/requests', { cookie, json: { target: 'orders-db', duration: '10m', reason: 'via the viewer' } });
    expect(made.status).toBe(201);
    expect(made.body.request).toMatchObject({ user: 'alice' });
    expect((await call('POST', `/api/requests/${(made.body.request as { id: number }).id}/cancel`, { cookie, json: {} })).status).toBe(200);

    expect((await call('GET', '/api/requests', { cookie: 'wicket_session=' + 'x'.repeat(43) })).status).toBe(401);
    expect((await call('POST', '/api/logout', { cookie, json: {} })).status).toBe(200);
    expect((await call('GET', '/api/requests', { cookie })).status).toBe(401);
    expect((await auditEvents(b, 'auth.ok')).some((e) => e.actor === 'alice' && e.data.protocol === 'http')).toBe(true);
  });

  it('bodies over 64 KiB are refused with 413 JSON; unknown paths 404 JSON; no CORS headers', async () => {
    const big = await call('POST', '/api/requests', { ...as('alice'), json: { target: 'orders-db', duration: '1h', reason: 'x'.repeat(70 * 1024) } });
    expect(big.status).toBe(413);
    expect(errOf(big).code).toBe('WICKET_ERR_LIMIT');
    const bigLogin = await call('POST', '/api/login', { json: { user: 'alice', password: 'x'.repeat(70 * 1024) } });
    expect(bigLogin.status).toBe(413);

    const missing = await call('GET', '/api/nothing-here', as('alice'));
    expect(missing.status).toBe(404);
    expect(errOf(missing).code).toBe('WICKET_ERR_NOT_FOUND');

    const cors = await call('GET', '/api/requests', { ...as('alice'), headers: { origin: 'https://evil.example' } });
    expect(cors.status).toBe(200);
    expect(Object.keys(cors.headers).filter((h) => h.startsWith('access-control-'))).toEqual([]);
    expect(cors.headers['cache-control']).toBe('no-store');
    const preflight = await call('OPTIONS', '/api/requests', { headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' } });
    expect(Object.keys(preflight.headers).filter((h) => h.startsWith('access-control-'))).toEqual([]);
  });
});
