/**
 * `wicket policy audit`: grants and the sessions that used them, and standing
 * rules that could be just-in-time. report.test.ts covers the other sections.
 */
import { afterAll, describe, it, expect } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatPolicyReport, policyAudit, suggestsProduction, type SessionUsage } from '../../../src/policy/report.js';
import type { PolicyConfig } from '../../../src/policy/types.js';
import { readSessionUsage } from '../../../src/cli/policy.js';
import { openStore } from '../../../src/store/open.js';
import type { SessionFilter, SessionRecord, Store } from '../../../src/store/types.js';
import { grant, HOUR, MIN, NOW } from './fixture.js';

const DAY = 24 * HOUR;

const config: PolicyConfig = {
  segments: [
    { name: 'billing', description: 'Production billing,\ncard data' },
    { name: 'analytics' },
    { name: 'pre-prod' },
    { name: 'product-catalog' },
    { name: 'payments-prod' },
    { name: 'ops-tools' },
  ],
  targets: [
    { name: 'bill-db', segment: 'billing', protocol: 'postgres' },
    { name: 'bill-host', segment: 'billing', protocol: 'ssh' },
    { name: 'wh-db', segment: 'analytics', protocol: 'postgres' },
    { name: 'wh-host', segment: 'analytics', protocol: 'ssh' },
    { name: 'pp-db', segment: 'pre-prod', protocol: 'postgres' },
    { name: 'cat-db', segment: 'product-catalog', protocol: 'postgres' },
    { name: 'orders-db', segment: 'payments-prod', protocol: 'postgres' },
    { name: 'tools-db', segment: 'ops-tools', protocol: 'postgres' },
  ],
  roles: [
    {
      name: 'analyst',
      allow: [
        { segments: ['analytics'], protocols: ['postgres'], access: 'read' },
        { segments: ['billing'], protocols: ['postgres'], access: 'read' },
      ],
    },
    {
      name: 'engineer',
      allow: [
        // implicit write next to analyst.allow[0]'s read on the same target
        { segments: ['analytics'] },
        // names that only look like production
        { segments: ['pre-prod', 'product-catalog'], access: 'write' },
        // standing ssh into a segment whose description says production and dba gates
        { segments: ['billing'], protocols: ['ssh'], max_duration: '1h' },
      ],
    },
    // ssh only: shares no target with the postgres read rule, so no write_beside_read
    { name: 'sre', allow: [{ segments: ['analytics'], protocols: ['ssh'], access: 'write' }] },
    {
      name: 'dba',
      allow: [
        { segments: ['billing'], access: 'write', approval: 'required' },
        // gated write next to a read: already just-in-time, not a finding
        { segments: ['ops-tools'], access: 'write', approval: 'required' },
        { segments: ['payments-prod'], access: 'write', approval: 'required' },
      ],
    },
    { name: 'support', allow: [{ segments: ['ops-tools'], access: 'read' }] },
    // '*' standing write: reaches every segment; a '*' read rule names no segment
    { name: 'admin', allow: [{ segments: ['*'], access: 'write' }] },
    { name: 'auditor', allow: [{ segments: ['*'], access: 'read' }] },
    // explicit write in payments-prod beside an explicit read there
    { name: 'payments', allow: [{ segments: ['payments-prod'], access: 'read' }, { segments: ['payments-prod'], access: 'write' }] },
    // a standing rule nobody holds gives nobody access: not a finding
    { name: 'unheld', allow: [{ segments: ['billing'] }] },
  ],
  users: [
    { name: 'ann', roles: ['analyst'] },
    { name: 'eve', roles: ['engineer'] },
    { name: 'sam', roles: ['sre'] },
    { name: 'dan', roles: ['dba'] },
    { name: 'sue', roles: ['support'] },
    { name: 'root', roles: ['admin'] },
    { name: 'aud', roles: ['auditor'] },
    { name: 'pat', roles: ['payments'] },
  ],
};

