/** AccessService: the JIT request lifecycle against a real SQLite store, with an injected clock. */
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { AccessService } from '../../../src/access/service.js';
import { parseConfig } from '../../../src/config/load.js';
import type { Config } from '../../../src/config/schema.js';
import { isWicketError, type ErrorCode } from '../../../src/errors.js';
import { decide } from '../../../src/policy/decide.js';
import { openStore } from '../../../src/store/open.js';
import type { AuditInput, Store } from '../../../src/store/types.js';
import { freshStore, tempDir } from '../store/helpers.js';

const MIN = 60_000;
const HOUR = 60 * MIN;
const T0 = Date.UTC(2026, 10, 27, 12, 0, 0);

const YAML = `
limits: { pending_request_ttl: 30m }
segments:
  - { name: payments-prod }
  - { name: web-prod }
  - { name: sandbox }
  - { name: staging }
  - { name: empty }
targets:
  - { name: orders-db, segment: payments-prod, protocol: postgres, address: 127.0.0.1:5432, user: app, password: env:PW }
  - { name: ledger-db, segment: payments-prod, protocol: postgres, address: 127.0.0.1:5432, user: app, password: env:PW }
  - { name: web-1, segment: web-prod, protocol: ssh, address: 10.0.0.5:22, user: deploy, password: env:PW, host_key: 'ssh-ed25519 AAAA' }
  - { name: sandbox, segment: sandbox, protocol: shell, command: [/bin/sh] }
  - { name: stage-db, segment: staging, protocol: postgres, address: 127.0.0.1:5432, user: app, password: env:PW }
roles:
  - name: developer
    allow:
      - { segments: [sandbox] }
      - { segments: [payments-prod], protocols: [postgres], access: read, approval: required, max_duration: 2h }
      - { segments: [empty], approval: required }
  - name: dba
    allow:
      - { segments: [web-prod], approval: required, approvals: 2, max_duration: 1h }
  - name: reader
    allow:
      - { segments: [staging], access: read }
      - { segments: [staging], access: read, approval: required }
  - { name: security, approve: [payments-prod, web-prod] }
  - name: lead
    approve: ['*']
    allow: [{ segments: [payments-prod], protocols: [postgres], access: read, approval: required }]
  - { name: admin, admin: true }
users:
  - { name: alice, roles: [developer, dba, reader] }
  - { name: bob, roles: [security] }
  - { name: carol, roles: [security] }
  - { name: dave, roles: [lead] }
  - { name: root, roles: [admin] }
  - { name: erin, roles: [] }
`;

function config(yaml = YAML): Config {
  return parseConfig(yaml, join(tempDir('wicket-access-'), 'wicket.yaml'), { PW: 'x' });
}

interface Harness {
  readonly access: AccessService;
  readonly store: Store;
  readonly events: AuditInput[];
  readonly clock: { now: number };
  /** Another service (another process's view) on the same store, same clock and audit. */
  other(store?: Store): AccessService;
}

async function harness(yaml = YAML): Promise<Harness> {
  const { store } = await freshStore();
  const cfg = config(yaml);
  const events: AuditInput[] = [];
  const clock = { now: T0 };
  const make = (s: Store): AccessService =>
    new AccessService({ config: () => cfg, store: s, audit: async (e) => void events.push(e), clock: () => clock.now });
  return { access: make(store), store, events, clock, other: (s = store) => make(s) };
}

async function code(p: Promise<unknown>): Promise<ErrorCode | 'ok'> {
  try {
    await p;
    return 'ok';
  } catch (e) {
    if (isWicketError(e)) return e.code;
    throw e;
  }
}

async function rejects(p: Promise<unknown>, c: ErrorCode, message?: RegExp | string): Promise<void> {
  let caught: unknown;
  try {
    await p;
  } catch (e) {
    caught = e;
  }
  expect(isWicketError(caught), `expected a WicketError ${c}, got ${String(caught)}`).toBe(true);
  expect((caught as { code: string }).code).toBe(c);
  if (message !== undefined) expect((caught as Error).message).toMatch(message);
}

const kinds = (events: readonly AuditInput[]): string[] => events.map((e) => e.kind);

const ordersReq = { user: 'alice', target: 'orders-db', durationMs: HOUR, reason: 'INC-42: fix stuck orders' };

