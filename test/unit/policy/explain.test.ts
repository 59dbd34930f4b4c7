import { describe, it, expect } from 'vitest';
import { decide } from '../../../src/policy/decide.js';
import { explain, isoTime } from '../../../src/policy/explain.js';
import type { Allow } from '../../../src/policy/types.js';
import { config, grant, HOUR, lock, NOW } from './fixture.js';

const check = (user: string, target: string, extra: Partial<Parameters<typeof decide>[0]> = {}) =>
  explain(decide({ config, user, target, now: NOW, grants: [], locks: [], ...extra }));

describe('explain', () => {
  it('formats times without milliseconds', () => {
    expect(isoTime(Date.UTC(2026, 10, 27, 14))).toBe('2026-11-27T14:00:00Z');
    expect(isoTime(Date.UTC(2026, 10, 27, 14, 0, 0, 5))).toBe('2026-11-27T14:00:00.005Z');
  });

  it('explains a grant-based allow', () => {
    expect(check('alice', 'orders-db', { grants: [grant({ id: 'g_123' })] })).toBe(
      'allow alice → orders-db (postgres, segment payments-prod) by developer.allow[1]: read, approval grant g_123 until 2026-11-27T14:00:00Z, max 2h, deny_sql ddl,delete_without_where');
  });

  it('explains a standing allow with forwarding', () => {
    expect(check('carol', 'web-1')).toBe('allow carol → web-1 (ssh, segment web-prod) by oncall.allow[0]: write, standing, port forwarding');
  });

  it('explains a standing allow without limits', () => {
    expect(check('alice', 'sandbox')).toBe('allow alice → sandbox (shell, segment sandbox) by developer.allow[0]: write, standing');
  });

  it('explains an approval deny with its rule', () => {
    expect(check('alice', 'orders-db')).toBe(
      'deny alice → orders-db: access to orders-db requires an approved request (developer.allow[1]); run: wicket request orders-db --for 1h --reason "..." [rule developer.allow[1]]');
  });

  it('explains a deny without a rule', () => {
    expect(check('mallory', 'orders-db')).toBe('deny mallory → orders-db: unknown user mallory');
  });

  it('keeps a multi-line lock reason on one line', () => {
    const line = check('root', 'orders-db', { locks: [lock('payments-prod', 'breach\nsee ticket 7\r\n')] });
    expect(line).toBe('deny root → orders-db: segment payments-prod is locked by sec: breach see ticket 7');
    expect(line).not.toMatch(/[\r\n]/);
  });

  it('shows endsAt for a standing rule with max_duration', () => {
    const d: Allow = {
      type: 'allow', user: 'u', target: 't', segment: 's', protocol: 'mysql', rule: { role: 'r', index: 0, label: 'r.allow[0]' },
      access: 'read', denySql: [], forwarding: false, maxDurationMs: 90 * 60_000, grantId: null, endsAt: NOW + HOUR,
    };
    expect(explain(d)).toBe('allow u → t (mysql, segment s) by r.allow[0]: read, standing until 2026-11-27T13:00:00Z, max 1h30m');
  });
});
