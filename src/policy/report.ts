/**
 * `wicket policy audit`: what the policy grants in practice. Pure: the caller
 * reads sessions (all of them, for last use and grant use) and grants from the
 * store and passes the time. Sections: standing access, unused rules, orphan
 * targets, segments without an approver, grants with the sessions that used
 * them, and standing rules that could be just-in-time.
 */
import type { Protocol, TargetConfig } from '../config/schema.js';
import { isoTime } from './explain.js';
import { allRules, needsApproval, ruleAccess, ruleMatches, userRules, type RuleEntry } from './rules.js';
import type { Grant, PolicyConfig } from './types.js';

/** A rule with no session in this window is reported unused. */
export const UNUSED_WINDOW_MS = 30 * 86_400_000;

export interface SessionUsage {
  readonly user: string;
  readonly target: string;
  readonly segment: string;
  /** The label of the rule that allowed it (`developer.allow[1]`), when known. */
  readonly rule: string | null;
  /** The grant the session relied on (approval: required), else null. */
  readonly grantId: string | null;
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
  readonly requestId: string | null;
  /** Who held the grant. */
  readonly user: string;
  /** null when the grant covers the whole segment. */
  readonly target: string | null;
  readonly segment: string;
  readonly validFrom: number;
  readonly expiresAt: number;
  readonly revokedAt: number | null;
  readonly state: GrantState;
  readonly used: boolean;
  /** Sessions recorded with this grant's id (the grant let them in). */
  readonly sessions: number;
  /** Start of the most recent of those sessions, or null. */
  readonly lastUsedAt: number | null;
}

/**
 * Why a standing rule could be just-in-time:
 * - prod_name / prod_description: the segment's name / description looks like
 *   production (see PRODUCTION_HEURISTIC);
 * - gated_elsewhere: another rule that names the segment requires approval;
 * - write_beside_read: the rule grants write (an omitted access: is write) where
 *   a read rule naming the segment reaches the same targets.
 */
export type JitReason = 'prod_name' | 'prod_description' | 'gated_elsewhere' | 'write_beside_read';

export interface JitCandidate {
  readonly segment: string;
  readonly rule: string;
  readonly role: string;
  readonly index: number;
  /** Users who reach the segment through this rule without approval. */
  readonly users: readonly string[];
  readonly reasons: readonly JitReason[];
  readonly access: 'read' | 'write';
  /** false when the rule omits access: and so grants write by default. */
  readonly accessExplicit: boolean;
  /** The segment description that matched, when the reason is prod_description. */
  readonly description: string | null;
  /** Other rules naming the segment that require approval (gated_elsewhere). */
  readonly gatedBy: readonly string[];
  /** Read rules naming the segment that reach the same targets (write_beside_read). */
  readonly readRules: readonly string[];
  /** One line: what to change. */
  readonly suggestion: string;
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
  /** How prod_name / prod_description are decided, for people reading the report. */
  readonly productionHeuristic: string;
}

/** Words that mark production, and the neighbours that cancel them ("pre prod", "non production", "production like"). */
const PROD_WORDS: ReadonlySet<string> = new Set(['prod', 'production']);
const NOT_PROD_BEFORE: ReadonlySet<string> = new Set(['pre', 'non', 'not', 'no']);
const NOT_PROD_AFTER: ReadonlySet<string> = new Set(['like']);

export const PRODUCTION_HEURISTIC =
  'a segment counts as production when its name or description has the word "prod" or "production" ' +
  '(words split at anything but letters and digits, at camelCase and at digits: "payments-prod", "Production DB", "paymentsProd" count; ' +
  '"pre-prod", "non-production", "nonprod", "preprod", "product", "production-like" do not). Target names are not looked at. ' +
  'It is a hint from naming, not a fact: check the segment.';

