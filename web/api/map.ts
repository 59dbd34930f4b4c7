/**
 * The access map for the viewer (DESIGN.md §3, §6): who holds which roles,
 * what each role's rules reach, the segments (with their lock) and targets.
 *
 *   GET /api/map   { users, roles, segments, targets }
 *
 * Users with a role that has `audit: true` or `admin: true` see the whole
 * config. Everyone else sees only themselves, their own roles, and the
 * segments and targets their rules reach (a segment lists only the targets
 * the caller reaches in it). Never any address, account or secret: targets
 * are name, segment and protocol only.
 */
import { Router } from 'express';
import type { Config, RoleConfig, SegmentConfig, TargetConfig } from '../../src/config/schema.js';
import { isAdmin } from '../../src/access/rules.js';
import { ruleAccess, ruleLabel, ruleMatches, userRules } from '../../src/policy/rules.js';
import type { SegmentLock } from '../../src/policy/types.js';
import type { Store } from '../../src/store/types.js';
import { principal, userRoles } from './auth.js';
import { isAuditor } from './me.js';

export interface MapDeps {
  readonly config: () => Config;
  readonly store: Store;
}

export interface MapRuleView {
  readonly label: string;
  readonly segments: string[];
  /** null: every target in the segments. */
  readonly targets: string[] | null;
  /** null: every protocol. */
  readonly protocols: string[] | null;
  readonly access: 'read' | 'write';
  readonly approval: 'required' | 'none';
  /** As written in the config (2h), null for no limit. */
  readonly maxDuration: string | null;
}

export interface MapView {
  readonly users: Array<{ readonly name: string; readonly roles: string[] }>;
  readonly roles: Array<{
    readonly name: string;
    readonly audit: boolean;
    readonly admin: boolean;
    readonly approve: string[];
    readonly rules: MapRuleView[];
  }>;
  readonly segments: Array<{
    readonly name: string;
    readonly description: string | null;
    readonly locked: boolean;
    readonly lock: { readonly reason: string; readonly lockedBy: string; readonly lockedAt: string } | null;
    readonly targets: string[];
  }>;
  readonly targets: Array<{ readonly name: string; readonly segment: string; readonly protocol: string }>;
}

function roleView(role: RoleConfig): MapView['roles'][number] {
  return {
    name: role.name,
    audit: role.audit === true,
    admin: role.admin === true,
    approve: [...(role.approve ?? [])],
    rules: (role.allow ?? []).map((rule, i) => ({
      label: ruleLabel(role.name, i),
      segments: [...rule.segments],
      targets: rule.targets === undefined ? null : [...rule.targets],
      protocols: rule.protocols === undefined ? null : [...rule.protocols],
      access: ruleAccess(rule),
      approval: rule.approval === 'required' ? 'required' : 'none',
      maxDuration: rule.max_duration ?? null,
    })),
  };
}

/** The map as `user` may see it. */
export function mapView(config: Config, user: string, locks: readonly SegmentLock[]): MapView {
  const full = isAuditor(config, user) || isAdmin(config, user);
  let users = config.users;
  let roles: RoleConfig[] = config.roles;
  let segments: SegmentConfig[] = config.segments;
  let targets: TargetConfig[] = config.targets;
  if (!full) {
    const me = config.users.find((u) => u.name === user);
    const rules = me === undefined ? [] : userRules(config, me);
    users = me === undefined ? [] : [me];
    roles = userRoles(config, user);
    targets = config.targets.filter((t) => rules.some((e) => ruleMatches(e.rule, t)));
    const named = new Set(rules.flatMap((e) => e.rule.segments));
    const reached = new Set(targets.map((t) => t.segment));
    segments = config.segments.filter((s) => named.has('*') || named.has(s.name) || reached.has(s.name));
  }
  const lockOf = new Map(locks.map((l) => [l.segment, l]));
  return {
    users: users.map((u) => ({ name: u.name, roles: [...u.roles] })),
    roles: roles.map(roleView),
    segments: segments.map((s) => {
      const l = lockOf.get(s.name);
      return {
        name: s.name,
        description: s.description ?? null,
        locked: l !== undefined,
        lock: l === undefined ? null : { reason: l.reason, lockedBy: l.lockedBy, lockedAt: new Date(l.lockedAt).toISOString() },
        targets: targets.filter((t) => t.segment === s.name).map((t) => t.name),
      };
    }),
    targets: targets.map((t) => ({ name: t.name, segment: t.segment, protocol: t.protocol })),
  };
}

export function mapRouter(deps: MapDeps): Router {
  const r = Router();
  r.get('/', async (req, res) => {
    const locks = await deps.store.listLocks();
    res.json(mapView(deps.config(), principal(req).user, locks));
  });
  return r;
}
