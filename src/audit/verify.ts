/**
 * `wicket audit verify`: the hash chain (verify-chain.ts), the signed head
 * (head.ts) and every recording digest. Read-only: it never writes the store,
 * the head or the key.
 *
 * Head semantics (what counts as a finding):
 * - head.lastSeq beyond the log's last event -> `truncated`, naming the first
 *   missing seq (the log's last seq + 1).
 * - the event at head.lastSeq has a different hash than the head says ->
 *   `edited` at that seq (the chain was rewritten at or before it).
 * - events past head.lastSeq are accepted only if they chain correctly and a
 *   writer seals them: a running AuditWriter moves the head within about
 *   100 ms, so verify re-reads the head for up to `headGraceMs` (default
 *   1500 ms). Events still past the head then -> `inserted`, naming the first
 *   one (appended outside wicket, or by a broker that died before sealing).
 * - head file missing while the log has events, a bad MAC, or an unreadable
 *   head/key -> `head`.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { isAbsolute, relative, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { errorMessage } from '../errors.js';
import type { AuditEvent, SessionRecord, Store } from '../store/types.js';
import { HEAD_FILE, loadHeadKey, readHead, type HeadRead } from './head.js';
import { ChainChecker, type Finding, type FindingKind } from './verify-chain.js';

export type { Finding, FindingKind } from './verify-chain.js';

export interface VerifyOptions {
  /** Events per readAudit call. Default 2000. */
  readonly pageSize?: number;
  /** How long to wait for a live writer to seal events past the head. Default 1500 ms. */
  readonly headGraceMs?: number;
  /** Findings kept in the result; the rest are counted in moreFindings. Default 1000. */
  readonly maxFindings?: number;
}

export interface VerifyResult {
  readonly ok: boolean;
  /** Events read. */
  readonly count: number;
  /** Seq of the last event read (0 for an empty log). */
  readonly lastSeq: number;
  /** Chain findings ordered by seq, then head, then recordings. */
  readonly findings: readonly Finding[];
  readonly moreFindings: number;
  readonly recordingsVerified: number;
  /** Ended sessions whose recording has no digest because recording failed (the chained session.end says so). */
  readonly recordingsWithoutDigest: number;
}

interface ChainedDigest {
  readonly path: unknown;
  readonly sha256: unknown;
}

export async function verifyAudit(store: Store, dataDir: string, opts: VerifyOptions = {}): Promise<VerifyResult> {
  const pageSize = Math.max(1, opts.pageSize ?? 2000);
  const graceMs = opts.headGraceMs ?? 1500;
  const chain = new ChainChecker(opts.maxFindings ?? 1000);
  const extra: Finding[] = [];
  /** session id -> the recording its chained session.end event names (null: recording failed). */
  const chained = new Map<string, ChainedDigest | null>();

  let key: Buffer | null = null;
  let keyProblem: string | null = null;
  try {
    key = loadHeadKey(dataDir, false);
  } catch (err) {
    keyProblem = errorMessage(err);
  }
  const head = async (): Promise<HeadRead> =>
    keyProblem !== null ? { status: 'invalid', reason: keyProblem } : readHead(dataDir, key);

  let after = 0;
  /** Reads on from `after`, up to the end or (stored) seq `until`. Returns rows read. */
  const pump = async (until = Number.POSITIVE_INFINITY): Promise<number> => {
    let n = 0;
    while (after < until) {
      const room = Number.isFinite(until) ? Math.min(pageSize, until - after) : pageSize;
      const page = await store.readAudit(after, room);
      if (page.length === 0) break;
      for (const ev of page) {
        chain.push(ev);
        noteDigest(chained, ev);
        after = ev.seq;
      }
      n += page.length;
    }
    return n;
  };

  await pump();
  let h = await head();
  const deadline = Date.now() + graceMs;
  while (h.status === 'ok') {
    const sealed = h.head.lastSeq;
    if (sealed > chain.lastOriginalSeq) {
      // Written since we started reading (or truncated): catch up to the head, no further.
      if ((await pump(sealed + chain.shift)) === 0) break;
      continue;
    }
    if (chain.lastOriginalSeq === sealed || Date.now() >= deadline) break;
    await sleep(50);
    h = await head();
  }
  chain.finish();

  const count = chain.count;
  if (h.status === 'missing') {
    if (count > 0) extra.push({ kind: 'head', message: `${HEAD_FILE} is missing but the log has ${count} events` });
  } else if (h.status === 'invalid') {
    extra.push({ kind: 'head', message: h.reason });
  } else {
    const sig = h.head;
    const last = chain.lastOriginalSeq;
    if (sig.lastSeq > last) {
      chain.findings.push({
        seq: last + 1,
        kind: 'truncated',
        message: `events #${last + 1}..#${sig.lastSeq} are missing from the end: the signed head records ${sig.count} events up to #${sig.lastSeq} (log truncated)`,
      });
    } else {
      if (sig.lastSeq > 0) {
        const [row] = await store.readAudit(sig.lastSeq + chain.shift - 1, 1);
        if (row !== undefined && row.seq === sig.lastSeq + chain.shift && row.hash !== sig.lastHash) {
          chain.findings.push({
            seq: sig.lastSeq,
            kind: 'edited',
            message: `event #${sig.lastSeq} does not match the signed head: the chain was rewritten at or before it`,
          });
        }
      }
      chain.relabelBeyond(sig.lastSeq);
      if (last > sig.lastSeq) {
        chain.findings.push({
          seq: sig.lastSeq + 1,
          kind: 'inserted',
          message: `events #${sig.lastSeq + 1}..#${last} are not covered by the signed head (appended outside wicket, or by a broker that stopped before sealing)`,
        });
      }
    }
  }

  const rec = await verifyRecordings(store, dataDir, chained);
  const findings = [...dedupe(chain.findings).sort((a, b) => (a.seq ?? 0) - (b.seq ?? 0)), ...extra, ...rec.findings];
  return {
    ok: findings.length === 0 && chain.omitted === 0,
    count,
    lastSeq: chain.lastSeq,
    findings,
    moreFindings: chain.omitted,
    recordingsVerified: rec.verified,
    recordingsWithoutDigest: rec.withoutDigest,
  };
}

