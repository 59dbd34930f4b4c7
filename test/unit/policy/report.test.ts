import { describe, it, expect } from 'vitest';
import { formatPolicyReport, policyAudit, type PolicyUsage } from '../../../src/policy/report.js';
import type { PolicyConfig } from '../../../src/policy/types.js';
import { grant, HOUR, NOW } from './fixture.js';

const DAY = 24 * HOUR;

const config: PolicyConfig = {
  segments: [{ name: 'payments-prod' }, { name: 'web-prod' }, { name: 'sandbox' }, { name: 'staging' }, { name: 'lab' }],
  targets: [
    { name: 'orders-db', segment: 'payments-prod', protocol: 'postgres' },
    { name: 'legacy-db', segment: 'payments-prod', protocol: 'mysql' },
    { name: 'web-1', segment: 'web-prod', protocol: 'ssh' },
    { name: 'sandbox', segment: 'sandbox', protocol: 'shell' },
    { name: 'stage-db', segment: 'staging', protocol: 'postgres' },
    { name: 'lab-box', segment: 'lab', protocol: 'ssh' },
  ],
  roles: [
    { name: 'developer', allow: [{ segments: ['sandbox'] }, { segments: ['payments-prod'], protocols: ['postgres'], access: 'read', approval: 'required' }] },
    { name: 'oncall', allow: [{ segments: ['web-prod'], protocols: ['ssh'] }] },
    { name: 'qa', allow: [{ segments: ['staging'], access: 'read' }] },
    { name: 'ops', allow: [{ segments: ['staging', 'web-prod'], approval: 'required' }] },
    { name: 'security', audit: true, approve: ['payments-prod'] },
    { name: 'ghost-approver', approve: ['web-prod'] },
  ],
  users: [
    { name: 'alice', roles: ['developer'] },
    { name: 'carol', roles: ['oncall'] },
    { name: 'quinn', roles: ['qa'] },
    { name: 'oscar', roles: ['ops'] },
    { name: 'sec', roles: ['security'] },
  ],
};

const usage: PolicyUsage = {
  sessions: [
    { user: 'alice', target: 'sandbox', segment: 'sandbox', rule: 'developer.allow[0]', grantId: null, startedAt: NOW - 2 * DAY },
    { user: 'alice', target: 'orders-db', segment: 'payments-prod', rule: 'developer.allow[1]', grantId: 'g-old', startedAt: NOW - 40 * DAY },
    { user: 'bob', target: 'orders-db', segment: 'payments-prod', rule: null, grantId: null, startedAt: NOW - 40 * DAY + 60_000 },
    { user: 'carol', target: 'web-1', segment: 'web-prod', rule: 'oncall.allow[0]', grantId: null, startedAt: NOW - DAY },
    { user: 'alice', target: 'orders-db', segment: 'payments-prod', rule: null, grantId: null, startedAt: NOW - 90 * 60_000 },
  ],
  grants: [
    grant({ id: 'g-old', validFrom: NOW - 41 * DAY, expiresAt: NOW - 40 * DAY + HOUR }),
    grant({ id: 'g-seg', target: null, validFrom: NOW - 30 * 60_000 }),
    grant({ id: 'g-revoked', validFrom: NOW - 3 * HOUR, expiresAt: NOW + HOUR, revokedAt: NOW - 2 * HOUR }),
    grant({ id: 'g-later', user: 'carol', target: 'web-1', segment: 'web-prod', validFrom: NOW + HOUR, expiresAt: NOW + 2 * HOUR }),
  ],
};

const r = policyAudit(config, usage, NOW);