describe('AccessService.request', () => {
  it('creates a pending request with the rule\u2019s approvals and the configured pending TTL, and audits it', async () => {
    const h = await harness();
    const r = await h.access.request({ ...ordersReq, reason: '  INC-42: fix stuck orders \n' });
    expect(r).toMatchObject({
      user: 'alice', target: 'orders-db', segment: 'payments-prod', durationMs: HOUR, reason: 'INC-42: fix stuck orders',
      state: 'pending', approvalsRequired: 1, decisions: [], createdAt: T0, pendingUntil: T0 + 30 * MIN, updatedAt: T0, grantId: null,
    });
    expect(await h.access.get(r.id)).toEqual(r);
    expect(h.events).toEqual([{
      ts: T0, kind: 'request.created', actor: 'alice', target: 'orders-db',
      data: expect.objectContaining({
        id: r.id, user: 'alice', segment: 'payments-prod', target: 'orders-db', durationMs: HOUR, reason: 'INC-42: fix stuck orders',
        comment: null, approvals: 0, approvalsRequired: 1, rules: ['developer.allow[1]'], pendingUntil: T0 + 30 * MIN,
      }),
    }]);
  });

  it('pending requests last 24h when limits.pending_request_ttl is not set', async () => {
    const h = await harness(YAML.replace('limits: { pending_request_ttl: 30m }\n', ''));
    expect((await h.access.request(ordersReq)).pendingUntil).toBe(T0 + 24 * HOUR);
  });

  it('requires a reason: trimmed, non-empty, at most 1000 characters', async () => {
    const h = await harness();
    await rejects(h.access.request({ ...ordersReq, reason: '' }), 'WICKET_ERR_USAGE', /reason is required/);
    await rejects(h.access.request({ ...ordersReq, reason: ' \t\n ' }), 'WICKET_ERR_USAGE', /reason is required/);
    await rejects(h.access.request({ ...ordersReq, reason: 'x'.repeat(1001) }), 'WICKET_ERR_USAGE', /at most 1000/);
    expect((await h.access.request({ ...ordersReq, reason: 'x'.repeat(1000) })).reason).toHaveLength(1000);
    expect(kinds(h.events)).toEqual(['request.created']);
  });

  it('enforces duration > 0 and the deciding rule\u2019s max_duration, naming the maximum', async () => {
    const h = await harness();
    for (const d of [0, -1, 1.5, Number.NaN, Infinity]) {
      await rejects(h.access.request({ ...ordersReq, durationMs: d }), 'WICKET_ERR_USAGE', /positive/);
    }
    await rejects(h.access.request({ ...ordersReq, durationMs: 2 * HOUR + 1000 }), 'WICKET_ERR_USAGE',
      'duration 2h1s exceeds the maximum of 2h for orders-db (max_duration of developer.allow[1])');
    expect((await h.access.request({ ...ordersReq, durationMs: 2 * HOUR })).durationMs).toBe(2 * HOUR);
    // web-prod's rule caps at 1h
    await rejects(h.access.request({ ...ordersReq, target: 'web-1', durationMs: 90 * MIN }), 'WICKET_ERR_USAGE', /maximum of 1h/);
  });

  it('refuses unknown users, targets and segments', async () => {
    const h = await harness();
    await rejects(h.access.request({ ...ordersReq, target: 'nope' }), 'WICKET_ERR_UNKNOWN_TARGET', 'unknown target or segment "nope"');
    await rejects(h.access.request({ ...ordersReq, user: 'mallory' }), 'WICKET_ERR_UNKNOWN_USER', /mallory/);
  });

  it('refuses when no gated rule applies, and says so when the user already has standing access', async () => {
    const h = await harness();
    await rejects(h.access.request({ ...ordersReq, user: 'erin' }), 'WICKET_ERR_POLICY_DENY', /no role of erin reaches orders-db .*approval: required/);
    await rejects(h.access.request({ ...ordersReq, user: 'bob', target: 'web-prod' }), 'WICKET_ERR_POLICY_DENY', /no role of bob has a rule with approval: required for segment web-prod/);
    await rejects(h.access.request({ ...ordersReq, target: 'sandbox' }), 'WICKET_ERR_POLICY_DENY',
      'alice already has standing write access to sandbox (developer.allow[0]); no request is needed');
    // A standing read rule beats a gated read rule at equal access, as in decide().
    await rejects(h.access.request({ ...ordersReq, target: 'stage-db' }), 'WICKET_ERR_POLICY_DENY', /standing read access to stage-db \(reader\.allow\[0\]\)/);
    await rejects(h.access.request({ ...ordersReq, target: 'staging' }), 'WICKET_ERR_POLICY_DENY', /already has standing access to every target in staging/);
    expect(h.events).toEqual([]);
  });

  it('refuses a second pending request for the same thing', async () => {
    const h = await harness();
    const r = await h.access.request(ordersReq);
    await rejects(h.access.request(ordersReq), 'WICKET_ERR_CONFLICT', `request #${r.id} for orders-db is already pending`);
    // Another target, or the whole segment, is a different request.
    expect(await code(h.access.request({ ...ordersReq, target: 'ledger-db' }))).toBe('ok');
    expect(await code(h.access.request({ ...ordersReq, target: 'payments-prod' }))).toBe('ok');
    await h.access.cancel(r.id, 'alice');
    expect(await code(h.access.request(ordersReq))).toBe('ok');
  });
});

