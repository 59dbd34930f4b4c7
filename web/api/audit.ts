/**
 * The audit log over HTTP (DESIGN.md §5, §6), for users holding a role with
 * `audit: true`; everyone else gets 403.
 *
 *   GET /api/audit?since=<seq>&kind=&user=&limit=   { events, next }: events with seq > since, in order
 *   GET /api/audit/verify                          what `wicket audit verify --json` prints
 *
 * `kind` is an exact kind (session.start) or a prefix ending in `*`
 * (session.*); `user` matches the event's actor. Filters are applied while
 * reading the chain in seq order, and one call reads at most MAX_SCAN events:
 * `next` is the seq to pass as `since` to continue, null once the end of the
 * log was reached. A page can therefore be short (even empty) with a `next`.
 *
 * Verification reads the whole log and every recording: one runs at a time,
 * and callers arriving meanwhile share its result.
 */
import { Router, type Request } from 'express';
import type { Config } from '../../src/config/schema.js';
import { WicketError } from '../../src/errors.js';
import { formatVerify, verifyAudit, type VerifyResult } from '../../src/audit/verify.js';
import type { AuditEvent, Store } from '../../src/store/types.js';
import { principal } from './auth.js';
import { isAuditor } from './me.js';

export const DEFAULT_LIMIT = 100;
export const MAX_LIMIT = 1000;
/** Events read per call at most, matching or not. */
export const MAX_SCAN = 20_000;
const PAGE = 1000;
const MAX_FILTER = 128;

export interface AuditDeps {
  readonly config: () => Config;
  readonly store: Store;
}

export interface AuditEventView {
  readonly seq: number;
  readonly ts: string;
  readonly kind: string;
  readonly actor: string;
  readonly sessionId: string | null;
  readonly target: string | null;
  readonly data: Readonly<Record<string, unknown>>;
  readonly prevHash: string;
  readonly hash: string;
}

export function auditEventView(e: AuditEvent): AuditEventView {
  return {
    seq: e.seq,
    // A hand-edited ts may not be a valid date; the event is still shown (as in `wicket audit export`).
    ts: Number.isFinite(e.ts) && Math.abs(e.ts) <= 8.64e15 ? new Date(e.ts).toISOString() : String(e.ts),
    kind: e.kind,
    actor: e.actor,
    sessionId: e.sessionId,
    target: e.target,
    data: e.data,
    prevHash: e.prevHash,
    hash: e.hash,
  };
}

function requireAuditor(deps: AuditDeps, req: Request): string {
  const me = principal(req).user;
  if (!isAuditor(deps.config(), me)) throw new WicketError('WICKET_ERR_FORBIDDEN', `${me} may not read the audit log (needs a role with audit: true)`);
  return me;
}

function queryString(req: Request, key: string): string | undefined {
  const v: unknown = req.query[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw new WicketError('WICKET_ERR_USAGE', `?${key}= given more than once or malformed`);
  if (v.length > MAX_FILTER) throw new WicketError('WICKET_ERR_USAGE', `?${key}= is longer than ${MAX_FILTER} characters`);
  return v === '' ? undefined : v;
}

function kindMatcher(kind: string | undefined): (k: string) => boolean {
  if (kind === undefined) return () => true;
  if (kind.endsWith('*')) {
    const prefix = kind.slice(0, -1);
    return (k) => k.startsWith(prefix);
  }
  return (k) => k === kind;
}

export function auditRouter(deps: AuditDeps): Router {
  const r = Router();
  let verifying: Promise<VerifyResult> | null = null;

  r.get('/', async (req, res) => {
    requireAuditor(deps, req);
    const sinceQ = queryString(req, 'since');
    if (sinceQ !== undefined && !/^[0-9]{1,15}$/.test(sinceQ)) throw new WicketError('WICKET_ERR_USAGE', '?since= must be an event seq (a whole number; 0 for the start)');
    const limitQ = queryString(req, 'limit');
    const limit = limitQ === undefined ? DEFAULT_LIMIT : /^[1-9][0-9]{0,5}$/.test(limitQ) ? Math.min(Number(limitQ), MAX_LIMIT) : NaN;
    if (Number.isNaN(limit)) throw new WicketError('WICKET_ERR_USAGE', `?limit= must be a whole number from 1 to ${MAX_LIMIT}`);
    const kind = queryString(req, 'kind');
    const kindOk = kindMatcher(kind);
    const user = queryString(req, 'user');
    const filtered = user !== undefined || kind !== undefined;

    const events: AuditEventView[] = [];
    let after = sinceQ === undefined ? 0 : Number(sinceQ);
    let scanned = 0;
    let atEnd = false;
    scan: while (scanned < MAX_SCAN) {
      const want = filtered ? Math.min(PAGE, MAX_SCAN - scanned) : limit - events.length;
      const page = await deps.store.readAudit(after, want);
      scanned += page.length;
      for (const e of page) {
        after = e.seq;
        if (!kindOk(e.kind) || (user !== undefined && e.actor !== user)) continue;
        events.push(auditEventView(e));
        if (events.length === limit) break scan;
      }
      if (page.length < want) {
        atEnd = true;
        break;
      }
    }
    res.json({ events, next: atEnd ? null : after });
  });

  r.get('/verify', async (req, res) => {
    requireAuditor(deps, req);
    // Read-only, like `wicket audit verify`: it must not add events to the log it checks.
    verifying ??= verifyAudit(deps.store, deps.config().dataDir).finally(() => (verifying = null));
    const result = await verifying;
    res.json({ ...result, summary: formatVerify(result).split('\n')[0] ?? '' });
  });

  return r;
}
