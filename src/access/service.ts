/**
 * Just-in-time access: the request lifecycle and the grants it issues.
 *
 *   pending ──approve (enough distinct approvers)──> approved ──revoke──> revoked
 *      │  └─deny──> denied   └─cancel──> cancelled      └─grant ends──> expired
 *      └─pendingUntil passes──> expired
 *
 * Every transition is a compare-and-set on the request's state
 * (Store.updateRequest), so two approvers, or an approver and the expiry
 * sweep, on any process or broker, cannot both win: exactly one grant is
 * issued per request. The grant is created only after the request's move to
 * 'approved' succeeded; a crash in between leaves an approved request with no
 * usable grant (fails closed), never a grant nobody approved.
 *
 * Intermediate approvals (2 of 3 ...) rewrite the request's decision list while
 * it stays 'pending'. The store's CAS compares the state only, so those
 * writes are serialised per store and request inside this process (the API
 * server and its adapters share one); two processes approving the same
 * request in the same few milliseconds can still lose one intermediate
 * approval (never add a grant): that approver is asked again.
 *
 * History is never deleted: requests only change state; every change is a
 * durable audit event (request.*, grant.*) written before the caller hears
 * of success.
 */
import { randomBytes } from 'node:crypto';
import type { Config } from '../config/schema.js';
import { WicketError } from '../errors.js';
import type { Grant } from '../policy/types.js';
import type { AccessRequestRecord, AuditInput, RequestDecision, RequestState, Store } from '../store/types.js';
import { formatDuration, parseDuration } from '../util/duration.js';
import { approversOf, checkDuration, isAdmin, isApprover, resolveRequest } from './rules.js';

export interface AccessDeps {
  readonly config: () => Config;
  readonly store: Store;
  /** Durable audit append (AuditWriter.appendNow or ctx.record-like). */
  readonly audit: (e: AuditInput) => Promise<void>;
  readonly clock?: () => number;
}

/** The actor of transitions nobody made (expiry). */
export const SYSTEM_ACTOR = 'wicket';
export const DEFAULT_PENDING_TTL_MS = 24 * 3_600_000;
/** Longest reason or comment kept, in characters. */
export const MAX_TEXT = 1000;
export const DEFAULT_POLL_MS = 250;

export const REQUEST_STATES: readonly RequestState[] = ['pending', 'approved', 'denied', 'cancelled', 'expired', 'revoked'];

/** Approvers who approved, once each, in order. */
export function approversOfRequest(r: AccessRequestRecord): string[] {
  const out: string[] = [];
  for (const d of r.decisions) if (d.verdict === 'approve' && !out.includes(d.by)) out.push(d.by);
  return out;
}

/**
 * When the request's grant ends: the grant is valid from the final approval
 * (the last approve decision) for durationMs. Null unless the request was approved.
 */
export function grantExpiresAt(r: AccessRequestRecord): number | null {
  if (r.grantId === null) return null;
  const approvals = r.decisions.filter((d) => d.verdict === 'approve');
  const last = approvals[approvals.length - 1];
  return last === undefined ? null : last.at + r.durationMs;
}

/** `orders-db` or `segment payments-prod`, for sentences. */
export function requestSubject(r: Pick<AccessRequestRecord, 'target' | 'segment'>): string {
  return r.target ?? `segment ${r.segment}`;
}

function newGrantId(): string {
  return `g_${randomBytes(16).toString('hex')}`;
}

function cleanText(text: string | null | undefined, what: string): string | null {
  const t = (text ?? '').trim();
  if (t === '') return null;
  if (t.length > MAX_TEXT) throw new WicketError('WICKET_ERR_USAGE', `${what} is too long (${t.length} characters; at most ${MAX_TEXT})`);
  return t;
}

/** One promise chain per (store, request id): serialises read-modify-write of a request in this process. */
const queues = new WeakMap<Store, Map<number, Promise<unknown>>>();

function serialised<T>(store: Store, id: number, fn: () => Promise<T>): Promise<T> {
  let m = queues.get(store);
  if (m === undefined) queues.set(store, (m = new Map()));
  const prev = m.get(id) ?? Promise.resolve();
  const run = prev.then(fn, fn);
  const tail = run.catch(() => undefined);
  m.set(id, tail);
  const map = m;
  void tail.then(() => {
    if (map.get(id) === tail) map.delete(id);
  });
  return run;
}

