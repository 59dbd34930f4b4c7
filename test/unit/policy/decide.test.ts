import { describe, it, expect } from 'vitest';
import { decide } from '../../../src/policy/decide.js';
import type { Allow, Deny, Grant, SegmentLock } from '../../../src/policy/types.js';
import type { Protocol } from '../../../src/config/schema.js';
import { config, grant, HOUR, lock, MIN, NOW } from './fixture.js';

interface Case {
  name: string;
  user: string;
  target: string;
  protocol?: Protocol;
  grants?: Grant[];
  locks?: SegmentLock[];
  /** [type, deny reason or null, rule label or null], asserted exactly. */
  want: ['allow' | 'deny', Deny['reason'] | null, string | null];
  /** Further fields the decision must have. */
  has?: Partial<Allow> | Partial<Deny>;
}

const segGrant = (over: Partial<Grant> = {}) => grant({ target: null, ...over });

const cases: Case[] = [
  // identity and existence, in check order
  { name: 'unknown user', user: 'mallory', target: 'sandbox', want: ['deny', 'unknown_user', null] },
  { name: 'unknown user wins over unknown target', user: 'mallory', target: 'nope', want: ['deny', 'unknown_user', null] },
  { name: 'unknown target', user: 'root', target: 'nope', want: ['deny', 'unknown_target', null] },
  { name: 'target in undefined segment', user: 'root', target: 'ghost-db', want: ['deny', 'unknown_segment', null] },
  { name: 'protocol mismatch (mysql client, postgres target)', user: 'alice', target: 'orders-db', protocol: 'mysql', grants: [grant()], want: ['deny', 'protocol_mismatch', null], has: { message: 'target orders-db speaks postgres, not mysql' } },
  { name: 'protocol mismatch beats lock', user: 'root', target: 'sandbox', protocol: 'mysql', locks: [lock('sandbox')], want: ['deny', 'protocol_mismatch', null] },
  { name: 'protocol mismatch on ssh target', user: 'carol', target: 'web-1', protocol: 'postgres', want: ['deny', 'protocol_mismatch', null] },
  { name: 'explicit matching protocol', user: 'alice', target: 'orders-db', protocol: 'postgres', grants: [grant()], want: ['allow', null, 'developer.allow[1]'] },
  { name: 'ssh client reaches a shell target', user: 'alice', target: 'sandbox', protocol: 'ssh', want: ['allow', null, 'developer.allow[0]'], has: { protocol: 'shell' } },
  // standing rules and defaults
  { name: 'standing rule, defaults', user: 'alice', target: 'sandbox', want: ['allow', null, 'developer.allow[0]'], has: { access: 'write', denySql: [], forwarding: false, maxDurationMs: null, grantId: null, endsAt: null, segment: 'sandbox' } },
  { name: 'read rule carries deny_sql', user: 'alice', target: 'stage-db', want: ['allow', null, 'developer.allow[2]'], has: { access: 'read', denySql: ['ddl'] } },
  { name: 'segment mismatch', user: 'alice', target: 'web-1', want: ['deny', 'no_rule', null], has: { message: 'no role of alice (roles: developer) allows ssh access to segment web-prod (target web-1)' } },
  { name: 'rule protocols filter excludes mysql', user: 'alice', target: 'orders-mysql', grants: [segGrant()], want: ['deny', 'no_rule', null] },
  { name: 'rule targets filter allows web-1 with forwarding', user: 'carol', target: 'web-1', want: ['allow', null, 'oncall.allow[0]'], has: { access: 'write', forwarding: true } },
  { name: 'rule targets filter excludes web-2, wildcard gated rule remains', user: 'carol', target: 'web-2', want: ['deny', 'approval_required', 'oncall.allow[1]'], has: { approval: { approvals: 1, maxDurationMs: null, segment: 'web-prod' } } },
  { name: 'wildcard standing rule', user: 'root', target: 'orders-db', want: ['allow', null, 'admin.allow[0]'], has: { access: 'write', grantId: null } },
  { name: 'wildcard standing rule on shell', user: 'root', target: 'sandbox', want: ['allow', null, 'admin.allow[0]'] },
  { name: 'wildcard gated rule without grant', user: 'carol', target: 'sandbox', want: ['deny', 'approval_required', 'oncall.allow[1]'] },
  { name: 'wildcard gated rule with target grant, grant expiry ends it', user: 'carol', target: 'orders-db', grants: [grant({ user: 'carol' })], want: ['allow', null, 'oncall.allow[1]'], has: { access: 'read', grantId: 'g1', endsAt: NOW + 4 * HOUR, maxDurationMs: null } },
  { name: 'wildcard gated rule with segment grant', user: 'carol', target: 'web-2', grants: [segGrant({ user: 'carol', segment: 'web-prod' })], want: ['allow', null, 'oncall.allow[1]'] },
  { name: 'standing write beats gated read even with a grant', user: 'carol', target: 'web-1', grants: [segGrant({ user: 'carol', segment: 'web-prod' })], want: ['allow', null, 'oncall.allow[0]'], has: { grantId: null } },
  // approval and grants
  { name: 'approval required without grant', user: 'alice', target: 'orders-db', want: ['deny', 'approval_required', 'developer.allow[1]'], has: { approval: { approvals: 1, maxDurationMs: 2 * HOUR, segment: 'payments-prod' }, message: 'access to orders-db requires an approved request (developer.allow[1]); run: wicket request orders-db --for 1h --reason "..."' } },
  { name: 'valid target grant; max_duration ends it', user: 'alice', target: 'orders-db', grants: [grant()], want: ['allow', null, 'developer.allow[1]'], has: { access: 'read', grantId: 'g1', maxDurationMs: 2 * HOUR, endsAt: NOW + 2 * HOUR, denySql: ['ddl', 'delete_without_where'] } },
  { name: 'grant expiring before max_duration ends it', user: 'alice', target: 'orders-db', grants: [grant({ expiresAt: NOW + 30 * MIN })], want: ['allow', null, 'developer.allow[1]'], has: { endsAt: NOW + 30 * MIN } },
  { name: 'expired grant', user: 'alice', target: 'orders-db', grants: [grant({ validFrom: NOW - 3 * HOUR, expiresAt: NOW - MIN })], want: ['deny', 'approval_required', 'developer.allow[1]'], has: { message: 'access to orders-db requires an approved request (developer.allow[1]; grant g1 expired at 2026-11-27T11:59:00Z); run: wicket request orders-db --for 1h --reason "..."' } },
  { name: 'grant expiring exactly now', user: 'alice', target: 'orders-db', grants: [grant({ expiresAt: NOW })], want: ['deny', 'approval_required', 'developer.allow[1]'] },
  { name: 'future grant', user: 'alice', target: 'orders-db', grants: [grant({ validFrom: NOW + MIN })], want: ['deny', 'approval_required', 'developer.allow[1]'] },
  { name: 'grant starting exactly now', user: 'alice', target: 'orders-db', grants: [grant({ validFrom: NOW })], want: ['allow', null, 'developer.allow[1]'] },
  { name: 'revoked grant', user: 'alice', target: 'orders-db', grants: [grant({ revokedAt: NOW - MIN })], want: ['deny', 'approval_required', 'developer.allow[1]'] },
  { name: 'grant for another user', user: 'alice', target: 'orders-db', grants: [grant({ user: 'bob' })], want: ['deny', 'approval_required', 'developer.allow[1]'] },
  { name: 'grant for another target', user: 'alice', target: 'orders-db', grants: [grant({ target: 'ledger-db' })], want: ['deny', 'approval_required', 'developer.allow[1]'] },
  { name: 'segment-wide grant', user: 'alice', target: 'orders-db', grants: [segGrant()], want: ['allow', null, 'developer.allow[1]'], has: { grantId: 'g1' } },
  { name: 'segment-wide grant in another segment', user: 'alice', target: 'orders-db', grants: [segGrant({ segment: 'web-prod' })], want: ['deny', 'approval_required', 'developer.allow[1]'] },
  { name: 'target grant recorded under another segment', user: 'alice', target: 'orders-db', grants: [grant({ segment: 'web-prod' })], want: ['deny', 'approval_required', 'developer.allow[1]'] },
  { name: 'latest-expiring grant is relied on', user: 'alice', target: 'orders-db', grants: [grant({ id: 'g-short', expiresAt: NOW + 20 * MIN }), segGrant({ id: 'g-long', expiresAt: NOW + 50 * MIN }), grant({ id: 'g-dead', expiresAt: NOW + 9 * HOUR, revokedAt: NOW - 1 })], want: ['allow', null, 'developer.allow[1]'], has: { grantId: 'g-long', endsAt: NOW + 50 * MIN } },
  // locks
  { name: 'locked segment beats wildcard standing rule', user: 'root', target: 'orders-db', locks: [lock('payments-prod')], want: ['deny', 'segment_locked', null], has: { message: 'segment payments-prod is locked by sec: incident 42' } },
  { name: 'locked segment beats a valid grant', user: 'alice', target: 'orders-db', grants: [grant()], locks: [lock('payments-prod')], want: ['deny', 'segment_locked', null] },
  { name: 'locked segment without grant', user: 'alice', target: 'orders-db', locks: [lock('payments-prod')], want: ['deny', 'segment_locked', null] },
  { name: 'locked segment denies a user with no rule too', user: 'erin', target: 'orders-db', locks: [lock('payments-prod')], want: ['deny', 'segment_locked', null] },
  { name: 'lock on another segment does not apply', user: 'alice', target: 'sandbox', locks: [lock('payments-prod')], want: ['allow', null, 'developer.allow[0]'] },
  // roles
  { name: 'role not in config grants nothing', user: 'dave', target: 'sandbox', want: ['deny', 'no_rule', null], has: { message: 'no role of dave (roles: ghost-role) allows shell access to segment sandbox (target sandbox)' } },
  { name: 'no roles', user: 'erin', target: 'sandbox', want: ['deny', 'no_rule', null], has: { message: 'no role of erin (roles: none) allows shell access to segment sandbox (target sandbox)' } },
  { name: 'missing role skipped, next role used', user: 'frank', target: 'sandbox', want: ['allow', null, 'developer.allow[0]'] },
  { name: 'approver-only role allows nothing', user: 'sec', target: 'orders-db', want: ['deny', 'no_rule', null] },
  { name: 'role listed twice', user: 'dup', target: 'sandbox', want: ['allow', null, 'developer.allow[0]'] },
  { name: 'multiple roles: gated write named over gated read', user: 'bob', target: 'orders-db', want: ['deny', 'approval_required', 'dba.allow[0]'], has: { approval: { approvals: 2, maxDurationMs: HOUR, segment: 'payments-prod' }, message: 'access to orders-db requires an approved request (dba.allow[0]; 2 approvals); run: wicket request orders-db --for 1h --reason "..."' } },
  { name: 'multiple roles: gated write over gated read with grant', user: 'bob', target: 'orders-db', grants: [grant({ user: 'bob' })], want: ['allow', null, 'dba.allow[0]'], has: { access: 'write', denySql: [], endsAt: NOW + HOUR } },
  { name: 'multiple roles: standing write over standing read', user: 'bob', target: 'stage-db', want: ['allow', null, 'dba.allow[1]'], has: { access: 'write', denySql: [] } },
  { name: 'multiple roles: no protocol filter reaches mysql', user: 'bob', target: 'orders-mysql', grants: [segGrant({ user: 'bob' })], want: ['allow', null, 'dba.allow[0]'] },
  { name: 'standing read over gated read (no grant)', user: 'gina', target: 'ledger-db', want: ['allow', null, 'reader.allow[0]'], has: { grantId: null } },
  { name: 'standing read over gated read even with grant', user: 'gina', target: 'ledger-db', grants: [grant({ user: 'gina', target: 'ledger-db' })], want: ['allow', null, 'reader.allow[0]'], has: { grantId: null, endsAt: null } },
  { name: 'gated write over standing read with grant', user: 'hank', target: 'ledger-db', grants: [segGrant({ user: 'hank' })], want: ['allow', null, 'dba.allow[0]'], has: { access: 'write', grantId: 'g1' } },
  { name: 'standing read when the gated write has no grant', user: 'hank', target: 'ledger-db', want: ['allow', null, 'reader.allow[0]'] },
  { name: 'reader targets filter excludes orders-db', user: 'gina', target: 'orders-db', want: ['deny', 'approval_required', 'developer.allow[1]'] },
  { name: 'config order breaks ties (approval: none is standing)', user: 'tess', target: 'sandbox', want: ['allow', null, 'twins.allow[0]'], has: { access: 'read' } },
  { name: 'wildcard read rule after a non-matching one', user: 'tess', target: 'web-2', want: ['allow', null, 'twins.allow[1]'] },
];

describe('decide', () => {
  it('has a large matrix', () => expect(cases.length).toBeGreaterThanOrEqual(45));

  it.each(cases)('$name', (c) => {
    const d = decide({ config, user: c.user, target: c.target, protocol: c.protocol, now: NOW, grants: c.grants ?? [], locks: c.locks ?? [] });
    expect([d.type, d.type === 'deny' ? d.reason : null, d.rule?.label ?? null]).toEqual(c.want);
    expect(d.user).toBe(c.user);
    expect(d.target).toBe(c.target);
    if (c.has) expect(d).toMatchObject(c.has);
    if (d.type === 'deny') expect(d.approval !== undefined).toBe(d.reason === 'approval_required');
  });

  it('is deterministic and does not mutate its input', () => {
    const grants = [grant(), segGrant({ id: 'g2' })];
    const frozen = JSON.stringify({ config, grants });
    const a = decide({ config, user: 'alice', target: 'orders-db', now: NOW, grants, locks: [] });
    const b = decide({ config, user: 'alice', target: 'orders-db', now: NOW, grants, locks: [] });
    expect(a).toEqual(b);
    expect(JSON.stringify({ config, grants })).toBe(frozen);
  });
});