describe('policy audit: just-in-time candidates', () => {
  const r = policyAudit(config, { sessions: [], grants: [] }, NOW);
  const find = (rule: string, segment: string) => r.justInTimeCandidates.find((c) => c.rule === rule && c.segment === segment);

  it('flags a standing rule next to a gated rule for the same segment, naming role, gating rules and a suggestion', () => {
    expect(find('analyst.allow[1]', 'billing')).toEqual({
      segment: 'billing', rule: 'analyst.allow[1]', role: 'analyst', index: 1, users: ['ann'],
      reasons: ['prod_description', 'gated_elsewhere'], access: 'read', accessExplicit: true,
      description: 'Production billing,\ncard data', gatedBy: ['dba.allow[0]'], readRules: [],
      suggestion: 'add approval: required (and a max_duration) to analyst.allow[1] so billing is reached through an approved, time-boxed request',
    });
    // it already has a max_duration, so the suggestion does not ask for one
    expect(find('engineer.allow[2]', 'billing')).toMatchObject({
      role: 'engineer', users: ['eve'], reasons: ['prod_description', 'gated_elsewhere'], access: 'write', accessExplicit: false, readRules: [],
      suggestion: 'add approval: required to engineer.allow[2] so billing is reached through an approved, time-boxed request',
    });
  });

  it('flags a write rule next to a read rule on the same targets, counting an omitted access as write', () => {
    expect(find('engineer.allow[0]', 'analytics')).toEqual({
      segment: 'analytics', rule: 'engineer.allow[0]', role: 'engineer', index: 0, users: ['eve'],
      reasons: ['write_beside_read'], access: 'write', accessExplicit: false, description: null, gatedBy: [],
      readRules: ['analyst.allow[0]'],
      suggestion: 'keep reads standing and make writes just-in-time: set access: read on engineer.allow[0] and add a write rule for analytics with approval: required, or add approval: required to engineer.allow[0]',
    });
    expect(find('payments.allow[1]', 'payments-prod')).toMatchObject({
      role: 'payments', users: ['pat'], reasons: ['prod_name', 'gated_elsewhere', 'write_beside_read'],
      access: 'write', accessExplicit: true, gatedBy: ['dba.allow[2]'], readRules: ['payments.allow[0]'],
    });
    // the read rule itself is flagged for the prod name and the gate, not for write
    expect(find('payments.allow[0]', 'payments-prod')).toMatchObject({ reasons: ['prod_name', 'gated_elsewhere'], readRules: [] });
  });

  it('does not flag a write rule whose targets no read rule reaches, a gated write, or a rule nobody holds', () => {
    expect(find('sre.allow[0]', 'analytics')).toBeUndefined();
    // dba.allow[1] is a gated write beside support's read: it makes support's standing read a candidate, and is none itself
    expect(r.justInTimeCandidates.filter((c) => c.segment === 'ops-tools').map((c) => [c.rule, c.reasons])).toEqual([
      ['support.allow[0]', ['gated_elsewhere']],
      ['admin.allow[0]', ['gated_elsewhere', 'write_beside_read']],
      ['auditor.allow[0]', ['gated_elsewhere']],
    ]);
    expect(r.justInTimeCandidates.some((c) => c.role === 'dba' || c.role === 'unheld')).toBe(false);
  });

  it("counts a '*' write rule in each segment but never a '*' read rule as the read beside it", () => {
    expect(r.justInTimeCandidates.filter((c) => c.rule === 'admin.allow[0]').map((c) => [c.segment, c.reasons, c.readRules])).toEqual([
      ['billing', ['prod_description', 'gated_elsewhere', 'write_beside_read'], ['analyst.allow[1]']],
      ['analytics', ['write_beside_read'], ['analyst.allow[0]']],
      ['payments-prod', ['prod_name', 'gated_elsewhere', 'write_beside_read'], ['payments.allow[0]']],
      ['ops-tools', ['gated_elsewhere', 'write_beside_read'], ['support.allow[0]']],
    ]);
    expect(find('admin.allow[0]', 'analytics')!.suggestion).toMatch(/^keep reads standing .*; it covers every segment, so a separate gated rule for analytics may fit better$/);
    // auditor.allow[0] is a standing '*' read into prod-named and gated segments: flagged for those, never as a write
    expect(r.justInTimeCandidates.filter((c) => c.rule === 'auditor.allow[0]').map((c) => [c.segment, c.reasons])).toEqual([
      ['billing', ['prod_description', 'gated_elsewhere']],
      ['payments-prod', ['prod_name', 'gated_elsewhere']],
      ['ops-tools', ['gated_elsewhere']],
    ]);
  });

  it('asks to gate the whole rule when the read rule beside the write needs approval itself', () => {
    const gatedRead: PolicyConfig = {
      segments: [{ name: 'ledger' }], targets: [{ name: 'ledger-db', segment: 'ledger', protocol: 'postgres' }],
      roles: [{ name: 'ops', allow: [{ segments: ['ledger', 'sandbox'], max_duration: '4h' }] }, { name: 'dev', allow: [{ segments: ['ledger'], access: 'read', approval: 'required' }] }],
      users: [{ name: 'olga', roles: ['ops'] }],
    };
    expect(policyAudit(gatedRead, { sessions: [], grants: [] }, NOW).justInTimeCandidates).toEqual([{
      segment: 'ledger', rule: 'ops.allow[0]', role: 'ops', index: 0, users: ['olga'], reasons: ['gated_elsewhere', 'write_beside_read'],
      access: 'write', accessExplicit: false, description: null, gatedBy: ['dev.allow[0]'], readRules: ['dev.allow[0]'],
      suggestion: 'add approval: required to ops.allow[0] so ledger is reached through an approved, time-boxed request; it covers ledger, sandbox, so a separate gated rule for ledger may fit better',
    }]);
  });

  it('does not take pre-prod or product for production', () => {
    expect(r.justInTimeCandidates.filter((c) => c.segment === 'pre-prod' || c.segment === 'product-catalog')).toEqual([]);
  });

  it('reads production from whole words only', () => {
    for (const yes of ['payments-prod', 'prod', 'PROD_EU', 'paymentsProd', 'prod2', 'eu.prod.db', 'Production billing', 'live production data']) {
      expect(suggestsProduction(yes), yes).toBe(true);
    }
    for (const no of ['pre-prod', 'preprod', 'nonprod', 'non-prod', 'Non-production', 'not prod', 'product-catalog', 'products', 'production-like copy', 'reproduction', 'staging', '']) {
      expect(suggestsProduction(no), no).toBe(false);
    }
  });

  it('prints role, reasons, gating/read rules, a one-line suggestion and the production heuristic', () => {
    const text = formatPolicyReport(r);
    expect(text).toContain(
      '  analyst.allow[1] gives ann standing access to billing: segment description suggests production ("Production billing, card data"); other rules require approval for it\n'
      + '    role analyst; gated by dba.allow[0]; suggestion: add approval: required (and a max_duration) to analyst.allow[1] so billing is reached through an approved, time-boxed request\n');
    expect(text).toContain(
      '  engineer.allow[0] gives eve standing access to analytics: it grants write (no access: given, so write) where read rules exist\n'
      + '    role engineer; read rules analyst.allow[0]; suggestion: keep reads standing and make writes just-in-time: set access: read on engineer.allow[0]');
    expect(text).toContain('  payments.allow[1] gives pat standing access to payments-prod: segment name suggests production; other rules require approval for it; it grants write where read rules exist\n');
    expect(text).toMatch(/\n {2}note: production is guessed from names: .*"pre-prod", "non-production", "nonprod", "preprod", "product", "production-like" do not\)\. Target names are not looked at\./);
    // every finding is two lines: the finding and its role/suggestion line
    const jit = text.slice(text.indexOf('Just-in-time candidates'));
    expect(jit.match(/^ {4}role \S+; .*suggestion: .+$/gm)).toHaveLength(r.justInTimeCandidates.length);
    expect(JSON.parse(JSON.stringify(r)).productionHeuristic).toContain('a segment counts as production when its name or description');
  });
});