/** One finding per (seq, kind): a row can be reached by two rules (e.g. the head check and the chain). */
function dedupe(fs: readonly Finding[]): Finding[] {
  const seen = new Set<string>();
  return fs.filter((f) => {
    const k = `${f.seq ?? ''}:${f.kind}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

function noteDigest(chained: Map<string, ChainedDigest | null>, ev: AuditEvent): void {
  if (ev.kind !== 'session.end' || ev.sessionId === null) return;
  const r = ev.data.recording;
  if (typeof r === 'object' && r !== null) {
    const { path, sha256 } = r as Record<string, unknown>;
    chained.set(ev.sessionId, { path, sha256 });
  } else {
    chained.set(ev.sessionId, null);
  }
}

async function sha256File(path: string): Promise<string | null> {
  const h = createHash('sha256');
  try {
    for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  return h.digest('hex');
}

/** A session's recording path, if it stays inside the data dir. */
function recordingFile(dataDir: string, rel: string): string | null {
  if (isAbsolute(rel)) return null;
  const root = resolve(dataDir);
  const full = resolve(root, rel);
  const inside = relative(root, full);
  return inside === '' || inside.startsWith('..') || isAbsolute(inside) ? null : full;
}

async function verifyRecordings(
  store: Store,
  dataDir: string,
  chained: Map<string, ChainedDigest | null>,
): Promise<{ findings: Finding[]; verified: number; withoutDigest: number }> {
  const findings: Finding[] = [];
  let verified = 0;
  let withoutDigest = 0;
  const seen = new Set<string>();
  const bad = (s: SessionRecord, message: string): void => void findings.push({ sessionId: s.id, kind: 'recording', message: `session ${s.id}: ${message}` });
  let before: { startedAt: number; id: string } | undefined;
  for (;;) {
    const page = await store.listSessions({ limit: 500, before });
    if (page.length === 0) break;
    for (const s of page) {
      seen.add(s.id);
      // Live sessions are still recording; they get their digest at session.end.
      if (s.recordingPath === null || s.endedAt === null) continue;
      const c = chained.get(s.id);
      if (c === undefined) {
        bad(s, 'ended, but no session.end event in the audit log chains its recording digest');
        continue;
      }
      if (c === null || c.sha256 === null) {
        if (s.recordingSha256 !== null) bad(s, 'the sessions table has a recording digest that the audit log does not');
        else withoutDigest++;
        continue;
      }
      if (c.path !== s.recordingPath) bad(s, `recording path differs: audit log says ${String(c.path)}, sessions table says ${s.recordingPath}`);
      if (s.recordingSha256 !== c.sha256) bad(s, 'recording digest in the sessions table differs from the one chained in the audit log');
      const file = recordingFile(dataDir, s.recordingPath);
      const actual = file === null ? null : await sha256File(file);
      if (file === null) bad(s, `recording path ${s.recordingPath} is outside the data directory`);
      else if (actual === null) bad(s, `recording file ${s.recordingPath} is missing`);
      else if (actual !== c.sha256) bad(s, `recording file ${s.recordingPath} was altered (sha256 mismatch)`);
      else if (s.recordingSha256 === c.sha256 && c.path === s.recordingPath) verified++;
    }
    const last = page[page.length - 1]!;
    before = { startedAt: last.startedAt, id: last.id };
  }
  for (const [id, c] of chained) {
    if (c !== null && typeof c.sha256 === 'string' && !seen.has(id)) {
      findings.push({ sessionId: id, kind: 'recording', message: `session ${id}: chained recording ${String(c.path)} has no session row (row deleted)` });
    }
  }
  return { findings, verified, withoutDigest };
}

const HEADLINE: Record<FindingKind, string> = {
  edited: 'hash mismatch (row edited)',
  deleted: 'missing (row deleted)',
  inserted: 'not part of the chain (row inserted)',
  reordered: 'out of place (rows reordered)',
  truncated: 'missing from the end (log truncated)',
  head: 'signed head problem',
  recording: 'recording digest mismatch',
};

/** Human text: one headline, then one line per finding. */
export function formatVerify(r: VerifyResult): string {
  if (r.ok) {
    const recs = `${r.recordingsVerified} recording${r.recordingsVerified === 1 ? '' : 's'} verified`;
    const noDigest = r.recordingsWithoutDigest > 0 ? ` (${r.recordingsWithoutDigest} without digest: recording failed)` : '';
    if (r.count === 0) return `OK: 0 events (empty log), ${recs}${noDigest}`;
    return `OK: ${r.count} events, chain intact, head matches, ${recs}${noDigest}`;
  }
  const first = r.findings.find((f) => f.seq !== undefined) ?? r.findings[0];
  const headline =
    first === undefined
      ? 'FAILED'
      : first.seq !== undefined
        ? `FAILED: first bad event #${first.seq}: ${HEADLINE[first.kind]}`
        : `FAILED: ${first.message}`;
  const lines = r.findings.map((f) => {
    const where = f.seq !== undefined ? `#${f.seq}` : f.sessionId !== undefined ? `session ${f.sessionId}` : 'head';
    return `  ${where} ${f.kind}: ${f.message}`;
  });
  if (r.moreFindings > 0) lines.push(`  ... and ${r.moreFindings} more`);
  return [headline, ...lines].join('\n');
}