describe('approve', () => {
  it('issues one grant: state approved, grant control pushed, audit request.approved; decide() then allows', async () => {
    const h = await harness();
    const r = await h.access.request(ordersReq);
    h.clock.now = T0 + 5 * MIN;
    const out = await h.access.approve(r.id, 'bob', ' looks fine ');
    const now = T0 + 5 * MIN;
    expect(out.grant).toEqual({
      id: expect.stringMatching(/^g_[0-9a-f]{32}$/), requestId: String(r.id), user: 'alice', target: 'orders-db', segment: 'payments-prod',
      validFrom: now, expiresAt: now + HOUR, revokedAt: null,
    });
    const grant = out.grant!;
    expect(out.request).toMatchObject({
      state: 'approved', grantId: grant.id, updatedAt: now,
      decisions: [{ by: 'bob', at: now, verdict: 'approve', comment: 'looks fine' }],
    });
    expect(await h.store.activeGrants('alice', now)).toEqual([grant]);
    const controls = await h.store.readControl(0);
    expect(controls).toEqual([expect.objectContaining({ kind: 'grant', actor: 'bob', grantId: grant.id, segment: 'payments-prod' })]);
    expect(h.events.at(-1)).toEqual({
      ts: now, kind: 'request.approved', actor: 'bob', target: 'orders-db',
      data: expect.objectContaining({
        id: r.id, user: 'alice', segment: 'payments-prod', target: 'orders-db', durationMs: HOUR, reason: ordersReq.reason,
        comment: 'looks fine', approvals: 1, approvalsRequired: 1, approvers: ['bob'], grantId: grant.id, expiresAt: now + HOUR,
      }),
    });
    const d = decide({ config: config(), user: 'alice', target: 'orders-db', now, grants: await h.store.activeGrants('alice', now), locks: [] });
    expect(d).toMatchObject({ type: 'allow', grantId: grant.id, endsAt: now + HOUR });
  });

  it('nobody approves their own request, even an approver', async () => {
    const h = await harness();
    const r = await h.access.request({ ...ordersReq, user: 'dave' });
    await rejects(h.access.approve(r.id, 'dave'), 'WICKET_ERR_FORBIDDEN', /nobody approves their own request/);
    expect((await h.access.get(r.id))?.state).toBe('pending');
    expect((await h.access.approve(r.id, 'bob')).request.state).toBe('approved');
  });

  it('only approvers of the segment decide; admins without approve: do not', async () => {
    const h = await harness();
    const r = await h.access.request(ordersReq);
    for (const who of ['erin', 'root', 'mallory']) {
      await rejects(h.access.approve(r.id, who), 'WICKET_ERR_FORBIDDEN', new RegExp(`${who} is not an approver of segment payments-prod`));
      await rejects(h.access.deny(r.id, who), 'WICKET_ERR_FORBIDDEN');
    }
    expect(h.access.canApprove('bob', 'payments-prod')).toBe(true);
    expect(h.access.canApprove('bob', 'staging')).toBe(false);
    expect(h.access.canApprove('dave', 'staging')).toBe(true); // approve: ['*']
    expect(h.access.canApprove('root', 'payments-prod')).toBe(false);
    expect(h.access.canApprove('mallory', 'payments-prod')).toBe(false);
    expect(h.access.approvers('payments-prod')).toEqual(['bob', 'carol', 'dave']);
    expect(h.access.approvers('staging')).toEqual(['dave']);
  });

  it('a two-approval rule needs two distinct approvers', async () => {
    const h = await harness();
    const r = await h.access.request({ ...ordersReq, target: 'web-1' });
    expect(r.approvalsRequired).toBe(2);
    const first = await h.access.approve(r.id, 'bob');
    expect(first.grant).toBeNull();
    expect(first.request).toMatchObject({ state: 'pending', grantId: null, decisions: [{ by: 'bob', verdict: 'approve' }] });
    expect(h.events.at(-1)).toMatchObject({ kind: 'request.approval', actor: 'bob', target: 'web-1', data: { approvals: 1, approvalsRequired: 2, approvers: ['bob'] } });
    await rejects(h.access.approve(r.id, 'bob'), 'WICKET_ERR_CONFLICT', /bob already approved request/);
    expect(await h.store.listGrants()).toEqual([]);
    const second = await h.access.approve(r.id, 'carol');
    expect(second.request.state).toBe('approved');
    expect(second.grant).toMatchObject({ target: 'web-1', segment: 'web-prod' });
    expect(second.request.decisions.map((d) => d.by)).toEqual(['bob', 'carol']);
    expect(kinds(h.events)).toEqual(['request.created', 'request.approval', 'request.approved']);
    expect(h.events.at(-1)?.data).toMatchObject({ approvals: 2, approvers: ['bob', 'carol'] });
  });

  it('approve or deny after a decision is a CONFLICT', async () => {
    const h = await harness();
    const a = await h.access.request(ordersReq);
    await h.access.deny(a.id, 'bob', 'not during the freeze');
    await rejects(h.access.approve(a.id, 'carol'), 'WICKET_ERR_CONFLICT', `cannot approve: request #${a.id} is denied`);
    await rejects(h.access.deny(a.id, 'carol'), 'WICKET_ERR_CONFLICT');
    const b = await h.access.request(ordersReq);
    await h.access.approve(b.id, 'bob');
    await rejects(h.access.approve(b.id, 'carol'), 'WICKET_ERR_CONFLICT', /is approved/);
    await rejects(h.access.deny(b.id, 'carol'), 'WICKET_ERR_CONFLICT', /is approved/);
    expect(await h.store.listGrants()).toHaveLength(1);
  });

  it('approve after the request lapsed is a CONFLICT and marks it expired', async () => {
    const h = await harness();
    const r = await h.access.request(ordersReq);
    h.clock.now = T0 + 30 * MIN; // pendingUntil is exclusive
    await rejects(h.access.approve(r.id, 'bob'), 'WICKET_ERR_CONFLICT', `cannot approve: request #${r.id} is expired`);
    expect((await h.access.get(r.id))?.state).toBe('expired');
    expect(h.events.at(-1)).toMatchObject({ kind: 'request.expired', actor: 'wicket', target: 'orders-db', data: { id: r.id, state: 'expired' } });
    expect(await h.store.listGrants()).toEqual([]);
  });

  it('unknown ids are NOT_FOUND', async () => {
    const h = await harness();
    await rejects(h.access.approve(99, 'bob'), 'WICKET_ERR_NOT_FOUND', 'no request #99');
    await rejects(h.access.deny(99, 'bob'), 'WICKET_ERR_NOT_FOUND');
    await rejects(h.access.cancel(99, 'alice'), 'WICKET_ERR_NOT_FOUND');
    await rejects(h.access.revoke(99, 'bob'), 'WICKET_ERR_NOT_FOUND');
    await rejects(h.access.waitDecided(99, new AbortController().signal, 5), 'WICKET_ERR_NOT_FOUND');
    expect(await h.access.get(99)).toBeNull();
  });
});

