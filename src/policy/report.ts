/**
 * `wicket policy audit`: what the policy grants in practice. Pure: the caller
 * reads sessions and grants from the store and passes the time.
 */
import type { Protocol, TargetConfig } from '../config/schema.js';
import { isoTime } from './explain.js';
import { allRules, needsApproval, ruleMatches, userRules } from './rules.js';
import type { Grant, PolicyConfig } from './types.js';

/** A rule with no session in this window is reported unused. */
export const UNUSED_WINDOW_MS = 30 * 86_400_000;

export interface SessionUsage {
  readonly user: string;
  readonly target: string;
  readonly segment: string;
  /** The label of the rule that allowed it (`developer.allow[1]`), when known. */
  readonly rule: string | null;
  readonly startedAt: number;
}

export interface PolicyUsage {
  readonly sessions: readonly SessionUsage[];
  readonly grants: readonly Grant[];
}

export interface StandingUser {
  readonly user: string;
  readonly rules: readonly string[];
  readonly protocols: readonly Protocol[];
  readonly targets: readonly string[];
}

export interface StandingSegment {
  readonly segment: string;
  /** Users who reach at least one target here without approval; empty when none. */
  readonly users: readonly StandingUser[];
}

export interface UnusedRule {
  readonly rule: string;
  readonly role: string;
  readonly index: number;
  /** Most recent session through the rule ever, or null if never. */
  readonly lastUsedAt: number | null;
  /** Users who hold the rule's role. */
  readonly holders: readonly string[];
}

export interface OrphanTarget {
  readonly target: string;
  readonly segment: string;
  readonly protocol: Protocol;
}

export interface SegmentWithoutApprover {
  readonly segment: string;
  /** The rules that require approval for it. */
  readonly gatedBy: readonly string[];
  /** Roles that could approve but that no user holds. */
  readonly approverRolesWithoutUsers: readonly string[];
}

export type GrantState = 'pending' | 'active' | 'expired' | 'revoked';

export interface GrantUsage {
  readonly grantId: string;
  readonly user: string;
  readonly target: string | null;
  readonly segment: string;
  readonly state: GrantState;
  readonly used: boolean;
  /** Sessions of the grant's user on a covered target started inside the grant's window. */
  readonly sessions: number;
}

export type JitReason = 'prod_name' | 'gated_elsewhere';

export interface JitCandidate {
  readonly segment: string;
  readonly rule: string;
  readonly users: readonly string[];
  readonly reasons: readonly JitReason[];
}

export interface PolicyReport {
  readonly generatedAt: number;
  readonly unusedWindowMs: number;
  readonly standingAccess: readonly StandingSegment[];
  readonly unusedRules: readonly UnusedRule[];
  readonly orphanTargets: readonly OrphanTarget[];
  readonly segmentsWithoutApprover: readonly SegmentWithoutApprover[];
  readonly grantsUsed: readonly GrantUsage[];
  readonly justInTimeCandidates: readonly JitCandidate[];
}

const uniq = <T>(xs: readonly T[]): T[] => [...new Set(xs)];

