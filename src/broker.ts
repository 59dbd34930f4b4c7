/**
 * The live-session registry. Every adapter opens its sessions here: the
 * broker asks policy, opens the recorder (fail closed: no recorder, no
 * session), registers the session and ends it on kill, lock, revocation,
 * expiry, recorder failure, or when the personal access token it was opened
 * with is revoked or expires (checked every TOKEN_CHECK_MS). Changes made by the CLI or another broker
 * arrive through the store's control queue, polled every `pollMs`, which
 * works the same on one SQLite file or a shared PostgreSQL store.
 *
 * Live watchers (watch(), used by web/live.ts) subscribe to what a session
 * records as it is recorded: terminal sessions' asciicast lines (through
 * CastWriter.subscribe) or, for sessions without a terminal recording, the
 * session events as they are queued for the audit log; then 'end'. Each
 * subscription comes with its backlog (what was recorded before it), read
 * from the recording on disk or the store, so backlog + live is the whole
 * session with no gap and no duplicate. Listeners run synchronously on the
 * session's path and must only queue; a listener that throws is dropped.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { Config, Protocol } from './config/schema.js';
import { WicketError, errorMessage, type ErrorCode } from './errors.js';
import { decide } from './policy/decide.js';
import type { Allow, Decision, DenyReason } from './policy/types.js';
import type { AuditWriter } from './audit/writer.js';
import type { ControlRecord, SessionRecord, Store } from './store/types.js';
import type { SessionEvent, SessionHandle, SessionOutcome, SessionRequest, TerminalRecorder } from './session.js';
import { tokenUsable } from './auth/tokens.js';
import { CastWriter, readCastLines } from '../recordings/terminal.js';
import { recordingPath } from '../recordings/paths.js';
import { sessionEventToAudit, type RecordingAuditInput } from '../recordings/queries.js';

export interface BrokerOptions {
  readonly config: () => Config;
  readonly store: Store;
  readonly audit: AuditWriter;
  readonly brokerId?: string;
  readonly clock?: () => number;
  readonly pollMs?: number;
}

export interface TerminalOptions {
  readonly cols: number;
  readonly rows: number;
  readonly env?: Readonly<Record<string, string>>;
  readonly title?: string;
}

/** What an adapter holds for a session it opened. */
export interface ActiveSession {
  readonly id: string;
  readonly decision: Allow;
  readonly record: SessionRecord;
  /** The asciicast recorder, for terminal sessions. */
  readonly terminal: TerminalRecorder | null;
  /** Queue an event; false means the audit queue is full: pause the client until drained(). */
  emit(event: SessionEvent): boolean;
  drained(): Promise<void>;
  /** End the session (idempotent); returns when the end is durable. */
  end(outcome: SessionOutcome): Promise<void>;
}

/** A session event as queued for the audit log (the audit row without its chain fields). */
export type WatchedEvent = RecordingAuditInput;

/** One piece of a watched session, in recording order. */
export type WatchItem =
  /** The asciicast header line as recorded (a JSON object, then "\n"). */
  | { readonly type: 'header'; readonly line: Buffer }
  /** One asciicast event line as recorded, `[t,"o",data]\n` (shared: do not modify). */
  | { readonly type: 'cast'; readonly line: Buffer }
  /** The session's n-th event (1-based) as it went to the audit log: sessions without a terminal recording. */
  | { readonly type: 'event'; readonly n: number; readonly event: WatchedEvent };

export type WatchMessage = WatchItem | { readonly type: 'end'; readonly status: SessionRecord['status']; readonly reason: string | null };

/** Called synchronously on the session's path: queue, never block or do I/O. */
export type WatchListener = (m: WatchMessage) => void;