describe('concurrency: two services on one store never issue two grants', () => {
  it('two approvers at once: one wins, the other gets CONFLICT', async () => {
    const h = await harness();
    const r = await h.access.request(ordersReq);
    const results = await Promise.allSettled([h.access.approve(r.id, 'bob'), h.other().approve(r.id, 'carol')]);
    expect(results.filter((x) => x.status === 'fulfilled')).toHaveLength(1);
    const failed = results.filter((x): x is PromiseRejectedResult => x.status === 'rejected');
    expect(failed).toHaveLength(1);
    expect(failed[0]?.reason).toMatchObject({ code: 'WICKET_ERR_CONFLICT' });
    expect(await h.store.listGrants()).toHaveLength(1);
    expect((await h.store.readControl(0)).filter((c) => c.kind === 'grant')).toHaveLength(1);
    expect(kinds(h.events).filter((k) => k === 'request.approved')).toHaveLength(1);
  });

  it('approve and deny at once: exactly one decision stands', async () => {
    const h = await harness();
    const r = await h.access.request(ordersReq);
    const results = await Promise.allSettled([h.access.approve(r.id, 'bob'), h.other().deny(r.id, 'carol')]);
    expect(results.filter((x) => x.status === 'fulfilled')).toHaveLength(1);
    const final = await h.access.get(r.id);
    expect(await h.store.listGrants()).toHaveLength(final?.state === 'approved' ? 1 : 0);
    expect(final?.decisions).toHaveLength(1);
  });

  it('two connections to the same database file (two processes): the state CAS still lets one win', async () => {
    const h = await harness();
    const { dir } = await freshStore();
    const s1 = await openStore('sqlite', dir);
    const s2 = await openStore('sqlite', dir);
    try {
      const a = h.other(s1);
      const b = h.other(s2);
      const r = await a.request(ordersReq);
      const results = await Promise.allSettled([a.approve(r.id, 'bob'), b.approve(r.id, 'carol'), b.deny(r.id, 'dave'), a.approve(r.id, 'dave')]);
      expect(results.filter((x) => x.status === 'fulfilled')).toHaveLength(1);
      for (const x of results) if (x.status === 'rejected') expect(x.reason).toMatchObject({ code: 'WICKET_ERR_CONFLICT' });
      expect((await s1.listGrants()).length).toBeLessThanOrEqual(1);
      expect((await s2.getRequest(r.id))?.state).toMatch(/^(approved|denied)$/);
      expect(await s1.listGrants()).toHaveLength((await s1.getRequest(r.id))?.state === 'approved' ? 1 : 0);
    } finally {
      await s1.close();
      await s2.close();
    }
  });

  it('two distinct approvers of a two-approval rule at once: both count, one grant', async () => {
    const h = await harness();
    const r = await h.access.request({ ...ordersReq, target: 'web-1' });
    const [x, y] = await Promise.all([h.access.approve(r.id, 'bob'), h.other().approve(r.id, 'carol')]);
    expect([x.grant, y.grant].filter((g) => g !== null)).toHaveLength(1);
    expect((await h.access.get(r.id))?.state).toBe('approved');
    expect(await h.store.listGrants()).toHaveLength(1);
  });
});