export function policyAudit(config: PolicyConfig, usage: PolicyUsage, now: number): PolicyReport {
  const rules = allRules(config);
  const holders = (role: string): string[] => config.users.filter((u) => u.roles.includes(role)).map((u) => u.name);
  const inSegment = (seg: string): TargetConfig[] => config.targets.filter((t) => t.segment === seg);

  const standingAccess: StandingSegment[] = config.segments.map((seg) => {
    const targets = inSegment(seg.name);
    const users: StandingUser[] = [];
    for (const user of config.users) {
      const hits = userRules(config, user)
        .filter((e) => !needsApproval(e.rule))
        .flatMap((e) => targets.filter((t) => ruleMatches(e.rule, t)).map((t) => ({ label: e.ref.label, t })));
      if (hits.length === 0) continue;
      users.push({
        user: user.name,
        rules: uniq(hits.map((h) => h.label)),
        protocols: uniq(hits.map((h) => h.t.protocol)),
        targets: uniq(hits.map((h) => h.t.name)),
      });
    }
    return { segment: seg.name, users };
  });

  const unusedRules: UnusedRule[] = [];
  for (const e of rules) {
    const uses = usage.sessions.filter((s) => s.rule === e.ref.label);
    if (uses.some((s) => s.startedAt >= now - UNUSED_WINDOW_MS)) continue;
    const lastUsedAt = uses.length === 0 ? null : Math.max(...uses.map((s) => s.startedAt));
    unusedRules.push({ rule: e.ref.label, role: e.ref.role, index: e.ref.index, lastUsedAt, holders: holders(e.ref.role) });
  }

  const orphanTargets: OrphanTarget[] = config.targets
    .filter((t) => !rules.some((e) => ruleMatches(e.rule, t)))
    .map((t) => ({ target: t.name, segment: t.segment, protocol: t.protocol }));

  // '*' counts here: a wildcard gated rule sends requests for every segment to approvers.
  const segmentsWithoutApprover: SegmentWithoutApprover[] = [];
  for (const seg of config.segments) {
    const gatedBy = rules
      .filter((e) => needsApproval(e.rule) && (e.rule.segments.includes(seg.name) || e.rule.segments.includes('*')))
      .map((e) => e.ref.label);
    if (gatedBy.length === 0) continue;
    const approvers = config.roles.filter((r) => (r.approve ?? []).some((s) => s === '*' || s === seg.name));
    if (approvers.some((r) => holders(r.name).length > 0)) continue;
    segmentsWithoutApprover.push({ segment: seg.name, gatedBy, approverRolesWithoutUsers: approvers.map((r) => r.name) });
  }

  const grantsUsed: GrantUsage[] = usage.grants.map((g) => {
    // A revoked grant stops covering sessions at revocation, not at expiry.
    const end = Math.min(g.expiresAt, g.revokedAt ?? Infinity);
    const sessions = usage.sessions.filter((s) => s.user === g.user && s.segment === g.segment
      && (g.target === null || s.target === g.target) && s.startedAt >= g.validFrom && s.startedAt < end).length;
    return { grantId: g.id, user: g.user, target: g.target, segment: g.segment, state: grantState(g, now), used: sessions > 0, sessions };
  });

  // Only rules that name the segment count as "gated elsewhere": a '*' gated
  // rule says nothing about how sensitive this particular segment is.
  const justInTimeCandidates: JitCandidate[] = [];
  for (const seg of standingAccess) {
    const prod = seg.segment.toLowerCase().includes('prod');
    for (const label of uniq(seg.users.flatMap((u) => u.rules))) {
      const gatedElsewhere = rules.some((e) => e.ref.label !== label && needsApproval(e.rule) && e.rule.segments.includes(seg.segment));
      const reasons: JitReason[] = [];
      if (prod) reasons.push('prod_name');
      if (gatedElsewhere) reasons.push('gated_elsewhere');
      if (reasons.length === 0) continue;
      justInTimeCandidates.push({ segment: seg.segment, rule: label, users: seg.users.filter((u) => u.rules.includes(label)).map((u) => u.user), reasons });
    }
  }

  return { generatedAt: now, unusedWindowMs: UNUSED_WINDOW_MS, standingAccess, unusedRules, orphanTargets, segmentsWithoutApprover, grantsUsed, justInTimeCandidates };
}

function grantState(g: Grant, now: number): GrantState {
  if (g.revokedAt !== null && g.revokedAt <= now) return 'revoked';
  if (now < g.validFrom) return 'pending';
  if (now >= g.expiresAt) return 'expired';
  return 'active';
}

const JIT_TEXT: Record<JitReason, string> = {
  prod_name: 'segment name suggests production',
  gated_elsewhere: 'other rules require approval for it',
};

function section(title: string, lines: readonly string[]): string {
  return [title, ...(lines.length === 0 ? ['  none'] : lines.map((l) => `  ${l}`))].join('\n');
}

export function formatPolicyReport(r: PolicyReport): string {
  const days = Math.round(r.unusedWindowMs / 86_400_000);
  return [
    `Policy audit at ${isoTime(r.generatedAt)}`,
    section('Standing access (no approval needed)', r.standingAccess.flatMap((s) => s.users.length === 0
      ? [`${s.segment}: none`]
      : s.users.map((u) => `${s.segment}: ${u.user} via ${u.rules.join(', ')} (${u.protocols.join(', ')}: ${u.targets.join(', ')})`))),
    section(`Unused rules (no session in the last ${days} days)`, r.unusedRules.map((u) =>
      `${u.rule}: ${u.lastUsedAt === null ? 'never used' : `last used ${isoTime(u.lastUsedAt)}`}; held by ${u.holders.length > 0 ? u.holders.join(', ') : 'nobody'}`)),
    section('Orphan targets (no rule reaches them)', r.orphanTargets.map((t) => `${t.target} (${t.protocol}, segment ${t.segment})`)),
    section('Segments needing approval with no approver', r.segmentsWithoutApprover.map((s) =>
      `${s.segment}: gated by ${s.gatedBy.join(', ')}; ${s.approverRolesWithoutUsers.length > 0
        ? `approver roles ${s.approverRolesWithoutUsers.join(', ')} have no users` : 'no role lists it in approve'}`)),
    section('Grants', r.grantsUsed.map((g) =>
      `${g.grantId} ${g.user} → ${g.target ?? `segment ${g.segment}`} (${g.state}): ${g.used ? `used by ${g.sessions} session${g.sessions === 1 ? '' : 's'}` : 'unused'}`)),
    section('Just-in-time candidates (consider approval: required)', r.justInTimeCandidates.map((c) =>
      `${c.rule} gives ${c.users.join(', ')} standing access to ${c.segment}: ${c.reasons.map((x) => JIT_TEXT[x]).join('; ')}`)),
  ].join('\n\n') + '\n';
}
