/**
 * Who the caller is and what the viewer may offer them (DESIGN.md §6):
 *
 *   GET /api/me   { user, roles, audit, admin, approves }
 *
 * `audit`: a role has `audit: true` (every session, the audit log, the full
 * map); `admin`: a role has `admin: true` (kill, lock); `approves`: the
 * segments the caller may approve requests for, `['*']` for all. Derived from
 * the config on every call, so a reload takes effect at once. The viewer uses
 * this only to shape its screens: every endpoint checks again on its own.
 */
import { Router } from 'express';
import type { Config } from '../../src/config/schema.js';
import { isAdmin } from '../../src/access/rules.js';
import { principal, userRoles } from './auth.js';

export interface MeDeps {
  readonly config: () => Config;
}

export interface MeView {
  readonly user: string;
  readonly roles: string[];
  readonly audit: boolean;
  readonly admin: boolean;
  /** Segment names, or `['*']` when a role approves every segment. */
  readonly approves: string[];
}

/** Whether one of the user's roles has `audit: true`: sees every session and the audit log. */
export function isAuditor(config: Config, user: string): boolean {
  return userRoles(config, user).some((r) => r.audit === true);
}

export function meView(config: Config, user: string): MeView {
  const roles = userRoles(config, user);
  const approves = new Set<string>();
  for (const r of roles) for (const s of r.approve ?? []) approves.add(s);
  return {
    user,
    roles: roles.map((r) => r.name),
    audit: roles.some((r) => r.audit === true),
    admin: isAdmin(config, user),
    approves: approves.has('*') ? ['*'] : [...approves],
  };
}

export function meRouter(deps: MeDeps): Router {
  const r = Router();
  r.get('/', (req, res) => {
    res.json(meView(deps.config(), principal(req).user));
  });
  return r;
}
