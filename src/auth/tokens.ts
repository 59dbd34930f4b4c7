/**
 * Personal access tokens: `wkt_<id>_<secret>`. The id is the lookup key; the
 * store keeps sha256(token) and a SCRAM secret made with the user's SCRAM
 * salt, so a token works wherever the password does (psql's SCRAM included:
 * the server must announce one salt before it knows which secret the client
 * holds, so every secret of a user shares it).
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Store, TokenRecord } from '../store/types.js';
import { newScramSalt, scramSecret } from './password.js';

const TOKEN_RE = /^wkt_([0-9a-f]{16})_([A-Za-z0-9_-]{32})$/;

export function looksLikeToken(secret: string): boolean {
  return TOKEN_RE.test(secret);
}

function sha256Hex(s: string): string {
  return createHash('sha256').update(s).digest('hex');
}

/** The salt all of a user's SCRAM secrets share: the password's, else the newest token's, else a new one. */
export async function userScramSalt(store: Store, user: string): Promise<string> {
  const rec = await store.getUser(user);
  if (rec?.password) return rec.password.scram.salt;
  const tokens = await store.listTokens(user);
  const withScram = tokens.filter((t) => t.scram !== null).sort((a, b) => b.createdAt - a.createdAt);
  return withScram[0]?.scram?.salt ?? newScramSalt();
}

export interface CreatedToken {
  /** Shown once; never stored. */
  readonly token: string;
  readonly record: TokenRecord;
}

export async function createToken(
  store: Store,
  user: string,
  opts: { name?: string | null; ttlMs?: number | null; now: number },
): Promise<CreatedToken> {
  const id = randomBytes(8).toString('hex');
  const token = `wkt_${id}_${randomBytes(24).toString('base64url')}`;
  const record: TokenRecord = {
    id,
    user,
    name: opts.name ?? null,
    hash: sha256Hex(token),
    scram: scramSecret(token, await userScramSalt(store, user)),
    createdAt: opts.now,
    expiresAt: opts.ttlMs ? opts.now + opts.ttlMs : null,
    revokedAt: null,
    lastUsedAt: null,
  };
  await store.createToken(record);
  return { token, record };
}

export function tokenUsable(t: TokenRecord, now: number): boolean {
  return t.revokedAt === null && (t.expiresAt === null || now < t.expiresAt);
}

/** How stale a token's last_used_at may get (it answers "is this token still in use?", not "when exactly"). */
const TOUCH_EVERY_MS = 60_000;

/** The token record when `secret` is a live token of `user`, else null. */
export async function verifyToken(store: Store, user: string, secret: string, now: number): Promise<TokenRecord | null> {
  const m = TOKEN_RE.exec(secret);
  if (!m) return null;
  const rec = await store.getToken(m[1]!);
  if (!rec || rec.user !== user || !tokenUsable(rec, now)) return null;
  const a = Buffer.from(sha256Hex(secret), 'hex');
  const b = Buffer.from(rec.hash, 'hex');
  if (a.length !== b.length || !timingSafeEqual(a, b)) return null;
  // At most once a minute: a write per API call would queue behind the search indexer's write lock.
  if (rec.lastUsedAt === null || now - rec.lastUsedAt >= TOUCH_EVERY_MS) await store.touchToken(rec.id, now);
  return rec;
}
