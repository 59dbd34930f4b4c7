/**
 * Just-in-time access through the real CLI (`npm test` builds dist first):
 * request, list, approve by another user, deny, cancel, revoke, expiry and
 * the errors, each run as a subprocess against one temp config and data dir.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { tmpDir, wicket, wicketAsync } from '../support/cli.js';

const CONFIG = (ttl: string): string => `
data_dir: ./data
limits: { pending_request_ttl: ${ttl} }
segments:
  - { name: payments-prod, description: Card data }
  - { name: ops }
targets:
  - { name: orders-db, segment: payments-prod, protocol: postgres, address: 127.0.0.1:5432, user: app }
  - { name: ledger-db, segment: payments-prod, protocol: postgres, address: 127.0.0.1:5432, user: app }
  - { name: ops-db, segment: ops, protocol: postgres, address: 127.0.0.1:5432, user: app }
roles:
  - name: developer
    allow:
      - { segments: [payments-prod], protocols: [postgres], access: read, approval: required, max_duration: 2h }
      - { segments: [ops], approval: required, approvals: 2 }
  - { name: security, approve: [payments-prod, ops] }
  - { name: admin, admin: true }
users:
  - { name: alice, roles: [developer] }
  - { name: bob, roles: [security] }
  - { name: carol, roles: [security] }
  - { name: root, roles: [admin] }
  - { name: erin }
`;

interface RequestJson {
  id: number;
  user: string;
  target: string | null;
  segment: string;
  state: string;
  approvals: number;
  approvalsRequired: number;
  grantId: string | null;
}

// Each step spawns the CLI (about a second each on a busy 2-core machine).
describe('wicket request / requests / approve / deny / cancel / revoke', { timeout: 120_000 }, () => {
  const dir = tmpDir('wicket-requests-');
  const cfg = join(dir, 'wicket.yaml');
  const shortCfg = join(dir, 'short.yaml');
  const w = (...args: string[]) => wicket([...args, '--config', cfg]);
  const list = (...args: string[]): RequestJson[] => JSON.parse(w('requests', '--json', ...args).stdout) as RequestJson[];

  beforeAll(() => {
    writeFileSync(cfg, CONFIG('1h'));
    // The same data dir with pending requests that lapse after a second.
    writeFileSync(shortCfg, CONFIG('1s'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('request creates a pending request and says who must approve', () => {
    const r = w('request', 'orders-db', '--for', '1h', '--reason', 'INC-42: stuck orders', '--as', 'alice');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('request #1 for orders-db (1h) created; waiting for approval by an approver of payments-prod\n');
  });

  it('requests lists them as a table, with --json, --state and --user filters', () => {
    const r = w('requests');
    expect(r.code).toBe(0);
    const [header, row, ...rest] = r.stdout.trimEnd().split('\n');
    expect(header).toMatch(/^ID\s+STATE\s+USER\s+TARGET\s+SEGMENT\s+FOR\s+APPROVALS\s+CREATED\s+UNTIL\s+REASON$/);
    expect(row).toMatch(/^#1\s+pending\s+alice\s+orders-db\s+payments-prod\s+1h\s+0\/1\s+\S+Z\s+\S+Z\s+INC-42: stuck orders$/);
    expect(rest).toEqual([]);
    expect(list()).toEqual([expect.objectContaining({ id: 1, user: 'alice', target: 'orders-db', state: 'pending', approvals: 0, approvalsRequired: 1 })]);
    expect(list('--state', 'approved')).toEqual([]);
    expect(list('--user', 'bob')).toEqual([]);
    expect(w('requests', '--state', 'approved').stdout).toBe('no requests\n');
    expect(w('requests', '--state', 'bogus')).toMatchObject({
      code: 2, stderr: 'wicket: --state: expected one of pending, approved, denied, cancelled, expired, revoked\n',
    });
  });

  it('approve: only another approver; then a grant exists and policy check allows', () => {
    expect(w('approve', '1', '--as', 'alice')).toMatchObject({ code: 1, stderr: 'wicket: alice is not an approver of segment payments-prod, so cannot approve request #1\n' });
    expect(w('approve', '1', '--as', 'erin').code).toBe(1);
    const before = w('policy', 'check', '--user', 'alice', '--target', 'orders-db');
    expect(before.stdout).toContain('deny alice → orders-db');

    const r = w('approve', '1', '--comment', 'ok for INC-42', '--as', 'bob');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^approved request #1: alice may use orders-db for 1h, until \S+Z \(grant g_[0-9a-f]{32}\)\n$/);
    expect(list('--state', 'approved')).toEqual([expect.objectContaining({ id: 1, state: 'approved', grantId: expect.stringMatching(/^g_/) })]);
    const after = w('policy', 'check', '--user', 'alice', '--target', 'orders-db');
    expect(after.stdout).toMatch(/^allow alice → orders-db/);

    expect(w('approve', '1', '--as', 'carol')).toMatchObject({ code: 1, stderr: 'wicket: cannot approve: request #1 is approved\n' });
  });

  it('deny: any approver denies; the request cannot be approved afterwards', () => {
    expect(w('request', 'ledger-db', '--for', '30m', '--reason', 'report', '--as', 'alice').stdout).toMatch(/^request #2 for ledger-db \(30m\) created/);
    const r = w('deny', '2', '--comment', 'use the replica', '--as', 'carol');
    expect(r).toMatchObject({ code: 0, stdout: 'denied request #2 (alice → ledger-db)\n' });
    expect(w('approve', '2', '--as', 'bob')).toMatchObject({ code: 1, stderr: 'wicket: cannot approve: request #2 is denied\n' });
    const j = JSON.parse(w('deny', '2', '--as', 'bob', '--json').stderr) as { error: { code: string; message: string } };
    expect(j).toEqual({ error: { code: 'WICKET_ERR_CONFLICT', message: 'cannot deny: request #2 is denied' } });
  });

  it('cancel: the requester (or an admin) withdraws a pending request; a whole segment can be requested', () => {
    expect(w('request', 'payments-prod', '--for', '30m', '--reason', 'audit prep', '--as', 'alice').stdout)
      .toBe('request #3 for segment payments-prod (30m) created; waiting for approval by an approver of payments-prod\n');
    expect(w('cancel', '3', '--as', 'bob')).toMatchObject({ code: 1, stderr: 'wicket: only alice (or an admin) can cancel request #3\n' });
    expect(w('cancel', '3', '--as', 'alice')).toMatchObject({ code: 0, stdout: 'cancelled request #3 (alice → segment payments-prod)\n' });
    expect(w('cancel', '3', '--as', 'alice')).toMatchObject({ code: 1, stderr: 'wicket: cannot cancel: request #3 is cancelled\n' });
    expect(list('--state', 'cancelled')).toEqual([expect.objectContaining({ id: 3, target: null, segment: 'payments-prod' })]);
  });

  it('revoke: an approver ends the grant; policy denies again; a second revoke conflicts', () => {
    expect(w('revoke', '1', '--as', 'alice')).toMatchObject({ code: 1, stderr: 'wicket: alice is not an approver of segment payments-prod or an admin, so cannot revoke request #1\n' });
    const r = w('revoke', '1', '--reason', 'INC-42 closed', '--as', 'bob');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^revoked request #1: grant g_[0-9a-f]{32} for alice → orders-db ended; live sessions using it end within a second\n$/);
    expect(w('policy', 'check', '--user', 'alice', '--target', 'orders-db').stdout).toContain('deny alice → orders-db');
    expect(w('revoke', '1', '--as', 'root')).toMatchObject({ code: 1, stderr: 'wicket: cannot revoke: request #1 is revoked\n' });
  });

  it('a two-approval rule needs two distinct approvers', () => {
    expect(w('request', 'ops-db', '--for', '15m', '--reason', 'rotate keys', '--as', 'alice').stdout)
      .toBe('request #4 for ops-db (15m) created; waiting for approval by 2 approvers of ops\n');
    expect(w('approve', '4', '--as', 'bob').stdout).toBe('approval 1 of 2 recorded for request #4; waiting for approval by an approver of ops\n');
    expect(w('approve', '4', '--as', 'bob')).toMatchObject({ code: 1, stderr: expect.stringContaining('bob already approved request #4') });
    expect(w('approve', '4', '--as', 'carol').stdout).toMatch(/^approved request #4: alice may use ops-db for 15m/);
  });

  it('errors exit non-zero with one clear line', () => {
    const cases: [string[], number, string][] = [
      [['request', 'nope', '--for', '1h', '--reason', 'x', '--as', 'alice'], 1, 'wicket: unknown target or segment "nope"\n'],
      [['request', 'orders-db', '--for', 'soon', '--reason', 'x', '--as', 'alice'], 2, 'wicket: --for: expected a duration such as 30m, 1h or 1d, got "soon"\n'],
      [['request', 'orders-db', '--for', '3h', '--reason', 'x', '--as', 'alice'], 2, 'wicket: duration 3h exceeds the maximum of 2h for orders-db (max_duration of developer.allow[0])\n'],
      [['request', 'orders-db', '--for', '1h', '--reason', '  ', '--as', 'alice'], 2, 'wicket: a reason is required (what you need the access for)\n'],
      [['request', 'orders-db', '--for', '1h', '--reason', 'x', '--as', 'erin'], 1, 'wicket: no role of erin reaches orders-db (segment payments-prod) with approval: required; there is nothing to request\n'],
      [['request', 'orders-db', '--for', '1h', '--reason', 'x'], 2, 'wicket: --as USER is required: name the wicket user you act as\n'],
      [['request', 'orders-db', '--for', '1h', '--reason', 'x', '--as', 'mallory'], 1, `wicket: unknown user "mallory": add it under users: in ${cfg}\n`],
      [['approve', 'abc', '--as', 'bob'], 2, 'wicket: expected a request id such as 17, got "abc"\n'],
      [['approve', '99', '--as', 'bob'], 1, 'wicket: no request #99\n'],
      [['revoke', '2', '--as', 'bob'], 1, 'wicket: cannot revoke: request #2 is denied; only an approved request has a grant to revoke\n'],
    ];
    for (const [args, code, stderr] of cases) {
      const r = w(...args);
      expect({ args, code: r.code, stderr: r.stderr, stdout: r.stdout }).toEqual({ args, code, stderr, stdout: '' });
    }
    const missing = w('request', 'orders-db', '--for', '1h', '--as', 'alice');
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain("required option '--reason <text>' not specified");
  });

  it('requests marks lapsed pending requests expired first', async () => {
    const r = wicket(['request', 'ledger-db', '--for', '10m', '--reason', 'quick look', '--as', 'alice', '--config', shortCfg]);
    expect(r.stdout).toMatch(/^request #5 for ledger-db/);
    await new Promise((res) => setTimeout(res, 1200));
    expect(list('--state', 'expired')).toEqual([expect.objectContaining({ id: 5, state: 'expired' })]);
    expect(w('approve', '5', '--as', 'bob')).toMatchObject({ code: 1, stderr: 'wicket: cannot approve: request #5 is expired\n' });
  });

  it('request --wait returns once an approver decides', async () => {
    const waiting = wicketAsync(['request', 'ledger-db', '--for', '10m', '--reason', 'wait for it', '--as', 'alice', '--wait', '--config', cfg]);
    let id: number | undefined;
    for (let i = 0; i < 100 && id === undefined; i++) {
      id = list('--state', 'pending', '--user', 'alice').find((x) => x.target === 'ledger-db')?.id;
      if (id === undefined) await new Promise((res) => setTimeout(res, 100));
    }
    expect(id).toBeDefined();
    expect(w('approve', String(id), '--as', 'carol').code).toBe(0);
    const r = await waiting;
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^request #${id} for ledger-db \\(10m\\) created; waiting for approval by an approver of payments-prod\\nrequest #${id} approved: alice may use ledger-db until \\S+Z\\n$`));
  });

  it('two approvers in two processes at once: one grant, the other gets a conflict', async () => {
    expect(w('request', 'ledger-db', '--for', '5m', '--reason', 'race', '--as', 'alice').stdout).toMatch(/^request #7 /);
    const results = await Promise.all(['bob', 'carol'].map((who) => wicketAsync(['approve', '7', '--as', who, '--config', cfg])));
    expect(results.map((r) => r.code).sort()).toEqual([0, 1]);
    expect(results.find((r) => r.code === 1)?.stderr).toBe('wicket: cannot approve: request #7 is approved\n');
    const db = new Database(join(dir, 'data', 'wicket.db'), { readonly: true });
    try {
      expect(db.prepare("SELECT count(*) AS n FROM grants WHERE request_id = '7'").get()).toEqual({ n: 1 });
      expect(db.prepare("SELECT count(*) AS n FROM control WHERE kind = 'grant'").get()).toEqual({ n: 4 });
    } finally {
      db.close();
    }
  });

  it('every step is in the audit log with its actor', () => {
    const db = new Database(join(dir, 'data', 'wicket.db'), { readonly: true });
    try {
      const rows = db.prepare("SELECT kind, actor, target, data FROM audit_events WHERE kind LIKE 'request.%' OR kind LIKE 'grant.%' ORDER BY seq").all() as { kind: string; actor: string; target: string; data: string }[];
      const brief = rows.map((r) => `${r.kind} ${r.actor} ${r.target} #${(JSON.parse(r.data) as { id: number }).id}`);
      expect(brief).toEqual([
        'request.created alice orders-db #1',
        'request.approved bob orders-db #1',
        'request.created alice ledger-db #2',
        'request.denied carol ledger-db #2',
        'request.created alice payments-prod #3',
        'request.cancelled alice payments-prod #3',
        'grant.revoked bob orders-db #1',
        'request.created alice ops-db #4',
        'request.approval bob ops-db #4',
        'request.approved carol ops-db #4',
        'request.created alice ledger-db #5',
        'request.expired wicket ledger-db #5',
        'request.created alice ledger-db #6',
        'request.approved carol ledger-db #6',
        'request.created alice ledger-db #7',
        expect.stringMatching(/^request\.approved (bob|carol) ledger-db #7$/),
      ]);
      const approved = JSON.parse(rows[1]!.data) as Record<string, unknown>;
      expect(approved).toMatchObject({ user: 'alice', segment: 'payments-prod', target: 'orders-db', durationMs: 3_600_000, reason: 'INC-42: stuck orders', comment: 'ok for INC-42', approvals: 1 });
      expect(approved.grantId).toMatch(/^g_/);
      expect(typeof approved.expiresAt).toBe('number');
    } finally {
      db.close();
    }
  });
});