/** A live subscription (Broker.watch). */
export interface SessionWatch {
  readonly record: SessionRecord;
  readonly mode: 'terminal' | 'events';
  /**
   * Everything recorded before the subscription, in batches: the header and
   * cast lines from the file, or events 1..n from the store. The listener's
   * messages continue exactly where it stops. Read once.
   */
  backlog(signal?: AbortSignal): AsyncIterable<readonly WatchItem[]>;
  /** Unsubscribe (idempotent). */
  close(): void;
}

/** The audit kinds session events become (sessionEventToAudit); only broker emits write them with a sessionId. */
const EVENT_KINDS: ReadonlySet<string> = new Set(['query', 'command', 'file', 'forward', 'refused']);
const EVENT_BATCH = 500;

interface Entry {
  record: SessionRecord;
  decision: Allow;
  handle: SessionHandle;
  cast: CastWriter | null;
  /** The token the session was opened with (SessionRequest.tokenId). */
  tokenId: string | null;
  terminatedBy: string | null;
  ended: Promise<void> | null;
  /** Events emitted so far (numbering for watchers). */
  emitted: number;
  /** Hear 'end'; and 'event' when there is no cast (terminal watchers take cast lines instead). */
  watchers: Set<WatchListener>;
}

/** How often the tokens live sessions were opened with are looked at again. */
const TOKEN_CHECK_MS = 1000;

const DENY_CODES: Record<DenyReason, ErrorCode> = {
  unknown_user: 'WICKET_ERR_UNKNOWN_USER',
  unknown_target: 'WICKET_ERR_UNKNOWN_TARGET',
  unknown_segment: 'WICKET_ERR_UNKNOWN_SEGMENT',
  protocol_mismatch: 'WICKET_ERR_POLICY_DENY',
  segment_locked: 'WICKET_ERR_SEGMENT_LOCKED',
  no_rule: 'WICKET_ERR_POLICY_DENY',
  approval_required: 'WICKET_ERR_APPROVAL_REQUIRED',
};

/** Tells every watcher; one that throws is dropped (the session must not notice). */
function notify(entry: Entry, m: WatchMessage): void {
  for (const w of entry.watchers) {
    try {
      w(m);
    } catch (err) {
      entry.watchers.delete(w);
      process.emitWarning(`session watcher threw: ${errorMessage(err)}`);
    }
  }
}

/** Sortable, short, URL- and path-safe session ids: time in base36 + 48 random bits. */
export function newSessionId(now: number): string {
  return `${now.toString(36)}${randomBytes(6).toString('hex')}`;
}

export class Broker {
  readonly brokerId: string;
  private readonly opts: BrokerOptions;
  private readonly clock: () => number;
  private readonly live = new Map<string, Entry>();
  private lastControl = 0;
  private lastTokenCheck = 0;
  private timer: NodeJS.Timeout | null = null;
  private ticking = false;
  private failed: Error | null = null;

  constructor(opts: BrokerOptions) {
    this.opts = opts;
    this.clock = opts.clock ?? Date.now;
    this.brokerId = opts.brokerId ?? `b_${randomBytes(4).toString('hex')}`;
    // Fail closed: when the audit log cannot be written, no session keeps running.
    opts.audit.onFailure((err) => {
      this.failed = err;
      for (const id of [...this.live.keys()]) this.terminate(id, 'recording failed');
    });
  }

  /** Starts following the control queue and enforcing session deadlines. */
  async start(): Promise<void> {
    this.lastControl = await this.opts.store.lastControlId();
    this.timer = setInterval(() => void this.tick(), this.opts.pollMs ?? 250);
    this.timer.unref();
  }

  async authorize(user: string, target: string, protocol?: Protocol): Promise<Decision> {
    const now = this.clock();
    const [grants, locks] = await Promise.all([this.opts.store.activeGrants(user, now), this.opts.store.listLocks()]);
    return decide({ config: this.opts.config(), user, target, protocol, now, grants, locks });
  }