function abortError(signal: AbortSignal): unknown {
  return signal.reason ?? new WicketError('WICKET_ERR_CONFLICT', 'wait aborted');
}

export class AccessService {
  private readonly clock: () => number;

  constructor(private readonly deps: AccessDeps) {
    this.clock = deps.clock ?? Date.now;
  }

  /** `target` is a target name or a segment name (whole segment). */
  async request(input: { user: string; target: string; durationMs: number; reason: string }): Promise<AccessRequestRecord> {
    const reason = cleanText(input.reason, 'reason');
    if (reason === null) throw new WicketError('WICKET_ERR_USAGE', 'a reason is required (what you need the access for)');
    const config = this.deps.config();
    const s = resolveRequest(config, input.user, input.target);
    checkDuration(s, input.durationMs);
    const open = await this.deps.store.listRequests({ user: input.user, state: 'pending' });
    const now = this.clock();
    const dup = open.find((r) => r.target === s.target && r.segment === s.segment && now < r.pendingUntil);
    if (dup !== undefined) {
      throw new WicketError('WICKET_ERR_CONFLICT', `request #${dup.id} for ${requestSubject(dup)} is already pending; cancel it first (wicket cancel ${dup.id})`);
    }
    const req = await this.deps.store.createRequest({
      user: input.user,
      target: s.target,
      segment: s.segment,
      durationMs: input.durationMs,
      reason,
      state: 'pending',
      approvalsRequired: s.approvals,
      decisions: [],
      createdAt: now,
      pendingUntil: now + this.pendingTtlMs(config),
      updatedAt: now,
      grantId: null,
    });
    await this.record('request.created', input.user, req, { rules: s.rules, pendingUntil: req.pendingUntil });
    return req;
  }

  async approve(id: number, by: string, comment?: string | null): Promise<{ request: AccessRequestRecord; grant: Grant | null }> {
    const note = cleanText(comment, 'comment');
    return serialised(this.deps.store, id, async () => {
      const req = await this.pendingFor(id, by, 'approve');
      if (approversOfRequest(req).includes(by)) {
        throw new WicketError('WICKET_ERR_CONFLICT', `${by} already approved request #${id}; it needs ${req.approvalsRequired - approversOfRequest(req).length} more approval(s) from other approvers`);
      }
      const now = this.clock();
      const decision: RequestDecision = { by, at: now, verdict: 'approve', comment: note };
      const decisions = [...req.decisions, decision];
      const approvers = approversOfRequest({ ...req, decisions });

      if (approvers.length < req.approvalsRequired) {
        const next = await this.deps.store.updateRequest(id, 'pending', { decisions, updatedAt: now }, req.decisions.length);
        if (next === null) throw await this.conflict(id, 'approve');
        await this.record('request.approval', by, next, { comment: note, approvers, approvalsRequired: next.approvalsRequired });
        return { request: next, grant: null };
      }

      // Enough approvers: the CAS decides the one winner before any grant exists.
      const grantId = newGrantId();
      const next = await this.deps.store.updateRequest(id, 'pending', { state: 'approved', decisions, updatedAt: now, grantId }, req.decisions.length);
      if (next === null) throw await this.conflict(id, 'approve');
      const grant: Grant = {
        id: grantId, requestId: String(id), user: next.user, target: next.target, segment: next.segment,
        validFrom: now, expiresAt: now + next.durationMs, revokedAt: null,
      };
      await this.deps.store.createGrant(grant);
      await this.deps.store.pushControl({
        kind: 'grant', ts: now, actor: by, segment: next.segment, grantId, reason: `request #${id} approved`,
      });
      await this.record('request.approved', by, next, {
        comment: note, approvers, approvalsRequired: next.approvalsRequired, grantId, validFrom: grant.validFrom, expiresAt: grant.expiresAt,
      });
      return { request: next, grant };
    });
  }

