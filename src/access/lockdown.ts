/**
 * Segment lockdown, shared by `wicket segment lock|unlock` and
 * `POST /api/segments/:name/(lock|unlock)`. A lock is a store row (policy
 * denies every new session in the segment) plus a control signal (every
 * broker sharing the store ends the segment's live sessions within a poll),
 * recorded durably in the audit log before the caller reports success.
 */
import type { Config } from '../config/schema.js';
import { WicketError } from '../errors.js';
import type { AuditInput, Store } from '../store/types.js';

export interface LockdownDeps {
  readonly config: () => Pick<Config, 'segments'>;
  readonly store: Store;
  /** Durable append: resolves once the event is chained. */
  readonly audit: (e: AuditInput) => Promise<void>;
  readonly clock?: () => number;
}

export interface LockResult {
  readonly segment: string;
  readonly locked: true;
  /** false when the segment was locked already (its live sessions were ended again). */
  readonly fresh: boolean;
}

export interface UnlockResult {
  readonly segment: string;
  readonly locked: false;
  /** false when the segment was not locked. */
  readonly wasLocked: boolean;
}

function requireSegment(deps: LockdownDeps, name: string): void {
  if (!deps.config().segments.some((s) => s.name === name)) throw new WicketError('WICKET_ERR_UNKNOWN_SEGMENT', `unknown segment "${name}"`);
}

export async function lockSegment(deps: LockdownDeps, o: { readonly segment: string; readonly reason: string; readonly actor: string }): Promise<LockResult> {
  if (o.reason.trim() === '') throw new WicketError('WICKET_ERR_USAGE', 'a lock needs a reason');
  requireSegment(deps, o.segment);
  const now = (deps.clock ?? Date.now)();
  const fresh = await deps.store.lockSegment({ segment: o.segment, reason: o.reason, lockedBy: o.actor, lockedAt: now });
  await deps.store.pushControl({ kind: 'lock', ts: now, actor: o.actor, segment: o.segment, reason: o.reason });
  await deps.audit({
    ts: (deps.clock ?? Date.now)(), kind: 'segment.lock', actor: o.actor, target: null, sessionId: null,
    data: { segment: o.segment, reason: o.reason, alreadyLocked: !fresh },
  });
  return { segment: o.segment, locked: true, fresh };
}

export async function unlockSegment(deps: LockdownDeps, o: { readonly segment: string; readonly actor: string }): Promise<UnlockResult> {
  requireSegment(deps, o.segment);
  const was = await deps.store.unlockSegment(o.segment);
  await deps.store.pushControl({ kind: 'unlock', ts: (deps.clock ?? Date.now)(), actor: o.actor, segment: o.segment, reason: 'unlock' });
  await deps.audit({
    ts: (deps.clock ?? Date.now)(), kind: 'segment.unlock', actor: o.actor, target: null, sessionId: null,
    data: { segment: o.segment, wasLocked: was },
  });
  return { segment: o.segment, locked: false, wasLocked: was };
}
