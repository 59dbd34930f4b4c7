/**
 * Canonical JSON and the audit hash chain (DESIGN.md §5).
 *
 * hash(n) = sha256_hex(hash(n-1) || canonicalJSON({seq, ts, kind, actor, sessionId, target, data}))
 * with hash(0) = 64 zeros. Canonical JSON: object keys sorted by UTF-16 code
 * units (Array.prototype.sort's default), recursively; no whitespace; arrays
 * in order; undefined object members dropped (undefined array slots become
 * null, as JSON.stringify does, so indices stay stable); non-finite numbers,
 * bigint, functions and symbols rejected, because they have no JSON form that
 * survives a round trip and the verifier must rebuild the exact bytes from
 * the stored row.
 */
import { hash as oneShotHash } from 'node:crypto';
import type { AuditEvent } from '../store/types.js';

export const GENESIS_HASH = '0'.repeat(64);

/** Deep enough for any real event; also stops cycles without a visited set on the hot path. */
const MAX_DEPTH = 64;

export function canonicalJSON(value: unknown): string {
  const out = encode(value, 0);
  if (out === undefined) throw new TypeError('canonicalJSON: value is undefined');
  return out;
}

/**
 * Quoted object keys, memoised: events repeat the same few dozen keys, and
 * quoting each one again was a measurable share of the hot path. Bounded, and
 * only short keys are kept, so client-chosen keys cannot grow it without limit.
 */
const quotedKeys = new Map<string, string>();
const MAX_QUOTED_KEYS = 4096;

function quoteKey(k: string): string {
  let q = quotedKeys.get(k);
  if (q === undefined) {
    q = JSON.stringify(k);
    if (k.length <= 64 && quotedKeys.size < MAX_QUOTED_KEYS) quotedKeys.set(k, q);
  }
  return q;
}

function encode(v: unknown, depth: number): string | undefined {
  switch (typeof v) {
    case 'string':
      return JSON.stringify(v);
    case 'number':
      if (!Number.isFinite(v)) throw new TypeError(`canonicalJSON: non-finite number ${String(v)}`);
      // For finite numbers String() is exactly JSON's number form (shortest round-trip; -0 -> "0").
      return String(v);
    case 'boolean':
      return v ? 'true' : 'false';
    case 'undefined':
      return undefined;
    case 'object':
      return v === null ? 'null' : encodeObject(v, depth);
    default:
      throw new TypeError(`canonicalJSON: cannot encode a ${typeof v}`);
  }
}

function encodeObject(v: object, depth: number): string | undefined {
  if (depth >= MAX_DEPTH) throw new TypeError(`canonicalJSON: nested deeper than ${MAX_DEPTH} (or cyclic)`);
  const toJSON = (v as { toJSON?: unknown }).toJSON;
  // Dates (and anything else with toJSON) encode as JSON.stringify would.
  if (typeof toJSON === 'function') return encode((toJSON as () => unknown).call(v), depth + 1);
  if (Array.isArray(v)) {
    let s = '[';
    for (let i = 0; i < v.length; i++) {
      if (i > 0) s += ',';
      s += encode(v[i], depth + 1) ?? 'null';
    }
    return `${s}]`;
  }
  const keys = Object.keys(v);
  if (keys.length > 1) keys.sort();
  const rec = v as Record<string, unknown>;
  let s = '{';
  let first = true;
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i]!;
    const enc = encode(rec[k], depth + 1);
    if (enc === undefined) continue;
    s += first ? `${quoteKey(k)}:${enc}` : `,${quoteKey(k)}:${enc}`;
    first = false;
  }
  return `${s}}`;
}

/** The fields the chain covers. */
export interface ChainedFields {
  readonly seq: number;
  readonly ts: number;
  readonly kind: string;
  readonly actor: string;
  readonly sessionId: string | null;
  readonly target: string | null;
  readonly data: Readonly<Record<string, unknown>>;
}

/** sha256 hex of prevHash + canonicalJSON(ev). The reference definition; the verifier uses it. */
export function chainHash(prevHash: string, ev: ChainedFields): string {
  const body = canonicalJSON({
    seq: ev.seq,
    ts: ev.ts,
    kind: ev.kind,
    actor: ev.actor,
    sessionId: ev.sessionId,
    target: ev.target,
    data: ev.data,
  });
  return oneShotHash('sha256', prevHash + body, 'hex');
}

/** Recomputes an event's hash from its stored fields; false (not a throw) when the fields cannot even be encoded. */
export function hashMatches(ev: AuditEvent, seq: number = ev.seq): boolean {
  try {
    // Fields spelled out: AuditEvent objects may carry `data` as a getter, which a spread would not copy.
    const fields = { seq, ts: ev.ts, kind: ev.kind, actor: ev.actor, sessionId: ev.sessionId, target: ev.target, data: ev.data };
    return chainHash(ev.prevHash, fields) === ev.hash;
  } catch {
    return false;
  }
}
