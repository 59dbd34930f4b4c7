/** users and tokens tables. */
import type { PasswordCredential, ScramSecret, TokenRecord, UserRecord } from '../types.js';
import { parseJson, type Statements } from './db.js';

interface UserRow {
  name: string;
  password: string | null;
  must_change: number;
  created_at: number;
  updated_at: number;
}

interface TokenRow {
  id: string;
  user: string;
  name: string | null;
  hash: string;
  scram: string | null;
  created_at: number;
  expires_at: number | null;
  revoked_at: number | null;
  last_used_at: number | null;
}

function toUser(r: UserRow): UserRecord {
  return {
    name: r.name,
    password: r.password === null ? null : parseJson<PasswordCredential>(r.password, 'users.password'),
    mustChangePassword: r.must_change !== 0,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

function toToken(r: TokenRow): TokenRecord {
  return {
    id: r.id,
    user: r.user,
    name: r.name,
    hash: r.hash,
    scram: r.scram === null ? null : parseJson<ScramSecret>(r.scram, 'tokens.scram'),
    createdAt: r.created_at,
    expiresAt: r.expires_at,
    revokedAt: r.revoked_at,
    lastUsedAt: r.last_used_at,
  };
}

export class UsersTable {
  constructor(private readonly s: Statements) {}

  get(name: string): UserRecord | null {
    const r = this.s.get('SELECT * FROM users WHERE name = ?').get(name) as UserRow | undefined;
    return r ? toUser(r) : null;
  }

  /** Insert or replace the credential; created_at is kept from the first insert. */
  upsert(name: string, password: PasswordCredential | null, mustChange: boolean, now: number): void {
    this.s
      .get(
        `INSERT INTO users (name, password, must_change, created_at, updated_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (name) DO UPDATE SET password = excluded.password, must_change = excluded.must_change,
           updated_at = excluded.updated_at`,
      )
      .run(name, password === null ? null : JSON.stringify(password), mustChange ? 1 : 0, now, now);
  }

  list(): UserRecord[] {
    return (this.s.get('SELECT * FROM users ORDER BY name').all() as UserRow[]).map(toUser);
  }
}

export class TokensTable {
  constructor(private readonly s: Statements) {}

  create(t: TokenRecord): void {
    this.s
      .get(
        `INSERT INTO tokens (id, user, name, hash, scram, created_at, expires_at, revoked_at, last_used_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        t.id,
        t.user,
        t.name,
        t.hash,
        t.scram === null ? null : JSON.stringify(t.scram),
        t.createdAt,
        t.expiresAt,
        t.revokedAt,
        t.lastUsedAt,
      );
  }

  get(id: string): TokenRecord | null {
    const r = this.s.get('SELECT * FROM tokens WHERE id = ?').get(id) as TokenRow | undefined;
    return r ? toToken(r) : null;
  }

  list(user: string): TokenRecord[] {
    return (this.s.get('SELECT * FROM tokens WHERE user = ? ORDER BY created_at, id').all(user) as TokenRow[]).map(toToken);
  }

  /** True when this call revoked it; false when unknown or already revoked (the first revocation time stands). */
  revoke(id: string, at: number): boolean {
    return this.s.get('UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL').run(at, id).changes > 0;
  }

  touch(id: string, at: number): void {
    this.s.get('UPDATE tokens SET last_used_at = ? WHERE id = ?').run(at, id);
  }
}