/** Whether a segment name or description reads as production (PRODUCTION_HEURISTIC). */
export function suggestsProduction(text: string): boolean {
  const words = text
    .replace(/([a-z])([A-Z])/g, '$1 $2')
    .replace(/([A-Za-z])([0-9])/g, '$1 $2')
    .replace(/([0-9])([A-Za-z])/g, '$1 $2')
    .toLowerCase()
    .split(/[^a-z0-9]+/)
    .filter((w) => w !== '');
  return words.some((w, i) => PROD_WORDS.has(w)
    && !(i > 0 && NOT_PROD_BEFORE.has(words[i - 1]!))
    && !(i + 1 < words.length && NOT_PROD_AFTER.has(words[i + 1]!)));
}

const uniq = <T>(xs: readonly T[]): T[] => [...new Set(xs)];

/** The largest time, or null; not Math.max(...xs), which overflows the stack on years of sessions. */
const latest = (xs: readonly number[]): number | null => xs.reduce<number | null>((m, x) => (m === null || x > m ? x : m), null);

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
    const lastUsedAt = latest(uses.map((s) => s.startedAt));
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

  // Counted by the grant id the broker recorded on each session: exact, and it
  // does not credit a grant with sessions a standing rule let in.
  const byGrant = new Map<string, number[]>();
  for (const s of usage.sessions) {
    if (s.grantId === null) continue;
    const starts = byGrant.get(s.grantId);
    if (starts === undefined) byGrant.set(s.grantId, [s.startedAt]);
    else starts.push(s.startedAt);
  }
  const grantsUsed: GrantUsage[] = usage.grants.map((g) => {
    const starts = byGrant.get(g.id) ?? [];
    return {
      grantId: g.id, requestId: g.requestId, user: g.user, target: g.target, segment: g.segment,
      validFrom: g.validFrom, expiresAt: g.expiresAt, revokedAt: g.revokedAt, state: grantState(g, now),
      used: starts.length > 0, sessions: starts.length, lastUsedAt: latest(starts),
    };
  });

  // Only rules that name the segment count as "gated elsewhere" or as the read
  // rule beside a write: a '*' rule says nothing about this particular segment.
  const byLabel = new Map(rules.map((e) => [e.ref.label, e] as const));
  const justInTimeCandidates: JitCandidate[] = [];
  for (const seg of standingAccess) {
    const segConfig = config.segments.find((s) => s.name === seg.segment);
    const description = segConfig?.description ?? null;
    const prodName = suggestsProduction(seg.segment);
    const prodDescription = !prodName && description !== null && suggestsProduction(description);
    const targets = inSegment(seg.segment);
    for (const label of uniq(seg.users.flatMap((u) => u.rules))) {
      const entry = byLabel.get(label);
      if (entry === undefined) continue;
      const others = rules.filter((e) => e.ref.label !== label && e.rule.segments.includes(seg.segment));
      const gatedBy = others.filter((e) => needsApproval(e.rule)).map((e) => e.ref.label);
      const access = ruleAccess(entry.rule);
      const shared = targets.filter((t) => ruleMatches(entry.rule, t));
      const readRules = access !== 'write' ? [] : others
        .filter((e) => ruleAccess(e.rule) === 'read' && shared.some((t) => ruleMatches(e.rule, t)))
        .map((e) => e.ref.label);
      const reasons: JitReason[] = [];
      if (prodName) reasons.push('prod_name');
      if (prodDescription) reasons.push('prod_description');
      if (gatedBy.length > 0) reasons.push('gated_elsewhere');
      if (readRules.length > 0) reasons.push('write_beside_read');
      if (reasons.length === 0) continue;
      justInTimeCandidates.push({
        segment: seg.segment, rule: label, role: entry.ref.role, index: entry.ref.index,
        users: seg.users.filter((u) => u.rules.includes(label)).map((u) => u.user),
        reasons, access, accessExplicit: entry.rule.access !== undefined,
        description: prodDescription ? description : null, gatedBy, readRules,
        suggestion: jitSuggestion(entry, seg.segment, readRules.some((l) => !needsApproval(byLabel.get(l)!.rule))),
      });
    }
  }

  return {
    generatedAt: now, unusedWindowMs: UNUSED_WINDOW_MS, standingAccess, unusedRules, orphanTargets, segmentsWithoutApprover,
    grantsUsed, justInTimeCandidates, productionHeuristic: PRODUCTION_HEURISTIC,
  };
}

