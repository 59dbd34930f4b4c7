/** Audit event -> webhook event kind, payload and the slack line (pure). */
import { describe, expect, it } from 'vitest';
import { buildPayload, describe as slackLine, notifyKind, renderBody } from '../../../src/notify/events.js';
import type { AuditEvent } from '../../../src/store/types.js';

function ev(kind: string, data: Record<string, unknown> = {}, extra: Partial<AuditEvent> = {}): AuditEvent {
  return { seq: 42, ts: Date.UTC(2026, 10, 27, 12, 0, 0), kind, actor: 'alice', sessionId: null, target: null, data, prevHash: 'p', hash: 'h', ...extra };
}

describe('notifyKind', () => {
  it('maps every audit kind in the contract', () => {
    const pairs: [string, string][] = [
      ['request.created', 'request.created'],
      ['request.approved', 'request.approved'],
      ['request.denied', 'request.denied'],
      ['request.cancelled', 'request.cancelled'],
      ['request.expired', 'request.expired'],
      ['grant.revoked', 'grant.revoked'],
      ['grant.expired', 'grant.expired'],
      ['segment.lock', 'segment.locked'],
      ['segment.unlock', 'segment.unlocked'],
      ['policy.deny', 'session.denied'],
    ];
    for (const [audit, event] of pairs) expect(notifyKind(ev(audit)), audit).toBe(event);
  });

  it('session.end only when the session was terminated', () => {
    expect(notifyKind(ev('session.end', { status: 'terminated', reason: 'segment x locked: y' }))).toBe('session.terminated');
    expect(notifyKind(ev('session.end', { status: 'ended' }))).toBeNull();
    expect(notifyKind(ev('session.end', { status: 'failed' }))).toBeNull();
    expect(notifyKind(ev('session.end', {}))).toBeNull();
  });

  it('ignores everything else', () => {
    for (const k of ['auth.ok', 'auth.fail', 'session.start', 'query', 'command', 'broker.start', 'request.approval', 'segment.locked', 'config.reload']) {
      expect(notifyKind(ev(k)), k).toBeNull();
    }
  });
});

describe('payload', () => {
  it('carries the audit seq as id, ISO time, actor, target, session, data and broker', () => {
    const e = ev('session.end', { status: 'terminated', reason: 'killed' }, { sessionId: 's-1', target: 'orders-db', actor: 'bob' });
    expect(buildPayload(e, 'session.terminated', 'brk-1')).toEqual({
      id: '42', event: 'session.terminated', at: '2026-11-27T12:00:00.000Z', actor: 'bob', target: 'orders-db', session: 's-1',
      data: { status: 'terminated', reason: 'killed' }, broker: 'brk-1',
    });
  });

  it('json body is the payload; slack body is { text, wicket: payload }', () => {
    const p = buildPayload(ev('segment.lock', { segment: 'payments', reason: 'breach <suspected> & contained' }, { actor: 'os:root' }), 'segment.locked', 'b');
    expect(JSON.parse(renderBody('json', p).toString('utf8'))).toEqual(p);
    const slack = JSON.parse(renderBody('slack', p).toString('utf8')) as { text: string; wicket: unknown };
    expect(slack.wicket).toEqual(p);
    expect(slack.text).toBe('[wicket] os:root locked segment payments: breach &lt;suspected&gt; &amp; contained');
  });

  it('slack lines for the other kinds read like sentences', () => {
    const line = (kind: string, data: Record<string, unknown>, extra: Partial<AuditEvent> = {}): string => {
      const e = ev(kind, data, extra);
      return slackLine(buildPayload(e, notifyKind(e)!, 'b'));
    };
    const req = { id: 7, user: 'alice', segment: 'payments', target: 'orders-db', duration: '1h', reason: 'incident 12', comment: null };
    expect(line('request.created', req, { target: 'orders-db' })).toBe('[wicket] alice requested access to orders-db for 1h: incident 12 (request #7)');
    expect(line('request.approved', req, { actor: 'carol' })).toBe('[wicket] carol approved request #7 of alice for orders-db (1h)');
    expect(line('request.denied', { ...req, comment: 'no' }, { actor: 'carol' })).toBe('[wicket] carol denied request #7 of alice for orders-db: no');
    expect(line('grant.revoked', { ...req, target: null }, { actor: 'carol', target: 'payments' })).toBe('[wicket] carol revoked the grant of alice for payments (request #7)');
    expect(line('grant.expired', req, { actor: 'wicket' })).toBe('[wicket] the grant of alice for orders-db (request #7) expired');
    expect(line('segment.unlock', { segment: 'payments' })).toBe('[wicket] alice unlocked segment payments');
    expect(line('policy.deny', { reason: 'no_rule', message: 'no rule allows it', protocol: 'postgres' }, { target: 'orders-db' }))
      .toBe('[wicket] denied alice → orders-db (postgres): no rule allows it');
    expect(line('session.end', { status: 'terminated', reason: 'killed by os:root' }, { sessionId: 's-9', target: 'web-1' }))
      .toBe('[wicket] session s-9 of alice on web-1 terminated: killed by os:root');
    // Missing fields never throw.
    expect(line('request.expired', {})).toBe('[wicket] request for ? expired without a decision');
  });
});
