/**
 * Segment lockdown over HTTP (DESIGN.md §6), for users holding a role with
 * `admin: true`; the work is src/access/lockdown.ts, shared with the CLI.
 *
 *   POST /api/segments/:name/lock     {reason}
 *   POST /api/segments/:name/unlock
 */
import { Router, type Request } from 'express';
import type { Config } from '../../src/config/schema.js';
import { WicketError } from '../../src/errors.js';
import { lockSegment, unlockSegment, type LockdownDeps } from '../../src/access/lockdown.js';
import { isAdmin } from '../../src/access/rules.js';
import { principal } from './auth.js';

const MAX_REASON = 2000;

export interface SegmentsDeps extends LockdownDeps {
  readonly config: () => Config;
}

function requireAdmin(deps: SegmentsDeps, req: Request): string {
  const me = principal(req).user;
  if (!isAdmin(deps.config(), me)) throw new WicketError('WICKET_ERR_FORBIDDEN', `${me} may not lock or unlock segments (needs a role with admin: true)`);
  return me;
}

function param(req: Request, key: string): string {
  const v: unknown = req.params[key];
  return typeof v === 'string' ? v : '';
}

function reasonOf(req: Request): string {
  const b: unknown = req.body;
  const v = typeof b === 'object' && b !== null && !Array.isArray(b) ? (b as Record<string, unknown>).reason : undefined;
  if (typeof v !== 'string' || v.trim() === '') throw new WicketError('WICKET_ERR_USAGE', '"reason" is required (a non-empty string)');
  if (v.length > MAX_REASON) throw new WicketError('WICKET_ERR_USAGE', `"reason" is longer than ${MAX_REASON} characters`);
  return v;
}

export function segmentsRouter(deps: SegmentsDeps): Router {
  const r = Router();
  r.post('/:name/lock', async (req, res) => {
    const actor = requireAdmin(deps, req);
    const out = await lockSegment(deps, { segment: param(req, 'name'), reason: reasonOf(req), actor });
    res.json({ segment: out.segment, locked: true, alreadyLocked: !out.fresh });
  });
  r.post('/:name/unlock', async (req, res) => {
    const actor = requireAdmin(deps, req);
    const out = await unlockSegment(deps, { segment: param(req, 'name'), actor });
    res.json({ segment: out.segment, locked: false, wasLocked: out.wasLocked });
  });
  return r;
}