/** With a standing read rule beside a write one, the write is what to gate; otherwise the whole rule. */
function jitSuggestion(e: RuleEntry, segment: string, standingReadBeside: boolean): string {
  const label = e.ref.label;
  const wider = e.rule.segments.includes('*') || e.rule.segments.length > 1;
  const scope = wider ? `; it covers ${e.rule.segments.includes('*') ? 'every segment' : e.rule.segments.join(', ')}, so a separate gated rule for ${segment} may fit better` : '';
  if (standingReadBeside) {
    return `keep reads standing and make writes just-in-time: set access: read on ${label} and add a write rule for ${segment} with approval: required, or add approval: required to ${label}${scope}`;
  }
  const cap = e.rule.max_duration === undefined ? ' (and a max_duration)' : '';
  return `add approval: required${cap} to ${label} so ${segment} is reached through an approved, time-boxed request${scope}`;
}

function grantState(g: Grant, now: number): GrantState {
  if (g.revokedAt !== null && g.revokedAt <= now) return 'revoked';
  if (now < g.validFrom) return 'pending';
  if (now >= g.expiresAt) return 'expired';
  return 'active';
}

function jitReasonText(c: JitCandidate, x: JitReason): string {
  switch (x) {
    case 'prod_name': return 'segment name suggests production';
    case 'prod_description': return `segment description suggests production ("${oneLine(c.description ?? '')}")`;
    case 'gated_elsewhere': return 'other rules require approval for it';
    case 'write_beside_read': return `it grants write${c.accessExplicit ? '' : ' (no access: given, so write)'} where read rules exist`;
  }
}

/** Descriptions come from people; fold any line breaks they typed. */
function oneLine(s: string): string {
  return s.replace(/\s*[\r\n]+\s*/g, ' ').trim();
}

function formatGrant(g: GrantUsage): string {
  const head = `${g.grantId} ${g.user} → ${g.target ?? `segment ${g.segment}`} (${g.state}): `
    + (g.lastUsedAt !== null ? `used by ${g.sessions} session${g.sessions === 1 ? '' : 's'}, last ${isoTime(g.lastUsedAt)}` : 'unused');
  const where = g.target === null ? '' : `segment ${g.segment}, `;
  const revoked = g.revokedAt === null ? 'not revoked' : `revoked ${isoTime(g.revokedAt)}`;
  const request = g.requestId === null ? '' : `, request ${g.requestId}`;
  return `${head}; ${where}valid ${isoTime(g.validFrom)} to ${isoTime(g.expiresAt)}, ${revoked}${request}`;
}

function formatJit(c: JitCandidate): string {
  const details = [`role ${c.role}`];
  if (c.gatedBy.length > 0) details.push(`gated by ${c.gatedBy.join(', ')}`);
  if (c.readRules.length > 0) details.push(`read rules ${c.readRules.join(', ')}`);
  return `${c.rule} gives ${c.users.join(', ')} standing access to ${c.segment}: ${c.reasons.map((x) => jitReasonText(c, x)).join('; ')}\n`
    + `    ${details.join('; ')}; suggestion: ${c.suggestion}`;
}

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
    section('Grants (sessions counted by the grant recorded on them)', r.grantsUsed.map(formatGrant)),
    section('Just-in-time candidates (consider approval: required)', r.justInTimeCandidates.map(formatJit))
      + `\n  note: production is guessed from names: ${r.productionHeuristic}`,
  ].join('\n\n') + '\n';
}