describe('deny and cancel', () => {
  it('deny by any approver denies, keeps the comment and audits request.denied', async () => {
    const h = await harness();
    const r = await h.access.request({ ...ordersReq, target: 'web-1' });
    await h.access.approve(r.id, 'bob');
    const d = await h.access.deny(r.id, 'carol', 'use the read replica');
    expect(d).toMatchObject({ state: 'denied', grantId: null, decisions: [{ by: 'bob', verdict: 'approve' }, { by: 'carol', verdict: 'deny', comment: 'use the read replica' }] });
    expect(h.events.at(-1)).toMatchObject({ kind: 'request.denied', actor: 'carol', target: 'web-1', data: { id: r.id, comment: 'use the read replica', state: 'denied' } });
    expect(await h.store.listGrants()).toEqual([]);
  });

  it('the requester cannot deny their own request; they cancel it', async () => {
    const h = await harness();
    const r = await h.access.request({ ...ordersReq, user: 'dave' });
    await rejects(h.access.deny(r.id, 'dave'), 'WICKET_ERR_FORBIDDEN', /cancel it instead/);
    const c = await h.access.cancel(r.id, 'dave');
    expect(c.state).toBe('cancelled');
    expect(h.events.at(-1)).toMatchObject({ kind: 'request.cancelled', actor: 'dave', target: 'orders-db' });
  });

  it('only the requester or an admin cancels, and only while pending', async () => {
    const h = await harness();
    const r = await h.access.request(ordersReq);
    await rejects(h.access.cancel(r.id, 'bob'), 'WICKET_ERR_FORBIDDEN', /only alice \(or an admin\) can cancel/);
    expect((await h.access.cancel(r.id, 'root')).state).toBe('cancelled');
    await rejects(h.access.cancel(r.id, 'alice'), 'WICKET_ERR_CONFLICT', /is cancelled/);
    await rejects(h.access.approve(r.id, 'bob'), 'WICKET_ERR_CONFLICT', /is cancelled/);
    const s = await h.access.request(ordersReq);
    await h.access.approve(s.id, 'bob');
    await rejects(h.access.cancel(s.id, 'alice'), 'WICKET_ERR_CONFLICT', new RegExp(`is approved; an approver can revoke it \\(wicket revoke ${s.id}\\)`));
  });
});

