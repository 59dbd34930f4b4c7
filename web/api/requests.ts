/**
 * Just-in-time access over HTTP (DESIGN.md §6): the caller acts as
 * themselves; AccessService decides who may approve, deny, revoke or cancel
 * and throws WicketError otherwise (mapped to statuses in errors.ts).
 *
 *   GET  /api/requests?state=&limit=     own requests, plus those in segments the caller approves
 *                                        (admins, who may revoke or cancel any request, see all)
 *   GET  /api/requests/:id               one of those
 *   POST /api/requests                   {target, duration: "1h", reason}
 *   POST /api/requests/:id/approve       {comment?}
 *   POST /api/requests/:id/deny          {comment?}
 *   POST /api/requests/:id/revoke        {reason?}
 *   POST /api/requests/:id/cancel
 */
import { Router, type Request } from 'express';
import type { Config } from '../../src/config/schema.js';
import { WicketError } from '../../src/errors.js';
import type { AccessService } from '../../src/access/service.js';
import { isAdmin } from '../../src/access/rules.js';
import type { Grant } from '../../src/policy/types.js';
import type { AccessRequestRecord, RequestState } from '../../src/store/types.js';
import { formatDuration, parseDuration } from '../../src/util/duration.js';
import { principal, userRoles } from './auth.js';

const STATES: readonly RequestState[] = ['pending', 'approved', 'denied', 'cancelled', 'expired', 'revoked'];
const MAX_TEXT = 2000;
const DEFAULT_LIMIT = 100;
const MAX_LIMIT = 1000;

export interface RequestsDeps {
  readonly config: () => Config;
  readonly access: AccessService;
}

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

export function requestView(r: AccessRequestRecord): Record<string, unknown> {
  return {
    id: r.id,
    user: r.user,
    target: r.target,
    segment: r.segment,
    duration: formatDuration(r.durationMs),
    durationMs: r.durationMs,
    reason: r.reason,
    state: r.state,
    approvalsRequired: r.approvalsRequired,
    decisions: r.decisions.map((d) => ({ by: d.by, at: iso(d.at), verdict: d.verdict, comment: d.comment })),
    createdAt: iso(r.createdAt),
    pendingUntil: iso(r.pendingUntil),
    updatedAt: iso(r.updatedAt),
    grantId: r.grantId,
  };
}

export function grantView(g: Grant): Record<string, unknown> {
  return {
    id: g.id, requestId: g.requestId, user: g.user, target: g.target, segment: g.segment,
    validFrom: iso(g.validFrom), expiresAt: iso(g.expiresAt), revokedAt: iso(g.revokedAt),
  };
}

function body(req: Request): Record<string, unknown> {
  const b: unknown = req.body;
  if (b === undefined || b === null) return {};
  if (typeof b !== 'object' || Array.isArray(b)) throw new WicketError('WICKET_ERR_USAGE', 'expected a JSON object body');
  return b as Record<string, unknown>;
}

function requiredText(b: Record<string, unknown>, key: string): string {
  const v = b[key];
  if (typeof v !== 'string' || v.trim() === '') throw new WicketError('WICKET_ERR_USAGE', `"${key}" is required (a non-empty string)`);
  if (v.length > MAX_TEXT) throw new WicketError('WICKET_ERR_USAGE', `"${key}" is longer than ${MAX_TEXT} characters`);
  return v;
}

