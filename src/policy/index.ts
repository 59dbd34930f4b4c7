/** The policy module: pure decisions, their one-line explanation, and the policy audit. */
export { decide } from './decide.js';
export { explain, isoTime } from './explain.js';
export { formatPolicyReport, policyAudit, UNUSED_WINDOW_MS } from './report.js';
export type {
  GrantState, GrantUsage, JitCandidate, JitReason, OrphanTarget, PolicyReport, PolicyUsage,
  SegmentWithoutApprover, SessionUsage, StandingSegment, StandingUser, UnusedRule,
} from './report.js';
export { protocolReaches, ruleAccess, ruleLabel, ruleMatches } from './rules.js';
export * from './types.js';
