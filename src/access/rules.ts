/**
 * Which rule decides a just-in-time request, with no I/O: the same rule
 * decide() would pick once the grant exists (write over read, then standing
 * over gated, then config order), so a request is only accepted when a grant
 * would actually change the user's access.
 */
import type { Config, RuleConfig, TargetConfig, UserConfig } from '../config/schema.js';
import { WicketError } from '../errors.js';
import { needsApproval, ruleAccess, ruleMatches, userRules, type RuleEntry } from '../policy/rules.js';
import { formatDuration, parseDuration } from '../util/duration.js';

/** What a request asks for and what its deciding rule(s) demand. */
export interface RequestSubject {
  /** null when the whole segment is requested. */
  readonly target: string | null;
  readonly segment: string;
  /** Distinct approvals needed: the rule's `approvals` (default 1); the highest among the deciding rules. */
  readonly approvals: number;
  /** The rule's max_duration in ms (the lowest among the deciding rules), null for no limit. */
  readonly maxDurationMs: number | null;
  /** Labels of the deciding rules (`developer.allow[1]`), for messages and the audit. */
  readonly rules: readonly string[];
}

/** decide()'s precedence: lower ranks win. */
function rank(rule: RuleConfig): number {
  return (ruleAccess(rule) === 'write' ? 0 : 2) + (needsApproval(rule) ? 1 : 0);
}

function best(entries: readonly RuleEntry[]): RuleEntry | null {
  let out: RuleEntry | null = null;
  for (const e of entries) if (out === null || rank(e.rule) < rank(out.rule)) out = e;
  return out;
}

/** The rule that would decide a session of `user` to `target` if the user held a grant for it. */
function decidingRule(config: Config, user: UserConfig, target: TargetConfig): RuleEntry | null {
  return best(userRules(config, user).filter((e) => ruleMatches(e.rule, target)));
}

function maxDuration(rule: RuleConfig): number | null {
  return rule.max_duration === undefined ? null : parseDuration(rule.max_duration);
}

function subject(target: string | null, segment: string, deciding: readonly RuleEntry[]): RequestSubject {
  let approvals = 1;
  let maxDurationMs: number | null = null;
  for (const e of deciding) {
    approvals = Math.max(approvals, e.rule.approvals ?? 1);
    const m = maxDuration(e.rule);
    if (m !== null) maxDurationMs = maxDurationMs === null ? m : Math.min(maxDurationMs, m);
  }
  return { target, segment, approvals, maxDurationMs, rules: deciding.map((e) => e.ref.label) };
}

/**
 * Resolves `name` (a target, else a segment) for `userName` and checks that a
 * rule with `approval: required` is what stands between the user and it.
 * Throws WICKET_ERR_UNKNOWN_USER / _UNKNOWN_TARGET / _UNKNOWN_SEGMENT /
 * _POLICY_DENY with a sentence the person can act on.
 */
export function resolveRequest(config: Config, userName: string, name: string): RequestSubject {
  const user = config.users.find((u) => u.name === userName);
  if (user === undefined) throw new WicketError('WICKET_ERR_UNKNOWN_USER', `unknown user "${userName}"`);

  // A target wins over a segment of the same name (`sandbox` is often both).
  const target = config.targets.find((t) => t.name === name);
  if (target !== undefined) {
    if (!config.segments.some((s) => s.name === target.segment)) {
      throw new WicketError('WICKET_ERR_UNKNOWN_SEGMENT', `target ${target.name} is in segment ${target.segment}, which is not defined in the config`);
    }
    const rule = decidingRule(config, user, target);
    if (rule === null) {
      throw new WicketError('WICKET_ERR_POLICY_DENY',
        `no role of ${user.name} reaches ${target.name} (segment ${target.segment}) with approval: required; there is nothing to request`);
    }
    if (!needsApproval(rule.rule)) {
      throw new WicketError('WICKET_ERR_POLICY_DENY',
        `${user.name} already has standing ${ruleAccess(rule.rule)} access to ${target.name} (${rule.ref.label}); no request is needed`);
    }
    return subject(target.name, target.segment, [rule]);
  }

  if (!config.segments.some((s) => s.name === name)) {
    throw new WicketError('WICKET_ERR_UNKNOWN_TARGET', `unknown target or segment "${name}"`);
  }
  const gated = userRules(config, user).filter(
    (e) => needsApproval(e.rule) && (e.rule.segments.includes('*') || e.rule.segments.includes(name)),
  );
  if (gated.length === 0) {
    throw new WicketError('WICKET_ERR_POLICY_DENY',
      `no role of ${user.name} has a rule with approval: required for segment ${name}; there is nothing to request`);
  }
  const targets = config.targets.filter((t) => t.segment === name);
  if (targets.length === 0) return subject(null, name, gated);
  // A segment grant counts for every target whose deciding rule is gated; it
  // must satisfy the strictest of those rules.
  const deciding = new Map<string, RuleEntry>();
  for (const t of targets) {
    const rule = decidingRule(config, user, t);
    if (rule !== null && needsApproval(rule.rule)) deciding.set(rule.ref.label, rule);
  }
  if (deciding.size === 0) {
    const standing = targets.some((t) => decidingRule(config, user, t) !== null);
    throw new WicketError('WICKET_ERR_POLICY_DENY', standing
      ? `${user.name} already has standing access to every target in ${name} that a gated rule reaches; no request is needed`
      : `no rule of ${user.name} with approval: required reaches any target in ${name}; there is nothing to request`);
  }
  return subject(null, name, [...deciding.values()]);
}

/** Throws WICKET_ERR_USAGE unless `durationMs` fits the subject's max_duration. */
export function checkDuration(s: RequestSubject, durationMs: number): void {
  if (!Number.isSafeInteger(durationMs) || durationMs <= 0) {
    throw new WicketError('WICKET_ERR_USAGE', 'duration must be a positive number of milliseconds (e.g. --for 1h)');
  }
  if (s.maxDurationMs !== null && durationMs > s.maxDurationMs) {
    throw new WicketError('WICKET_ERR_USAGE',
      `duration ${formatDuration(durationMs)} exceeds the maximum of ${formatDuration(s.maxDurationMs)} for ${s.target ?? `segment ${s.segment}`} (max_duration of ${s.rules.join(', ')})`);
  }
}

/** Whether one of the user's roles lists `segment` (or '*') under approve. */
export function isApprover(config: Config, userName: string, segment: string): boolean {
  const user = config.users.find((u) => u.name === userName);
  if (user === undefined) return false;
  return config.roles.some((r) => user.roles.includes(r.name) && (r.approve ?? []).some((s) => s === '*' || s === segment));
}

/** Whether one of the user's roles has `admin: true`. */
export function isAdmin(config: Config, userName: string): boolean {
  const user = config.users.find((u) => u.name === userName);
  if (user === undefined) return false;
  return config.roles.some((r) => user.roles.includes(r.name) && r.admin === true);
}

/** Users who may approve requests for `segment`, in config order. */
export function approversOf(config: Config, segment: string): string[] {
  return config.users.filter((u) => isApprover(config, u.name, segment)).map((u) => u.name);
}