describe('policyAudit', () => {
  it('lists standing access per segment, empty where none', () => {
    expect(r.standingAccess).toEqual([
      { segment: 'payments-prod', users: [] },
      { segment: 'web-prod', users: [{ user: 'carol', rules: ['oncall.allow[0]'], protocols: ['ssh'], targets: ['web-1'] }] },
      { segment: 'sandbox', users: [{ user: 'alice', rules: ['developer.allow[0]'], protocols: ['shell'], targets: ['sandbox'] }] },
      { segment: 'staging', users: [{ user: 'quinn', rules: ['qa.allow[0]'], protocols: ['postgres'], targets: ['stage-db'] }] },
      { segment: 'lab', users: [] },
    ]);
  });

  it('reports rules without a session in 30 days, with last use and holders', () => {
    expect(r.unusedRules).toEqual([
      { rule: 'developer.allow[1]', role: 'developer', index: 1, lastUsedAt: NOW - 40 * DAY, holders: ['alice'] },
      { rule: 'qa.allow[0]', role: 'qa', index: 0, lastUsedAt: null, holders: ['quinn'] },
      { rule: 'ops.allow[0]', role: 'ops', index: 0, lastUsedAt: null, holders: ['oscar'] },
    ]);
  });

  it('finds targets no rule reaches, whatever the approval', () => {
    expect(r.orphanTargets).toEqual([
      { target: 'legacy-db', segment: 'payments-prod', protocol: 'mysql' },
      { target: 'lab-box', segment: 'lab', protocol: 'ssh' },
    ]);
  });

  it('finds gated segments nobody can approve', () => {
    expect(r.segmentsWithoutApprover).toEqual([
      { segment: 'web-prod', gatedBy: ['ops.allow[0]'], approverRolesWithoutUsers: ['ghost-approver'] },
      { segment: 'staging', gatedBy: ['ops.allow[0]'], approverRolesWithoutUsers: [] },
    ]);
  });

  it('says which grants were used inside their window', () => {
    expect(r.grantsUsed.map((g) => [g.grantId, g.state, g.used, g.sessions])).toEqual([
      ['g-old', 'expired', true, 1],
      ['g-seg', 'active', false, 0],
      ['g-revoked', 'revoked', false, 0],
      ['g-later', 'pending', false, 0],
    ]);
  });

  it('suggests just-in-time approval for standing prod or gated-elsewhere access', () => {
    expect(r.justInTimeCandidates).toMatchObject([
      { segment: 'web-prod', rule: 'oncall.allow[0]', users: ['carol'], reasons: ['prod_name', 'gated_elsewhere'] },
      { segment: 'staging', rule: 'qa.allow[0]', users: ['quinn'], reasons: ['gated_elsewhere'] },
    ]);
  });

  it("counts a '*' gated rule for approvers but not as a JIT hint", () => {
    const wild: PolicyConfig = {
      segments: [{ name: 'sandbox' }], targets: [{ name: 'sb', segment: 'sandbox', protocol: 'shell' }],
      roles: [{ name: 'dev', allow: [{ segments: ['sandbox'] }, { segments: ['*'], approval: 'required' }] }, { name: 'boss', approve: ['*'] }],
      users: [{ name: 'alice', roles: ['dev'] }],
    };
    const w = policyAudit(wild, { sessions: [], grants: [] }, NOW);
    expect(w.justInTimeCandidates).toEqual([]);
    expect(w.segmentsWithoutApprover).toEqual([{ segment: 'sandbox', gatedBy: ['dev.allow[1]'], approverRolesWithoutUsers: ['boss'] }]);
    const withBoss = policyAudit({ ...wild, users: [...wild.users, { name: 'bea', roles: ['boss'] }] }, { sessions: [], grants: [] }, NOW);
    expect(withBoss.segmentsWithoutApprover).toEqual([]);
  });

  it('formats every section for people, with none where empty', () => {
    const text = formatPolicyReport(r);
    expect(text).toContain('Policy audit at 2026-11-27T12:00:00Z');
    expect(text).toContain('Standing access (no approval needed)\n  payments-prod: none\n  web-prod: carol via oncall.allow[0] (ssh: web-1)');
    expect(text).toContain('Unused rules (no session in the last 30 days)\n  developer.allow[1]: last used 2026-10-18T12:00:00Z; held by alice\n  qa.allow[0]: never used; held by quinn');
    expect(text).toContain('Orphan targets (no rule reaches them)\n  legacy-db (mysql, segment payments-prod)\n  lab-box (ssh, segment lab)');
    expect(text).toContain('  web-prod: gated by ops.allow[0]; approver roles ghost-approver have no users\n  staging: gated by ops.allow[0]; no role lists it in approve');
    expect(text).toContain('  g-old alice → orders-db (expired): used by 1 session, last 2026-10-18T12:00:00Z; segment payments-prod, valid 2026-10-17T12:00:00Z to 2026-10-18T13:00:00Z, not revoked, request r1\n');
    expect(text).toContain('  g-seg alice → segment payments-prod (active): unused; valid 2026-11-27T11:30:00Z to 2026-11-27T16:00:00Z, not revoked, request r1\n');
    expect(text).toContain('  oncall.allow[0] gives carol standing access to web-prod: segment name suggests production; other rules require approval for it');
    const empty = formatPolicyReport(policyAudit({ segments: [], targets: [], roles: [], users: [] }, { sessions: [], grants: [] }, NOW));
    expect(empty.match(/\n {2}none/g)).toHaveLength(6);
  });
});
