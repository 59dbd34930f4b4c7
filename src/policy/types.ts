/**
 * Inputs and outputs of the pure policy decision. Nothing here does I/O: the
 * broker gathers grants and locks from the store and passes them in.
 */
import type { DenySqlClass, Protocol, RawConfig } from '../config/schema.js';

/** An approved access request, valid in [validFrom, expiresAt) unless revoked. Times are epoch ms. */
export interface Grant {
  readonly id: string;
  readonly requestId: string | null;
  readonly user: string;
  /** The target the grant covers, or null when it covers the whole segment. */
  readonly target: string | null;
  readonly segment: string;
  readonly validFrom: number;
  readonly expiresAt: number;
  readonly revokedAt: number | null;
}

export interface SegmentLock {
  readonly segment: string;
  readonly reason: string;
  readonly lockedBy: string;
  readonly lockedAt: number;
}

/** The parts of the config that policy reads. */
export type PolicyConfig = Pick<RawConfig, 'segments' | 'targets' | 'roles' | 'users'>;

export interface DecisionInput {
  readonly config: PolicyConfig;
  readonly user: string;
  readonly target: string;
  /** The protocol the client speaks; omitted means "the target's own". */
  readonly protocol?: Protocol;
  /** Epoch ms. */
  readonly now: number;
  readonly grants: readonly Grant[];
  readonly locks: readonly SegmentLock[];
}

/** Names a rule for people: `developer.allow[1]`. */
export interface RuleRef {
  readonly role: string;
  readonly index: number;
  readonly label: string;
}

export interface Allow {
  readonly type: 'allow';
  readonly user: string;
  readonly target: string;
  readonly segment: string;
  readonly protocol: Protocol;
  readonly rule: RuleRef;
  readonly access: 'read' | 'write';
  readonly denySql: readonly DenySqlClass[];
  readonly forwarding: boolean;
  /** MySQL LOAD DATA LOCAL INFILE allowed (rule's local_infile). */
  readonly localInfile: boolean;
  /** From the rule's max_duration, or null for no limit. */
  readonly maxDurationMs: number | null;
  /** The grant the decision relied on (approval: required), else null. */
  readonly grantId: string | null;
  /** Epoch ms when the session must end at the latest (grant expiry, max_duration from now), else null. */
  readonly endsAt: number | null;
}

export const DENY_REASONS = [
  'unknown_user',
  'unknown_target',
  'unknown_segment',
  'protocol_mismatch',
  'segment_locked',
  'no_rule',
  'approval_required',
] as const;
export type DenyReason = (typeof DENY_REASONS)[number];

export interface Deny {
  readonly type: 'deny';
  readonly user: string;
  readonly target: string;
  readonly reason: DenyReason;
  /** One sentence a person can act on. */
  readonly message: string;
  /** The rule that decided, when one did (e.g. the rule that needs approval). */
  readonly rule: RuleRef | null;
  /** Set when reason is approval_required: how many approvals the rule wants and its max_duration. */
  readonly approval?: { readonly approvals: number; readonly maxDurationMs: number | null; readonly segment: string };
}

export type Decision = Allow | Deny;
