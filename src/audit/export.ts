/**
 * `wicket audit export`: audit events as JSON lines for a SIEM. One object
 * per line, snake_case like most SIEM schemas:
 *   {"seq","ts" (ISO 8601),"ts_ms","kind","actor","session_id","target","data","prev_hash","hash"}
 * prev_hash/hash let the receiving side re-check the chain on its own.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { AuditEvent, Store } from '../store/types.js';

export interface ExportOptions {
  /** Only events with ts >= sinceTs (epoch ms). */
  readonly sinceTs?: number;
  /** After the backlog, keep polling (every pollMs) for new events until `signal` aborts. */
  readonly follow?: boolean;
  readonly signal?: AbortSignal;
  /** Default 250 ms. */
  readonly pollMs?: number;
  /** Default 1000. */
  readonly pageSize?: number;
}

export function exportLine(ev: AuditEvent): string {
  return JSON.stringify({
    seq: ev.seq,
    // A hand-edited ts may not be a valid date; the line is still exported (with ts null).
    ts: Number.isFinite(ev.ts) && Math.abs(ev.ts) <= 8.64e15 ? new Date(ev.ts).toISOString() : null,
    ts_ms: ev.ts,
    kind: ev.kind,
    actor: ev.actor,
    session_id: ev.sessionId,
    target: ev.target,
    data: ev.data,
    prev_hash: ev.prevHash,
    hash: ev.hash,
  });
}

/**
 * Where to start reading for `sinceTs`: a binary search over seq for the
 * first event at or after sinceTs - SKEW_MS. Timestamps are close to, not
 * exactly, seq order (several processes append, each with its own clock
 * reading), so we start a margin early and still filter every event by ts.
 */
const SKEW_MS = 60_000;

async function startAfter(store: Store, sinceTs: number): Promise<number> {
  const head = await store.auditHead();
  let lo = 0;
  let hi = head.lastSeq;
  // Invariant: events with seq <= lo are older than the bound (or lo = 0); the answer is in (lo, hi].
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2);
    const [ev] = await store.readAudit(mid, 1);
    if (ev === undefined) {
      hi = mid;
    } else if (ev.ts < sinceTs - SKEW_MS) {
      lo = ev.seq;
    } else {
      hi = mid;
    }
  }
  return lo;
}

/** Writes matching events through `write`, one line each; resolves when done, or on abort when following. */
export async function exportAudit(
  store: Store,
  opts: ExportOptions,
  write: (line: string) => void,
): Promise<void> {
  const pageSize = opts.pageSize ?? 1000;
  const pollMs = opts.pollMs ?? 250;
  const since = opts.sinceTs;
  let after = since === undefined ? 0 : await startAfter(store, since);
  for (;;) {
    if (opts.signal?.aborted) return;
    const page = await store.readAudit(after, pageSize);
    for (const ev of page) {
      after = ev.seq;
      if (since === undefined || ev.ts >= since) write(exportLine(ev));
    }
    if (page.length === pageSize) continue;
    if (!opts.follow) return;
    try {
      await sleep(pollMs, undefined, { signal: opts.signal });
    } catch {
      return; // aborted
    }
  }
}
