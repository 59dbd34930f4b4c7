/**
 * Checks a secret a person presented (password or token) for a user named in
 * the config. Used by every adapter that receives a secret in clear (inside
 * TLS or SSH) and by the web login. SCRAM (Postgres) verifies proofs against
 * the stored SCRAM secrets instead; see scramCandidates.
 */
import type { Config } from '../config/schema.js';
import type { ScramSecret, Store } from '../store/types.js';
import { verifyPasswordHash } from './password.js';
import { looksLikeToken, tokenUsable, verifyToken } from './tokens.js';

export type AuthResult =
  | { readonly ok: true; readonly method: 'password' | 'token'; readonly tokenId: string | null }
  | { readonly ok: false; readonly why: 'unknown_user' | 'bad_secret' | 'no_password' };

export async function authenticateSecret(
  config: Pick<Config, 'users'>,
  store: Store,
  user: string,
  secret: string,
  now: number,
): Promise<AuthResult> {
  if (!config.users.some((u) => u.name === user)) return { ok: false, why: 'unknown_user' };
  // An empty secret never authenticates, whatever is stored.
  if (secret.length === 0) return { ok: false, why: 'bad_secret' };
  if (looksLikeToken(secret)) {
    const t = await verifyToken(store, user, secret, now);
    return t ? { ok: true, method: 'token', tokenId: t.id } : { ok: false, why: 'bad_secret' };
  }
  const rec = await store.getUser(user);
  if (!rec?.password) return { ok: false, why: 'no_password' };
  return (await verifyPasswordHash(secret, rec.password.hash))
    ? { ok: true, method: 'password', tokenId: null }
    : { ok: false, why: 'bad_secret' };
}

export interface ScramCandidate {
  readonly method: 'password' | 'token';
  readonly tokenId: string | null;
  readonly secret: ScramSecret;
}

/** The SCRAM secrets a user may prove knowledge of; all share one salt (see tokens.ts). */
export async function scramCandidates(store: Store, user: string, now: number): Promise<ScramCandidate[]> {
  const out: ScramCandidate[] = [];
  const rec = await store.getUser(user);
  if (rec?.password) out.push({ method: 'password', tokenId: null, secret: rec.password.scram });
  for (const t of await store.listTokens(user)) {
    if (t.scram && tokenUsable(t, now)) out.push({ method: 'token', tokenId: t.id, secret: t.scram });
  }
  return out;
}
