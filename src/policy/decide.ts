/**
 * The policy decision: pure, no I/O, no clock. The broker passes the config,
 * the grants and locks it read from the store, and the time.
 *
 * Deny by default (DESIGN.md §3): a session is allowed only if a rule of one of
 * the user's roles names the target's segment (or '*'), its protocol, and, when
 * the rule says `approval: required`, the user holds a live grant. A locked
 * segment denies everything, whatever the rules and grants say.
 */
import type { RuleConfig, TargetConfig } from '../config/schema.js';
import { formatDuration, parseDuration } from '../util/duration.js';
import { isoTime } from './explain.js';
import { needsApproval, protocolReaches, ruleAccess, ruleMatches, userRules, type RuleEntry } from './rules.js';
import type { Allow, Decision, DecisionInput, Deny, DenyReason, Grant, RuleRef } from './types.js';

const HOUR_MS = 3_600_000;

export function decide(input: DecisionInput): Decision {
  const { config, now } = input;
  const deny = (reason: DenyReason, message: string, rule: RuleRef | null = null): Deny => ({
    type: 'deny', user: input.user, target: input.target, reason, message, rule,
  });

  // Identity and existence first: nothing below means anything without them.
  const user = config.users.find((u) => u.name === input.user);
  if (user === undefined) return deny('unknown_user', `unknown user ${input.user}`);
  const target = config.targets.find((t) => t.name === input.target);
  if (target === undefined) return deny('unknown_target', `unknown target ${input.target}`);
  const segment = target.segment;
  if (!config.segments.some((s) => s.name === segment)) {
    return deny('unknown_segment', `target ${target.name} is in segment ${segment}, which is not defined in the config`);
  }
  if (input.protocol !== undefined && !protocolReaches(input.protocol, target.protocol)) {
    return deny('protocol_mismatch', `target ${target.name} speaks ${target.protocol}, not ${input.protocol}`);
  }

  // A lock is the incident-response brake: it overrides rules and grants alike.
  const lock = input.locks.find((l) => l.segment === segment);
  if (lock !== undefined) {
    return deny('segment_locked', `segment ${segment} is locked by ${lock.lockedBy}: ${lock.reason}`);
  }

  const matching = userRules(config, user).filter((e) => ruleMatches(e.rule, target));
  const grant = liveGrant(input.grants, user.name, target, now);
  const chosen = best(matching.filter((e) => !needsApproval(e.rule) || grant !== null));
  if (chosen !== null) return allow(input, target, chosen, needsApproval(chosen.rule) ? grant : null);

  // Every matching rule left is gated (standing rules are always usable), so
  // the best of them tells the user what to request.
  const gated = best(matching);
  if (gated !== null) {
    const maxDurationMs = maxDuration(gated.rule);
    const approvals = gated.rule.approvals ?? 1;
    const why = [gated.ref.label, approvals > 1 ? `${approvals} approvals` : null, staleGrantNote(input.grants, user.name, target, now)]
      .filter((s): s is string => s !== null)
      .join('; ');
    const forText = formatDuration(maxDurationMs === null ? HOUR_MS : Math.min(maxDurationMs, HOUR_MS));
    return {
      ...deny('approval_required',
        `access to ${target.name} requires an approved request (${why}); run: wicket request ${target.name} --for ${forText} --reason "..."`,
        gated.ref),
      approval: { approvals, maxDurationMs, segment },
    };
  }

  const roles = user.roles.length > 0 ? user.roles.join(', ') : 'none';
  return deny('no_rule', `no role of ${user.name} (roles: ${roles}) allows ${target.protocol} access to segment ${segment} (target ${target.name})`);
}

function maxDuration(rule: RuleConfig): number | null {
  return rule.max_duration === undefined ? null : parseDuration(rule.max_duration);
}

function allow(input: DecisionInput, target: TargetConfig, chosen: RuleEntry, grant: Grant | null): Allow {
  const maxDurationMs = maxDuration(chosen.rule);
  // The session ends at whichever comes first: the grant running out or the rule's cap.
  const limits: number[] = [];
  if (grant !== null) limits.push(grant.expiresAt);
  if (maxDurationMs !== null) limits.push(input.now + maxDurationMs);
  return {
    type: 'allow',
    user: input.user,
    target: target.name,
    segment: target.segment,
    protocol: target.protocol,
    rule: chosen.ref,
    access: ruleAccess(chosen.rule),
    denySql: chosen.rule.deny_sql ?? [],
    forwarding: chosen.rule.forwarding ?? false,
    localInfile: chosen.rule.local_infile ?? false,
    maxDurationMs,
    grantId: grant?.id ?? null,
    endsAt: limits.length > 0 ? Math.min(...limits) : null,
  };
}

/**
 * Precedence among rules that could decide: write over read (the user gets the
 * widest access their roles give), then a standing rule over a gated one at
 * equal access (no grant is consumed or time-limited needlessly), then config
 * order (the input list is already in user.roles order, then rule index).
 */
function best(entries: readonly RuleEntry[]): RuleEntry | null {
  const rank = (e: RuleEntry): number => (ruleAccess(e.rule) === 'write' ? 0 : 2) + (needsApproval(e.rule) ? 1 : 0);
  let out: RuleEntry | null = null;
  for (const e of entries) if (out === null || rank(e) < rank(out)) out = e;
  return out;
}

/** Whether the grant is this user's and names this target, or its whole segment. */
function covers(g: Grant, user: string, target: TargetConfig): boolean {
  return g.user === user && g.segment === target.segment && (g.target === target.name || g.target === null);
}

/** The covering grant valid at `now` ([validFrom, expiresAt), not revoked) that lasts longest. */
function liveGrant(grants: readonly Grant[], user: string, target: TargetConfig, now: number): Grant | null {
  let out: Grant | null = null;
  for (const g of grants) {
    if (!covers(g, user, target) || g.revokedAt !== null || g.validFrom > now || now >= g.expiresAt) continue;
    if (out === null || g.expiresAt > out.expiresAt) out = g;
  }
  return out;
}

/** Why the user's own grant does not count, so they do not wonder; null when they have none. */
function staleGrantNote(grants: readonly Grant[], user: string, target: TargetConfig, now: number): string | null {
  let g: Grant | null = null;
  for (const c of grants) if (covers(c, user, target) && (g === null || c.expiresAt > g.expiresAt)) g = c;
  if (g === null) return null;
  if (g.revokedAt !== null) return `grant ${g.id} was revoked`;
  if (g.validFrom > now) return `grant ${g.id} starts at ${isoTime(g.validFrom)}`;
  return `grant ${g.id} expired at ${isoTime(g.expiresAt)}`;
}