  /** Authorizes and opens a session; throws WicketError (deny, limit, recording) with a message for the client. */
  async open(req: SessionRequest, handle: SessionHandle, terminal?: TerminalOptions): Promise<ActiveSession> {
    const { store, audit } = this.opts;
    if (this.failed) throw new WicketError('WICKET_ERR_RECORDING', `recording unavailable: ${this.failed.message}`);
    const decision = await this.authorize(req.user, req.target, req.protocol);
    if (decision.type === 'deny') {
      await audit.appendNow({
        ts: this.clock(), kind: 'policy.deny', actor: req.user, target: req.target,
        data: { reason: decision.reason, message: decision.message, rule: decision.rule?.label ?? null, protocol: req.protocol, clientAddr: req.clientAddr },
      });
      throw new WicketError(DENY_CODES[decision.reason], decision.message, { reason: decision.reason });
    }
    const cap = this.opts.config().limits.sessions_per_user;
    if (cap !== undefined && [...this.live.values()].filter((e) => e.record.user === req.user).length >= cap) {
      throw new WicketError('WICKET_ERR_LIMIT', `${req.user} already has ${cap} live sessions (limits.sessions_per_user)`);
    }
    const now = this.clock();
    const id = newSessionId(now);
    const relPath = terminal ? recordingPath(id, now) : null;
    let cast: CastWriter | null = null;
    if (terminal && relPath) {
      try {
        cast = await CastWriter.open(join(this.opts.config().dataDir, relPath), {
          width: terminal.cols, height: terminal.rows, env: terminal.env, title: terminal.title ?? `${req.user}@${req.target}`, timestamp: Math.floor(now / 1000),
        });
      } catch (err) {
        await audit.appendNow({ ts: this.clock(), kind: 'session.refused', actor: req.user, target: req.target, data: { reason: errorMessage(err) } }).catch(() => undefined);
        throw err instanceof WicketError ? err : new WicketError('WICKET_ERR_RECORDING', errorMessage(err));
      }
    }
    const record: SessionRecord = {
      id, user: req.user, target: req.target, segment: decision.segment, protocol: req.protocol, clientAddr: req.clientAddr,
      brokerId: this.brokerId, rule: decision.rule.label, access: decision.access, grantId: decision.grantId,
      startedAt: now, endedAt: null, status: 'live', endReason: null, recordingPath: relPath, recordingSha256: null, recordingBytes: null,
      meta: { authMethod: req.authMethod, ...(req.meta ?? {}) },
    };
    try {
      await store.createSession(record);
      await audit.appendNow({
        ts: now, kind: 'session.start', actor: req.user, sessionId: id, target: req.target,
        data: { segment: decision.segment, protocol: req.protocol, rule: decision.rule.label, access: decision.access, grantId: decision.grantId, clientAddr: req.clientAddr, authMethod: req.authMethod, ...(req.tokenId ? { tokenId: req.tokenId } : {}), endsAt: decision.endsAt, meta: req.meta ?? {} },
      });
    } catch (err) {
      await cast?.close().catch(() => undefined);
      throw new WicketError('WICKET_ERR_RECORDING', `cannot record session: ${errorMessage(err)}`);
    }
    const entry: Entry = { record, decision, handle, cast, tokenId: req.tokenId ?? null, terminatedBy: null, ended: null, emitted: 0, watchers: new Set() };
    this.live.set(id, entry);
    cast?.onError((err) => this.terminate(id, `recording failed: ${err.message}`));
    return this.activeSession(entry);
  }

  private activeSession(entry: Entry): ActiveSession {
    const { audit } = this.opts;
    const { id, user, target } = entry.record;
    return {
      id, decision: entry.decision, record: entry.record, terminal: entry.cast,
      emit: (event) => {
        const row = sessionEventToAudit(event, { actor: user, sessionId: id, target });
        const more = audit.append(row); // throws when not queued: then no watcher hears of it either
        const n = ++entry.emitted;
        if (entry.cast === null && entry.watchers.size > 0) notify(entry, { type: 'event', n, event: row });
        return more;
      },
      drained: () => audit.drained(),
      end: (outcome) => (entry.ended ??= this.finish(entry, outcome)),
    };
  }