describe('revoke', () => {
  it('revokes the grant, pushes a revoke control with the grant id and audits grant.revoked', async () => {
    const h = await harness();
    const r = await h.access.request(ordersReq);
    const { grant } = await h.access.approve(r.id, 'bob');
    h.clock.now = T0 + 10 * MIN;
    const v = await h.access.revoke(r.id, 'carol', 'incident over');
    expect(v).toMatchObject({ state: 'revoked', grantId: grant!.id, updatedAt: T0 + 10 * MIN });
    expect(await h.store.activeGrants('alice', h.clock.now)).toEqual([]);
    expect((await h.store.listGrants())[0]?.revokedAt).toBe(T0 + 10 * MIN);
    expect((await h.store.readControl(0)).at(-1)).toMatchObject({ kind: 'revoke', actor: 'carol', grantId: grant!.id, segment: 'payments-prod', reason: 'incident over' });
    expect(h.events.at(-1)).toMatchObject({ kind: 'grant.revoked', actor: 'carol', target: 'orders-db', data: { id: r.id, grantId: grant!.id, comment: 'incident over', expiresAt: T0 + HOUR } });
    await rejects(h.access.revoke(r.id, 'bob'), 'WICKET_ERR_CONFLICT', `cannot revoke: request #${r.id} is revoked`);
    // The history stays.
    expect(await h.access.list({ user: 'alice' })).toHaveLength(1);
  });

  it('approvers of the segment and admins revoke; others are FORBIDDEN', async () => {
    const h = await harness();
    const r = await h.access.request(ordersReq);
    await h.access.approve(r.id, 'bob');
    await rejects(h.access.revoke(r.id, 'alice'), 'WICKET_ERR_FORBIDDEN', /not an approver of segment payments-prod or an admin/);
    await rejects(h.access.revoke(r.id, 'erin'), 'WICKET_ERR_FORBIDDEN');
    expect((await h.access.revoke(r.id, 'root')).state).toBe('revoked');
  });

  it('revoking a request that was never approved is a CONFLICT', async () => {
    const h = await harness();
    const r = await h.access.request(ordersReq);
    await rejects(h.access.revoke(r.id, 'bob'), 'WICKET_ERR_CONFLICT', /is pending/);
    expect(await h.store.readControl(0)).toEqual([]);
  });
});

describe('expiry', () => {
  it('expireDue moves lapsed pending requests to expired, once, with request.expired', async () => {
    const h = await harness();
    const a = await h.access.request(ordersReq);
    h.clock.now = T0 + 20 * MIN;
    const b = await h.access.request({ ...ordersReq, target: 'ledger-db' });
    h.clock.now = T0 + 30 * MIN - 1;
    expect(await h.access.expireDue()).toBe(0);
    h.clock.now = T0 + 30 * MIN;
    expect(await h.access.expireDue()).toBe(1);
    expect(await h.access.expireDue()).toBe(0);
    expect((await h.access.get(a.id))?.state).toBe('expired');
    expect((await h.access.get(b.id))?.state).toBe('pending');
    expect(h.events.filter((e) => e.kind === 'request.expired')).toEqual([
      { ts: T0 + 30 * MIN, kind: 'request.expired', actor: 'wicket', target: 'orders-db', data: expect.objectContaining({ id: a.id, user: 'alice', state: 'expired', pendingUntil: T0 + 30 * MIN }) },
    ]);
    await rejects(h.access.cancel(a.id, 'alice'), 'WICKET_ERR_CONFLICT', /is expired/);
  });

  it('expireDue marks approved requests whose grant ended expired (grant.expired); revoke is then a CONFLICT', async () => {
    const h = await harness();
    const r = await h.access.request(ordersReq);
    const { grant } = await h.access.approve(r.id, 'bob');
    h.clock.now = T0 + HOUR - 1;
    expect(await h.access.expireDue()).toBe(0);
    h.clock.now = T0 + HOUR;
    expect(await h.store.activeGrants('alice', h.clock.now)).toEqual([]);
    expect(await h.access.expireDue()).toBe(1);
    expect(await h.access.expireDue()).toBe(0);
    expect(await h.access.get(r.id)).toMatchObject({ state: 'expired', grantId: grant!.id });
    expect(h.events.at(-1)).toMatchObject({ kind: 'grant.expired', actor: 'wicket', target: 'orders-db', data: { id: r.id, grantId: grant!.id, expiresAt: T0 + HOUR } });
    await rejects(h.access.revoke(r.id, 'bob'), 'WICKET_ERR_CONFLICT', /is expired; its grant already ended/);
  });

  it('revoke after the grant ended (before any sweep) expires it and is a CONFLICT', async () => {
    const h = await harness();
    const r = await h.access.request(ordersReq);
    await h.access.approve(r.id, 'bob');
    h.clock.now = T0 + 2 * HOUR;
    await rejects(h.access.revoke(r.id, 'bob'), 'WICKET_ERR_CONFLICT', /is expired/);
    expect(kinds(h.events).slice(-1)).toEqual(['grant.expired']);
    expect((await h.store.readControl(0)).filter((c) => c.kind === 'revoke')).toEqual([]);
  });

  it('two sweepers at once change each request once', async () => {
    const h = await harness();
    await h.access.request(ordersReq);
    await h.access.request({ ...ordersReq, target: 'ledger-db' });
    h.clock.now = T0 + HOUR;
    const [x, y] = await Promise.all([h.access.expireDue(), h.other().expireDue()]);
    expect(x + y).toBe(2);
    expect(kinds(h.events).filter((k) => k === 'request.expired')).toHaveLength(2);
  });
});

