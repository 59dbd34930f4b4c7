/**
 * Audit events between the caller and the store: validated and serialised
 * once, at hand-over.
 *
 * `dataJson` = canonicalJSON(data) taken when the event was handed over, so
 * later mutation of `data` by the caller does not change what is recorded,
 * and the store hashes and stores that string without serialising again.
 *
 * Lazy inputs (the writer's fire-and-forget append()) keep only `dataJson`
 * and parse it back if someone asks for `data`. Why: queued events live
 * through several young-generation GCs; dropping the caller's object tree
 * (and flattening the string, below) made queued events cheap to keep and
 * was worth ~30% of AuditWriter throughput in bench/store.ts.
 */
import type { AuditEvent, AuditInput } from '../store/types.js';
import { canonicalJSON } from './canonical.js';

type Data = Readonly<Record<string, unknown>>;

export interface PreparedAuditInput extends AuditInput {
  readonly sessionId: string | null;
  readonly target: string | null;
  readonly dataJson: string;
}

function parseData(json: string): Data {
  return JSON.parse(json) as Data;
}

/** A prepared input without the caller's object: `data` is parsed back on first use. */
class LazyInput implements PreparedAuditInput {
  private parsed: Data | undefined;
  constructor(
    readonly ts: number,
    readonly kind: string,
    readonly actor: string,
    readonly sessionId: string | null,
    readonly target: string | null,
    readonly dataJson: string,
  ) {}
  get data(): Data {
    return (this.parsed ??= parseData(this.dataJson));
  }
}

/**
 * A chained event built from a LazyInput, with the same lazy `data`. toJSON
 * keeps JSON.stringify complete; note that an object spread would not copy
 * the `data` getter (the writer never hands these out; see chainedEvent).
 */
class LazyEvent implements AuditEvent {
  private parsed: Data | undefined;
  constructor(
    readonly seq: number,
    private readonly input: LazyInput,
    readonly prevHash: string,
    readonly hash: string,
  ) {}
  get ts(): number {
    return this.input.ts;
  }
  get kind(): string {
    return this.input.kind;
  }
  get actor(): string {
    return this.input.actor;
  }
  get sessionId(): string | null {
    return this.input.sessionId;
  }
  get target(): string | null {
    return this.input.target;
  }
  get data(): Data {
    return (this.parsed ??= this.input.data);
  }
  toJSON(): AuditEvent {
    return { seq: this.seq, ts: this.ts, kind: this.kind, actor: this.actor, sessionId: this.sessionId, target: this.target, data: this.data, prevHash: this.prevHash, hash: this.hash };
  }
}

/**
 * V8 builds `a + b` strings as ropes (trees of pieces). ToNumber flattens a
 * rope in place into one contiguous string, so the pieces die young instead
 * of being copied by every GC while the event waits in the queue, and the
 * hash and the SQLite bind do not each flatten it again.
 */
function flat(s: string): string {
  void Number(s);
  return s;
}

export function isPrepared(e: AuditInput): e is PreparedAuditInput {
  return typeof (e as { dataJson?: unknown }).dataJson === 'string';
}

/**
 * Validates the envelope and serialises `data`; throws TypeError on anything
 * the chain cannot represent exactly. keepData=false drops the caller's
 * object (see LazyInput).
 */
export function prepareAudit(e: AuditInput, keepData = true): PreparedAuditInput {
  if (isPrepared(e)) return e;
  if (typeof e.ts !== 'number' || !Number.isFinite(e.ts)) throw new TypeError('audit event: ts must be a finite number (epoch ms)');
  if (typeof e.kind !== 'string' || e.kind === '') throw new TypeError('audit event: kind must be a non-empty string');
  if (typeof e.actor !== 'string') throw new TypeError('audit event: actor must be a string');
  const sessionId = e.sessionId ?? null;
  const target = e.target ?? null;
  if (sessionId !== null && typeof sessionId !== 'string') throw new TypeError('audit event: sessionId must be a string or null');
  if (target !== null && typeof target !== 'string') throw new TypeError('audit event: target must be a string or null');
  if (typeof e.data !== 'object' || e.data === null || Array.isArray(e.data)) throw new TypeError('audit event: data must be an object');
  const dataJson = flat(canonicalJSON(e.data));
  // Times are whole epoch milliseconds (stored as INTEGER); a fraction is dropped here, before hashing.
  const ts = Math.floor(e.ts);
  if (!keepData) return new LazyInput(ts, e.kind, e.actor, sessionId, target, dataJson);
  return { ts, kind: e.kind, actor: e.actor, sessionId, target, data: e.data, dataJson };
}

/** The chained event for a prepared input: plain when the input carries its data, lazy when it does not. */
export function chainedEvent(e: PreparedAuditInput, seq: number, prevHash: string, hash: string): AuditEvent {
  if (e instanceof LazyInput) return new LazyEvent(seq, e, prevHash, hash);
  return { seq, ts: e.ts, kind: e.kind, actor: e.actor, sessionId: e.sessionId, target: e.target, data: e.data, prevHash, hash };
}