describe('policy audit: grants and the sessions that used them', () => {
  const gCfg: PolicyConfig = {
    segments: [{ name: 'payments-prod' }],
    targets: [{ name: 'orders-db', segment: 'payments-prod', protocol: 'postgres' }, { name: 'ledger-db', segment: 'payments-prod', protocol: 'postgres' }],
    roles: [{ name: 'developer', allow: [{ segments: ['payments-prod'], access: 'read', approval: 'required' }] }],
    users: [{ name: 'alice', roles: ['developer'] }, { name: 'bob', roles: ['developer'] }],
  };
  const s = (over: Partial<SessionUsage>): SessionUsage => ({
    user: 'alice', target: 'orders-db', segment: 'payments-prod', rule: 'developer.allow[0]', grantId: null, startedAt: NOW - HOUR, ...over,
  });
  const grants = [
    grant({ id: 'g-used', validFrom: NOW - 3 * HOUR, expiresAt: NOW + HOUR }),
    grant({ id: 'g-idle', requestId: null, user: 'bob', validFrom: NOW - 3 * HOUR, expiresAt: NOW + HOUR }),
    grant({ id: 'g-revoked', target: null, validFrom: NOW - 50 * DAY, expiresAt: NOW - 50 * DAY + 4 * HOUR, revokedAt: NOW - 50 * DAY + HOUR }),
    grant({ id: 'g-future', validFrom: NOW + DAY, expiresAt: NOW + DAY + HOUR }),
  ];
  const sessions = [
    s({ grantId: 'g-used', startedAt: NOW - 2 * HOUR }),
    s({ grantId: 'g-used', target: 'orders-db', startedAt: NOW - 30 * MIN }),
    // inside g-idle's window, on its target, by its user, but let in by something else: not a use of g-idle
    s({ user: 'bob', grantId: null, startedAt: NOW - HOUR }),
    s({ grantId: 'g-revoked', target: 'ledger-db', startedAt: NOW - 50 * DAY + 30 * MIN }),
    // a session naming a grant that is not in the store changes nothing
    s({ grantId: 'g-gone', startedAt: NOW - MIN }),
  ];
  const r = policyAudit(gCfg, { sessions, grants }, NOW);

  it('reports who held each grant, where, when, whether revoked and how many sessions used it', () => {
    expect(r.grantsUsed).toEqual([
      { grantId: 'g-used', requestId: 'r1', user: 'alice', target: 'orders-db', segment: 'payments-prod', validFrom: NOW - 3 * HOUR, expiresAt: NOW + HOUR, revokedAt: null, state: 'active', used: true, sessions: 2, lastUsedAt: NOW - 30 * MIN },
      { grantId: 'g-idle', requestId: null, user: 'bob', target: 'orders-db', segment: 'payments-prod', validFrom: NOW - 3 * HOUR, expiresAt: NOW + HOUR, revokedAt: null, state: 'active', used: false, sessions: 0, lastUsedAt: null },
      { grantId: 'g-revoked', requestId: 'r1', user: 'alice', target: null, segment: 'payments-prod', validFrom: NOW - 50 * DAY, expiresAt: NOW - 50 * DAY + 4 * HOUR, revokedAt: NOW - 50 * DAY + HOUR, state: 'revoked', used: true, sessions: 1, lastUsedAt: NOW - 50 * DAY + 30 * MIN },
      { grantId: 'g-future', requestId: 'r1', user: 'alice', target: 'orders-db', segment: 'payments-prod', validFrom: NOW + DAY, expiresAt: NOW + DAY + HOUR, revokedAt: null, state: 'pending', used: false, sessions: 0, lastUsedAt: null },
    ]);
  });

  it('prints one line per grant with holder, target or segment, window, revocation and use', () => {
    const text = formatPolicyReport(r);
    expect(text).toContain('Grants (sessions counted by the grant recorded on them)\n'
      + '  g-used alice → orders-db (active): used by 2 sessions, last 2026-11-27T11:30:00Z; segment payments-prod, valid 2026-11-27T09:00:00Z to 2026-11-27T13:00:00Z, not revoked, request r1\n'
      + '  g-idle bob → orders-db (active): unused; segment payments-prod, valid 2026-11-27T09:00:00Z to 2026-11-27T13:00:00Z, not revoked\n'
      + '  g-revoked alice → segment payments-prod (revoked): used by 1 session, last 2026-10-08T12:30:00Z; valid 2026-10-08T12:00:00Z to 2026-10-08T16:00:00Z, revoked 2026-10-08T13:00:00Z, request r1\n'
      + '  g-future alice → orders-db (pending): unused; segment payments-prod, valid 2026-11-28T12:00:00Z to 2026-11-28T13:00:00Z, not revoked, request r1\n');
  });

  it('copes with years of sessions on one grant and one rule', () => {
    const many = Array.from({ length: 300_000 }, (_, i) => s({ grantId: 'g-used', startedAt: NOW - 40 * DAY + i }));
    const big = policyAudit(gCfg, { sessions: many, grants }, NOW);
    expect(big.grantsUsed[0]).toMatchObject({ sessions: 300_000, lastUsedAt: NOW - 40 * DAY + 299_999 });
    expect(big.unusedRules[0]).toMatchObject({ rule: 'developer.allow[0]', lastUsedAt: NOW - 40 * DAY + 299_999 });
  });

  it('prints none when there are no grants', () => {
    expect(formatPolicyReport(policyAudit(gCfg, { sessions, grants: [] }, NOW))).toContain('Grants (sessions counted by the grant recorded on them)\n  none\n');
  });
});