function optionalText(b: Record<string, unknown>, key: string): string | undefined {
  const v = b[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw new WicketError('WICKET_ERR_USAGE', `"${key}" must be a string`);
  if (v.length > MAX_TEXT) throw new WicketError('WICKET_ERR_USAGE', `"${key}" is longer than ${MAX_TEXT} characters`);
  return v;
}

function requestId(req: Request): number {
  const v: unknown = req.params.id;
  const raw = typeof v === 'string' ? v : '';
  if (!/^[1-9][0-9]{0,14}$/.test(raw)) throw new WicketError('WICKET_ERR_NOT_FOUND', `no request ${raw}`);
  return Number(raw);
}

function queryString(req: Request, key: string): string | undefined {
  const v: unknown = req.query[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw new WicketError('WICKET_ERR_USAGE', `?${key}= given more than once or malformed`);
  return v;
}

export function requestsRouter(deps: RequestsDeps): Router {
  const { access } = deps;
  const r = Router();

  /** Whether `user` may see `rec`: their own, one they could decide on, or any for an admin. */
  const visible = (user: string, rec: AccessRequestRecord): boolean =>
    rec.user === user || access.canApprove(user, rec.segment) || isAdmin(deps.config(), user);

  r.get('/', async (req, res) => {
    const me = principal(req).user;
    const stateQ = queryString(req, 'state');
    if (stateQ !== undefined && !(STATES as readonly string[]).includes(stateQ)) {
      throw new WicketError('WICKET_ERR_USAGE', `?state= must be one of ${STATES.join(', ')}`);
    }
    const state = stateQ as RequestState | undefined;
    const limitQ = queryString(req, 'limit');
    const limit = limitQ === undefined ? DEFAULT_LIMIT : /^[1-9][0-9]{0,5}$/.test(limitQ) ? Math.min(Number(limitQ), MAX_LIMIT) : NaN;
    if (Number.isNaN(limit)) throw new WicketError('WICKET_ERR_USAGE', `?limit= must be a whole number from 1 to ${MAX_LIMIT}`);
    await access.expireDue(); // lapsed requests show as expired, as in `wicket requests`
    const config = deps.config();
    const seesOthers = isAdmin(config, me) || userRoles(config, me).some((role) => (role.approve?.length ?? 0) > 0);
    const rows = seesOthers
      ? (await access.list({ state })).filter((rec) => visible(me, rec))
      : await access.list({ user: me, state });
    rows.sort((a, b) => b.id - a.id);
    res.json({ requests: rows.slice(0, limit).map(requestView), truncated: rows.length > limit });
  });

  r.get('/:id', async (req, res) => {
    const me = principal(req).user;
    const id = requestId(req);
    const rec = await access.get(id);
    if (!rec || !visible(me, rec)) throw new WicketError('WICKET_ERR_NOT_FOUND', `no request ${id}`);
    res.json({ request: requestView(rec) });
  });

  r.post('/', async (req, res) => {
    const me = principal(req).user;
    const b = body(req);
    const target = requiredText(b, 'target');
    const duration = requiredText(b, 'duration');
    const durationMs = parseDuration(duration);
    if (durationMs === null) throw new WicketError('WICKET_ERR_USAGE', `"duration": expected a duration such as 30m, 1h or 1d, got "${duration}"`);
    const reason = requiredText(b, 'reason');
    const rec = await access.request({ user: me, target, durationMs, reason });
    res.status(201).json({ request: requestView(rec) });
  });

  r.post('/:id/approve', async (req, res) => {
    const id = requestId(req);
    const comment = optionalText(body(req), 'comment');
    const out = await access.approve(id, principal(req).user, comment);
    res.json({ request: requestView(out.request), grant: out.grant ? grantView(out.grant) : null });
  });

  r.post('/:id/deny', async (req, res) => {
    const id = requestId(req);
    const comment = optionalText(body(req), 'comment');
    res.json({ request: requestView(await access.deny(id, principal(req).user, comment)) });
  });

  r.post('/:id/revoke', async (req, res) => {
    const id = requestId(req);
    const reason = optionalText(body(req), 'reason');
    res.json({ request: requestView(await access.revoke(id, principal(req).user, reason)) });
  });

  r.post('/:id/cancel', async (req, res) => {
    const id = requestId(req);
    body(req);
    res.json({ request: requestView(await access.cancel(id, principal(req).user)) });
  });

  return r;
}