  private async finish(entry: Entry, outcome: SessionOutcome): Promise<void> {
    const now = this.clock();
    let digest: { sha256: string; bytes: number } | null = null;
    let recordingError: string | null = null;
    if (entry.cast) {
      try {
        digest = await entry.cast.close();
      } catch (err) {
        recordingError = errorMessage(err);
      }
    }
    const status = entry.terminatedBy !== null ? 'terminated' : recordingError ? 'failed' : outcome.status;
    const reason = entry.terminatedBy ?? recordingError ?? outcome.reason ?? null;
    try {
      await this.opts.store.endSession(entry.record.id, { endedAt: now, status, endReason: reason, recordingSha256: digest?.sha256 ?? null, recordingBytes: digest?.bytes ?? null });
      await this.opts.audit.flush();
      await this.opts.audit.appendNow({
        ts: now, kind: 'session.end', actor: entry.record.user, sessionId: entry.record.id, target: entry.record.target,
        data: { status, reason, durationMs: now - entry.record.startedAt, recording: entry.record.recordingPath ? { path: entry.record.recordingPath, sha256: digest?.sha256 ?? null, bytes: digest?.bytes ?? null } : null },
      });
    } finally {
      this.live.delete(entry.record.id);
      notify(entry, { type: 'end', status, reason });
      entry.watchers.clear();
    }
  }

  /**
   * Subscribes `listener` to a live session on this broker (null when it is
   * not here or already ending). No gap, no duplicate: the listener is added
   * and the backlog's extent fixed in one synchronous step, so every line or
   * event lands in exactly one of backlog() and the listener.
   *
   * - Terminal sessions: the backlog is the .cast file's prefix up to the
   *   subscription's offset, read from disk once the appender has written it;
   *   no extra copy of the session is kept in memory.
   * - Other sessions: the backlog is the first n events, n = events emitted
   *   before the subscription, read from the store after an audit flush (the
   *   audit queue is written in emit order).
   */
  watch(id: string, listener: WatchListener): SessionWatch | null {
    const entry = this.live.get(id);
    if (!entry || entry.ended !== null) return null;
    const { store, audit } = this.opts;
    const cast = entry.cast;
    entry.watchers.add(listener);
    const sub = cast?.subscribe((line) => listener({ type: 'cast', line })) ?? null;
    const n0 = entry.emitted;
    const record = entry.record;
    let read = false;
    async function* castBacklog(signal?: AbortSignal): AsyncGenerator<readonly WatchItem[]> {
      if (!cast || !sub) return;
      await cast.whenWritten(sub.offset, signal);
      let first = true;
      for await (const lines of readCastLines(cast.path, sub.offset, { signal })) {
        yield lines.map((line): WatchItem => {
          if (!first) return { type: 'cast', line };
          first = false;
          return { type: 'header', line };
        });
      }
    }
    async function* eventBacklog(signal?: AbortSignal): AsyncGenerator<readonly WatchItem[]> {
      if (n0 === 0) return;
      await audit.flush();
      signal?.throwIfAborted();
      // Page by page (a session can hold millions of events), the first n0 of the kinds watchers get.
      let sent = 0;
      let after = 0;
      while (sent < n0) {
        signal?.throwIfAborted();
        const page = await store.sessionEvents(id, { afterSeq: after, limit: EVENT_BATCH });
        if (page.length === 0) throw new WicketError('WICKET_ERR_RECORDING', `session ${id}: ${n0} events emitted but ${sent} in the store`);
        after = page[page.length - 1]!.seq;
        const rows = page.filter((e) => EVENT_KINDS.has(e.kind)).slice(0, n0 - sent);
        if (rows.length === 0) continue;
        yield rows.map((e, j): WatchItem => ({
          type: 'event', n: sent + j + 1,
          event: { ts: e.ts, kind: e.kind, actor: e.actor, sessionId: id, target: e.target ?? record.target, data: { ...e.data } },
        }));
        sent += rows.length;
      }
    }
    return {
      record,
      mode: cast ? 'terminal' : 'events',
      backlog: (signal) => {
        if (read) throw new Error('SessionWatch.backlog() may be read once');
        read = true;
        return cast ? castBacklog(signal) : eventBacklog(signal);
      },
      close: () => {
        entry.watchers.delete(listener);
        sub?.unsubscribe();
      },
    };
  }