  async deny(id: number, by: string, comment?: string | null): Promise<AccessRequestRecord> {
    const note = cleanText(comment, 'comment');
    return serialised(this.deps.store, id, async () => {
      const req = await this.pendingFor(id, by, 'deny');
      const now = this.clock();
      const decisions = [...req.decisions, { by, at: now, verdict: 'deny', comment: note } satisfies RequestDecision];
      const next = await this.deps.store.updateRequest(id, 'pending', { state: 'denied', decisions, updatedAt: now }, req.decisions.length);
      if (next === null) throw await this.conflict(id, 'deny');
      await this.record('request.denied', by, next, { comment: note });
      return next;
    });
  }

  /** The requester (or an admin) withdraws a pending request. */
  async cancel(id: number, by: string): Promise<AccessRequestRecord> {
    return serialised(this.deps.store, id, async () => {
      const req = await this.mustGet(id);
      const config = this.deps.config();
      if (by !== req.user && !isAdmin(config, by)) {
        throw new WicketError('WICKET_ERR_FORBIDDEN', `only ${req.user} (or an admin) can cancel request #${id}`);
      }
      await this.expireIfDue(req);
      const now = this.clock();
      const next = await this.deps.store.updateRequest(id, 'pending', { state: 'cancelled', updatedAt: now });
      if (next === null) throw await this.conflict(id, 'cancel');
      await this.record('request.cancelled', by, next, {});
      return next;
    });
  }

  /** Revokes the grant of an approved request (approvers of the segment and admins). */
  async revoke(id: number, by: string, reason?: string | null): Promise<AccessRequestRecord> {
    const why = cleanText(reason, 'reason');
    return serialised(this.deps.store, id, async () => {
      const req = await this.mustGet(id);
      const config = this.deps.config();
      if (!isApprover(config, by, req.segment) && !isAdmin(config, by)) {
        throw new WicketError('WICKET_ERR_FORBIDDEN', `${by} is not an approver of segment ${req.segment} or an admin, so cannot revoke request #${id}`);
      }
      await this.expireIfDue(req);
      const now = this.clock();
      const next = await this.deps.store.updateRequest(id, 'approved', { state: 'revoked', updatedAt: now });
      if (next === null) throw await this.conflict(id, 'revoke');
      const grantId = next.grantId;
      if (grantId !== null) {
        await this.deps.store.revokeGrant(grantId, now);
        await this.deps.store.pushControl({
          kind: 'revoke', ts: now, actor: by, segment: next.segment, grantId, reason: why ?? `request #${id} revoked by ${by}`,
        });
      }
      await this.record('grant.revoked', by, next, { comment: why, grantId, expiresAt: grantExpiresAt(next) });
      return next;
    });
  }

  get(id: number): Promise<AccessRequestRecord | null> {
    return this.deps.store.getRequest(id);
  }

  list(filter: { user?: string; state?: RequestState } = {}): Promise<AccessRequestRecord[]> {
    return this.deps.store.listRequests(filter);
  }

  canApprove(user: string, segment: string): boolean {
    return isApprover(this.deps.config(), user, segment);
  }

  /** Configured users who may approve requests for `segment` (for "waiting for ..." hints). */
  approvers(segment: string): string[] {
    return approversOf(this.deps.config(), segment);
  }

  /**
   * Moves pending requests past pendingUntil to 'expired' and approved ones
   * whose grant ended to 'expired' (audit grant.expired); returns how many
   * changed. Idempotent: a request another process moved first is skipped.
   */
  async expireDue(): Promise<number> {
    let changed = 0;
    for (const state of ['pending', 'approved'] as const) {
      for (const req of await this.deps.store.listRequests({ state })) {
        if (await this.expireIfDue(req)) changed += 1;
      }
    }
    return changed;
  }

  /** Resolves when the request leaves 'pending' (polls the store every pollMs, default 250; rejects on abort). */
  async waitDecided(id: number, signal: AbortSignal, pollMs = DEFAULT_POLL_MS): Promise<AccessRequestRecord> {
    for (;;) {
      if (signal.aborted) throw abortError(signal);
      const req = await this.mustGet(id);
      if (req.state !== 'pending') return req;
      if (await this.expireIfDue(req)) continue;
      if (signal.aborted) throw abortError(signal);
      await new Promise<void>((resolve, reject) => {
        const onAbort = (): void => {
          clearTimeout(timer);
          reject(abortError(signal));
        };
        const timer = setTimeout(() => {
          signal.removeEventListener('abort', onAbort);
          resolve();
        }, pollMs);
        signal.addEventListener('abort', onAbort, { once: true });
      });
    }
  }

