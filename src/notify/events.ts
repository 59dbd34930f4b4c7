/**
 * Audit event -> webhook event (pure, no I/O). Notifications are derived from
 * the hash-chained audit log, so a change made by the CLI in another process
 * (`wicket segment lock`) is delivered by the running broker like its own.
 */
import type { NotifyEvent } from '../config/schema.js';
import type { AuditEvent } from '../store/types.js';

/** Audit kinds that map one-to-one onto a webhook event. */
const DIRECT: Readonly<Record<string, NotifyEvent>> = {
  'request.created': 'request.created',
  'request.approved': 'request.approved',
  'request.denied': 'request.denied',
  'request.cancelled': 'request.cancelled',
  'request.expired': 'request.expired',
  'grant.revoked': 'grant.revoked',
  'grant.expired': 'grant.expired',
  'segment.lock': 'segment.locked',
  'segment.unlock': 'segment.unlocked',
  'policy.deny': 'session.denied',
};

/** The webhook event an audit event stands for, or null when it is not one. */
export function notifyKind(ev: Pick<AuditEvent, 'kind' | 'data'>): NotifyEvent | null {
  const direct = DIRECT[ev.kind];
  if (direct !== undefined) return direct;
  // broker.ts: `session.end` carries data.status; 'terminated' = killed, locked, revoked, expired or shut down.
  if (ev.kind === 'session.end' && ev.data.status === 'terminated') return 'session.terminated';
  return null;
}

/** The JSON body of a delivery (format json), and the `wicket` field of a slack one. */
export interface NotifyPayload {
  /** The audit event's seq, as a string: stable across retries and brokers, for de-duplication. */
  readonly id: string;
  readonly event: NotifyEvent;
  /** When it happened (the audit event's time), ISO 8601. */
  readonly at: string;
  readonly actor: string;
  readonly target: string | null;
  readonly session: string | null;
  /** The audit event's data, unchanged. */
  readonly data: Readonly<Record<string, unknown>>;
  /** Id of the broker that delivered it. */
  readonly broker: string;
}

export function buildPayload(ev: AuditEvent, event: NotifyEvent, broker: string): NotifyPayload {
  return {
    id: String(ev.seq),
    event,
    at: new Date(ev.ts).toISOString(),
    actor: ev.actor,
    target: ev.target,
    session: ev.sessionId,
    data: ev.data,
    broker,
  };
}

/** A short string field of `data`, or null. */
function field(data: Readonly<Record<string, unknown>>, ...keys: string[]): string | null {
  for (const k of keys) {
    const v = data[k];
    if (typeof v === 'string' && v !== '') return v;
    if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  }
  return null;
}

/** Slack mrkdwn control characters (https://api.slack.com/reference/surfaces/formatting#escaping). */
function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

const clip = (s: string, max = 300): string => (s.length > max ? `${s.slice(0, max - 1)}…` : s);

/** One human line for chat (slack format), escaped for Slack mrkdwn. Reads `data` defensively: any field may be missing. */
export function describe(p: NotifyPayload): string {
  const d = p.data;
  const who = p.actor;
  const what = field(d, 'target') ?? p.target ?? field(d, 'segment') ?? '?';
  const note = (...keys: string[]): string => {
    const v = field(d, ...keys);
    return v ? `: ${clip(v)}` : '';
  };
  const id = field(d, 'id', 'request');
  const req = id ? ` #${id}` : '';
  const user = field(d, 'user');
  const of = user && user !== who ? ` of ${user}` : '';
  const dur = field(d, 'duration');
  let line: string;
  switch (p.event) {
    case 'request.created':
      line = `${who} requested access to ${what}${dur ? ` for ${dur}` : ''}${note('reason')}${req ? ` (request${req})` : ''}`;
      break;
    case 'request.approved':
      line = `${who} approved request${req}${of} for ${what}${dur ? ` (${dur})` : ''}`;
      break;
    case 'request.denied':
      line = `${who} denied request${req}${of} for ${what}${note('comment')}`;
      break;
    case 'request.cancelled':
      line = `${who} cancelled request${req}${of} for ${what}`;
      break;
    case 'request.expired':
      line = `request${req}${of} for ${what} expired without a decision`;
      break;
    case 'grant.revoked':
      line = `${who} revoked the grant${of} for ${what}${req ? ` (request${req})` : ''}${note('comment')}`;
      break;
    case 'grant.expired':
      line = `the grant${of} for ${what}${req ? ` (request${req})` : ''} expired`;
      break;
    case 'segment.locked':
      line = `${who} locked segment ${field(d, 'segment') ?? what}${note('reason')}`;
      break;
    case 'segment.unlocked':
      line = `${who} unlocked segment ${field(d, 'segment') ?? what}`;
      break;
    case 'session.denied': {
      const proto = field(d, 'protocol');
      line = `denied ${who} → ${what}${proto ? ` (${proto})` : ''}${note('message', 'reason')}`;
      break;
    }
    case 'session.terminated':
      line = `session ${p.session ?? '?'} of ${who} on ${what} terminated${note('reason')}`;
      break;
  }
  return esc(`[wicket] ${line}`);
}

/** The exact body bytes of a delivery. */
export function renderBody(format: 'json' | 'slack', p: NotifyPayload): Buffer {
  const doc = format === 'slack' ? { text: describe(p), wicket: p } : p;
  return Buffer.from(JSON.stringify(doc), 'utf8');
}