describe('segment-wide requests', () => {
  it('a segment name requests the whole segment: target null, grant covers every target', async () => {
    const h = await harness();
    const r = await h.access.request({ ...ordersReq, target: 'payments-prod' });
    expect(r).toMatchObject({ target: null, segment: 'payments-prod', approvalsRequired: 1 });
    expect(h.events[0]).toMatchObject({ kind: 'request.created', target: 'payments-prod', data: { target: null, segment: 'payments-prod' } });
    const { grant } = await h.access.approve(r.id, 'bob');
    expect(grant).toMatchObject({ target: null, segment: 'payments-prod' });
    const grants = await h.store.activeGrants('alice', T0);
    for (const t of ['orders-db', 'ledger-db']) {
      expect(decide({ config: config(), user: 'alice', target: t, now: T0, grants, locks: [] })).toMatchObject({ type: 'allow', grantId: grant!.id });
    }
    await rejects(h.access.request({ ...ordersReq, target: 'payments-prod', durationMs: 3 * HOUR }), 'WICKET_ERR_USAGE', /maximum of 2h for segment payments-prod/);
  });

  it('takes the rule\u2019s approvals for the segment; a segment without targets uses the gated rules that name it', async () => {
    const h = await harness();
    expect((await h.access.request({ ...ordersReq, target: 'web-prod' })).approvalsRequired).toBe(2);
    const e = await h.access.request({ ...ordersReq, target: 'empty', durationMs: 30 * 86_400_000 });
    expect(e).toMatchObject({ target: null, segment: 'empty', approvalsRequired: 1 });
  });
});

describe('waitDecided', () => {
  it('resolves when the request leaves pending', async () => {
    const h = await harness();
    const r = await h.access.request(ordersReq);
    const waiting = h.access.waitDecided(r.id, new AbortController().signal, 5);
    setTimeout(() => void h.other().approve(r.id, 'bob'), 30);
    expect(await waiting).toMatchObject({ id: r.id, state: 'approved' });
  });

  it('resolves with expired once the request lapses', async () => {
    const h = await harness();
    const r = await h.access.request(ordersReq);
    const waiting = h.access.waitDecided(r.id, new AbortController().signal, 5);
    setTimeout(() => (h.clock.now = T0 + HOUR), 20);
    expect(await waiting).toMatchObject({ state: 'expired' });
    expect(kinds(h.events)).toContain('request.expired');
  });

  it('rejects when aborted', async () => {
    const h = await harness();
    const r = await h.access.request(ordersReq);
    const ac = new AbortController();
    const waiting = h.access.waitDecided(r.id, ac.signal, 1000);
    setTimeout(() => ac.abort(new Error('client went away')), 20);
    const started = Date.now();
    await expect(waiting).rejects.toThrow('client went away');
    expect(Date.now() - started).toBeLessThan(900);
    const pre = new AbortController();
    pre.abort(new Error('already'));
    await expect(h.access.waitDecided(r.id, pre.signal)).rejects.toThrow('already');
  });
});