describe('readSessionUsage (what policy audit reads from the store)', () => {
  const dirs: string[] = [];
  afterAll(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });

  const record = (i: number, over: Partial<SessionRecord> = {}): SessionRecord => ({
    id: `s${String(i).padStart(5, '0')}`, user: 'alice', target: 'orders-db', segment: 'payments-prod', protocol: 'postgres',
    clientAddr: '127.0.0.1:5000', brokerId: 'b', rule: 'developer.allow[1]', access: 'read', grantId: null,
    startedAt: NOW - i * MIN, endedAt: null, status: 'ended', endReason: null, recordingPath: null, recordingSha256: null, recordingBytes: null, meta: {},
    ...over,
  });

  it('pages past the store limit with `before`, so old sessions and their grants are counted', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wicket-audit-'));
    dirs.push(dir);
    const store = await openStore('sqlite', dir);
    try {
      const n = 1_100;
      // a run of sessions with one startedAt across the first page's end: the keyset must break ties on id
      for (let i = 0; i < n; i++) await store.createSession(record(i, i >= 995 && i < 1_005 ? { startedAt: NOW - 995 * MIN } : {}));
      // the oldest session, 60 days back, used a grant
      await store.createSession(record(n, { startedAt: NOW - 60 * DAY, grantId: 'g-old' }));
      expect(await store.listSessions({ limit: 1_000_000 })).toHaveLength(1_000);
      const usage = await readSessionUsage(store);
      expect(usage).toHaveLength(n + 1);
      expect(new Set(usage.map((u) => `${u.startedAt}`)).size).toBeLessThan(n + 1);
      expect(usage.at(-1)).toEqual({ user: 'alice', target: 'orders-db', segment: 'payments-prod', rule: 'developer.allow[1]', grantId: 'g-old', startedAt: NOW - 60 * DAY });
      const r = policyAudit({ segments: [], targets: [], roles: [], users: [] }, { sessions: usage, grants: [grant({ id: 'g-old', validFrom: NOW - 61 * DAY, expiresAt: NOW - 59 * DAY })] }, NOW);
      expect(r.grantsUsed[0]).toMatchObject({ grantId: 'g-old', used: true, sessions: 1 });
    } finally {
      await store.close();
    }
  });

  it('stops on an empty page and on a store that ignores `before`', async () => {
    const calls: SessionFilter[] = [];
    const one = [record(1)];
    const stuck: Pick<Store, 'listSessions'> = { listSessions: async (f) => { calls.push(f); return one; } };
    expect(await readSessionUsage(stuck, 1)).toHaveLength(2);
    expect(calls).toEqual([{ limit: 1 }, { limit: 1, before: { startedAt: NOW - MIN, id: 's00001' } }]);
    const empty: Pick<Store, 'listSessions'> = { listSessions: async () => [] };
    expect(await readSessionUsage(empty)).toEqual([]);
  });
});
