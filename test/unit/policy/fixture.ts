/** A policy config that exercises every branch of decide() and the audit report. */
import type { Grant, PolicyConfig, SegmentLock } from '../../../src/policy/types.js';

export const NOW = Date.UTC(2026, 10, 27, 12, 0, 0);
export const MIN = 60_000;
export const HOUR = 3_600_000;

export const config: PolicyConfig = {
  segments: [{ name: 'payments-prod' }, { name: 'web-prod' }, { name: 'sandbox' }, { name: 'staging' }],
  targets: [
    { name: 'orders-db', segment: 'payments-prod', protocol: 'postgres' },
    { name: 'orders-mysql', segment: 'payments-prod', protocol: 'mysql' },
    { name: 'ledger-db', segment: 'payments-prod', protocol: 'postgres' },
    { name: 'web-1', segment: 'web-prod', protocol: 'ssh' },
    { name: 'web-2', segment: 'web-prod', protocol: 'ssh' },
    { name: 'sandbox', segment: 'sandbox', protocol: 'shell' },
    { name: 'stage-db', segment: 'staging', protocol: 'postgres' },
    { name: 'ghost-db', segment: 'nowhere', protocol: 'postgres' },
  ],
  roles: [
    {
      name: 'developer',
      allow: [
        { segments: ['sandbox'] },
        { segments: ['payments-prod'], protocols: ['postgres'], access: 'read', approval: 'required', max_duration: '2h', deny_sql: ['ddl', 'delete_without_where'] },
        { segments: ['staging'], access: 'read', deny_sql: ['ddl'] },
      ],
    },
    {
      name: 'dba',
      allow: [
        { segments: ['payments-prod'], access: 'write', approval: 'required', approvals: 2, max_duration: '1h' },
        { segments: ['staging'] },
      ],
    },
    {
      name: 'oncall',
      allow: [
        { segments: ['web-prod'], protocols: ['ssh'], targets: ['web-1'], forwarding: true },
        { segments: ['*'], access: 'read', approval: 'required' },
      ],
    },
    { name: 'admin', allow: [{ segments: ['*'] }] },
    { name: 'reader', allow: [{ segments: ['payments-prod'], targets: ['ledger-db'], access: 'read' }] },
    { name: 'twins', allow: [{ segments: ['sandbox'], access: 'read', approval: 'none' }, { segments: ['*'], access: 'read' }] },
    { name: 'security', audit: true, approve: ['payments-prod'] },
  ],
  users: [
    { name: 'alice', roles: ['developer'] },
    { name: 'bob', roles: ['dba', 'developer'] },
    { name: 'carol', roles: ['oncall'] },
    { name: 'root', roles: ['admin'] },
    { name: 'dave', roles: ['ghost-role'] },
    { name: 'erin', roles: [] },
    { name: 'frank', roles: ['ghost-role', 'developer'] },
    { name: 'gina', roles: ['developer', 'reader'] },
    { name: 'hank', roles: ['reader', 'dba'] },
    { name: 'tess', roles: ['twins'] },
    { name: 'dup', roles: ['developer', 'developer'] },
    { name: 'sec', roles: ['security'] },
  ],
};

/** A grant for alice on orders-db valid from an hour ago for four more hours, unless overridden. */
export function grant(over: Partial<Grant> = {}): Grant {
  return {
    id: 'g1', requestId: 'r1', user: 'alice', target: 'orders-db', segment: 'payments-prod',
    validFrom: NOW - HOUR, expiresAt: NOW + 4 * HOUR, revokedAt: null, ...over,
  };
}

export function lock(segment: string, reason = 'incident 42'): SegmentLock {
  return { segment, reason, lockedBy: 'sec', lockedAt: NOW - MIN };
}