  private pendingTtlMs(config: Config): number {
    const text = config.limits.pending_request_ttl;
    return (text === undefined ? null : parseDuration(text)) ?? DEFAULT_PENDING_TTL_MS;
  }

  private async mustGet(id: number): Promise<AccessRequestRecord> {
    const req = Number.isSafeInteger(id) && id > 0 ? await this.deps.store.getRequest(id) : null;
    if (req === null) throw new WicketError('WICKET_ERR_NOT_FOUND', `no request #${id}`);
    return req;
  }

  /** The request, checked for an approve/deny by `by`: found, `by` may decide, still pending and not lapsed. */
  private async pendingFor(id: number, by: string, verb: 'approve' | 'deny'): Promise<AccessRequestRecord> {
    const req = await this.mustGet(id);
    if (!this.canApprove(by, req.segment)) {
      throw new WicketError('WICKET_ERR_FORBIDDEN', `${by} is not an approver of segment ${req.segment}, so cannot ${verb} request #${id}`);
    }
    if (by === req.user) {
      throw new WicketError('WICKET_ERR_FORBIDDEN', verb === 'approve'
        ? `nobody approves their own request: #${id} needs another approver of ${req.segment}`
        : `request #${id} is your own; cancel it instead (wicket cancel ${id})`);
    }
    if (req.state !== 'pending') throw this.stateConflict(req, verb);
    if (await this.expireIfDue(req)) throw await this.conflict(id, verb);
    return req;
  }

  /**
   * Moves `req` to 'expired' if it is due (pending past pendingUntil, or
   * approved with its grant ended) and records it; true when this call did.
   */
  private async expireIfDue(req: AccessRequestRecord): Promise<boolean> {
    const now = this.clock();
    if (req.state === 'pending' && now >= req.pendingUntil) {
      const next = await this.deps.store.updateRequest(req.id, 'pending', { state: 'expired', updatedAt: now });
      if (next === null) return false;
      await this.record('request.expired', SYSTEM_ACTOR, next, { pendingUntil: next.pendingUntil });
      return true;
    }
    const ends = req.state === 'approved' ? grantExpiresAt(req) : null;
    if (req.state === 'approved' && (ends === null || now >= ends)) {
      const next = await this.deps.store.updateRequest(req.id, 'approved', { state: 'expired', updatedAt: now });
      if (next === null) return false;
      await this.record('grant.expired', SYSTEM_ACTOR, next, { grantId: next.grantId, expiresAt: ends });
      return true;
    }
    return false;
  }

  /** The CONFLICT for a request that is not (or no longer) in the state `verb` needs, read fresh. */
  private async conflict(id: number, verb: string): Promise<WicketError> {
    return this.stateConflict(await this.mustGet(id), verb);
  }

  private stateConflict(req: AccessRequestRecord, verb: string): WicketError {
    const what = `request #${req.id} is ${req.state}`;
    let hint = '';
    if (req.state === 'pending') hint = '; it changed while we worked, try again';
    else if (verb === 'cancel' && req.state === 'approved') hint = `; an approver can revoke it (wicket revoke ${req.id})`;
    else if (verb === 'revoke' && req.state === 'expired' && req.grantId !== null) hint = '; its grant already ended';
    else if (verb === 'revoke' && req.grantId === null) hint = '; only an approved request has a grant to revoke';
    return new WicketError('WICKET_ERR_CONFLICT', `cannot ${verb}: ${what}${hint}`, { id: req.id, state: req.state });
  }

  private async record(kind: string, actor: string, r: AccessRequestRecord, extra: Record<string, unknown>): Promise<void> {
    const approvers = approversOfRequest(r);
    await this.deps.audit({
      ts: this.clock(),
      kind,
      actor,
      target: r.target ?? r.segment,
      data: {
        id: r.id,
        user: r.user,
        segment: r.segment,
        target: r.target,
        durationMs: r.durationMs,
        duration: formatDuration(r.durationMs),
        reason: r.reason,
        comment: null,
        state: r.state,
        approvals: approvers.length,
        approvalsRequired: r.approvalsRequired,
        approvers,
        grantId: r.grantId,
        ...extra,
      },
    });
  }
}