  /** Ends a live session on this broker. Returns false when it is not here. */
  terminate(id: string, reason: string): boolean {
    const entry = this.live.get(id);
    if (!entry) return false;
    if (entry.terminatedBy === null) {
      entry.terminatedBy = reason;
      try {
        entry.handle.terminate(reason);
      } catch {
        // The adapter's socket may already be gone; the forced end below still records it.
      }
      // An adapter that never reports the end must not leave a live row behind.
      setTimeout(() => {
        if (this.live.get(id) === entry) void this.activeSession(entry).end({ status: 'ended', reason }).catch(() => undefined);
      }, 5000).unref();
    }
    return true;
  }

  liveSessions(): SessionRecord[] {
    return [...this.live.values()].map((e) => e.record);
  }

  /** One pass of the control loop: signals from the store, then deadlines. */
  async tick(): Promise<void> {
    if (this.ticking) return;
    this.ticking = true;
    try {
      const signals = await this.opts.store.readControl(this.lastControl);
      for (const s of signals) {
        this.lastControl = s.id;
        this.apply(s);
      }
      const now = this.clock();
      for (const [id, e] of this.live) {
        if (e.decision.endsAt !== null && now >= e.decision.endsAt) {
          const suffix = e.decision.maxDurationMs ? ' (max_duration reached)' : '';
          this.terminate(id, `access to ${e.record.target} expired${suffix}`);
        }
      }
      if (now - this.lastTokenCheck >= TOKEN_CHECK_MS) {
        this.lastTokenCheck = now;
        await this.checkTokens(now);
      }
    } catch {
      // A store hiccup must not stop the loop; the next tick retries from the same id.
    } finally {
      this.ticking = false;
    }
  }

  /** Ends the sessions whose token has been revoked, has expired or is gone. */
  private async checkTokens(now: number): Promise<void> {
    const ids = new Set<string>();
    for (const e of this.live.values()) if (e.tokenId !== null && e.terminatedBy === null) ids.add(e.tokenId);
    for (const tokenId of ids) {
      const t = await this.opts.store.getToken(tokenId);
      if (t !== null && tokenUsable(t, now)) continue;
      const why = t === null ? 'no longer exists' : t.revokedAt !== null ? 'was revoked' : 'has expired';
      for (const [id, e] of this.live) if (e.tokenId === tokenId) this.terminate(id, `the token it was opened with (${tokenId}) ${why}`);
    }
  }

  private apply(s: ControlRecord): void {
    for (const [id, e] of this.live) {
      if (s.kind === 'kill' && s.sessionId === id) this.terminate(id, s.reason);
      if (s.kind === 'lock' && s.segment === e.record.segment) this.terminate(id, `segment ${s.segment} locked: ${s.reason}`);
      if (s.kind === 'revoke' && s.grantId !== null && s.grantId === e.decision.grantId) this.terminate(id, `access to ${e.record.target} revoked`);
    }
  }

  /** Ends every live session with `reason` and waits (bounded) for their ends to be recorded. */
  async shutdown(reason: string, waitMs = 5000): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    const entries = [...this.live.values()];
    for (const e of entries) this.terminate(e.record.id, reason);
    const deadline = new Promise<void>((r) => setTimeout(r, waitMs).unref());
    const ends = entries.map((e) => e.ended ?? this.activeSession(e).end({ status: 'ended', reason }));
    await Promise.race([Promise.allSettled(ends), deadline]);
  }
}
