/**
 * Password and token secrets. We keep an scrypt hash (for clients that send
 * the password: MySQL clear/caching_sha2 full auth over TLS, SSH password,
 * web login) and a SCRAM-SHA-256 secret (StoredKey/ServerKey, RFC 5802/7677)
 * so Postgres clients can authenticate without the broker holding anything
 * password-equivalent. Neither is reversible.
 */
import { createHash, createHmac, pbkdf2Sync, randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import type { PasswordCredential, ScramSecret } from '../store/types.js';

const SCRYPT = { N: 16384, r: 8, p: 1, keylen: 32 } as const;
/** Postgres' own default for scram_iterations. */
export const SCRAM_ITERATIONS = 4096;

function scryptAsync(secret: string, salt: Buffer, N: number, r: number, p: number, keylen: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(secret.normalize('NFKC'), salt, keylen, { N, r, p, maxmem: 64 * 1024 * 1024 }, (err, key) =>
      err ? reject(err) : resolve(key),
    );
  });
}

export async function hashPassword(secret: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await scryptAsync(secret, salt, SCRYPT.N, SCRYPT.r, SCRYPT.p, SCRYPT.keylen);
  return `scrypt$${SCRYPT.N}$${SCRYPT.r}$${SCRYPT.p}$${salt.toString('base64')}$${key.toString('base64')}`;
}

export async function verifyPasswordHash(secret: string, stored: string): Promise<boolean> {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false;
  const [N, r, p] = [Number(parts[1]), Number(parts[2]), Number(parts[3])];
  // Bound the work a tampered row could make us do.
  if (![N, r, p].every(Number.isSafeInteger) || N > 1 << 20 || r > 32 || p > 16) return false;
  const expected = Buffer.from(parts[5]!, 'base64');
  if (expected.length < 16) return false;
  const key = await scryptAsync(secret, Buffer.from(parts[4]!, 'base64'), N, r, p, expected.length);
  return timingSafeEqual(key, expected);
}

/** SCRAM-SHA-256 secret for `secret` with a given salt (base64). */
export function scramSecret(secret: string, saltB64: string, iterations = SCRAM_ITERATIONS): ScramSecret {
  // SASLprep is the identity for the ASCII secrets wicket issues; NFKC covers the common non-ASCII cases.
  const salted = pbkdf2Sync(secret.normalize('NFKC'), Buffer.from(saltB64, 'base64'), iterations, 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  return {
    salt: saltB64,
    iterations,
    storedKey: createHash('sha256').update(clientKey).digest('base64'),
    serverKey: createHmac('sha256', salted).update('Server Key').digest('base64'),
  };
}

export function newScramSalt(): string {
  return randomBytes(16).toString('base64');
}

export async function makePasswordCredential(secret: string, scramSalt: string): Promise<PasswordCredential> {
  return { hash: await hashPassword(secret), scram: scramSecret(secret, scramSalt) };
}

/** Password policy for people: long enough to resist online guessing behind throttling. */
export function passwordProblem(secret: string): string | null {
  if (secret.length === 0) return 'password is empty';
  if (secret.length < 12) return 'password must be at least 12 characters';
  if (secret.length > 1024) return 'password must be at most 1024 characters';
  return null;
}

/** A random password for `wicket init`: 24 characters from an unambiguous alphabet. */
export function generatePassword(length = 24): string {
  const alphabet = 'ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789';
  const bytes = randomBytes(length * 2);
  let out = '';
  for (const b of bytes) {
    if (b < 256 - (256 % alphabet.length)) out += alphabet[b % alphabet.length];
    if (out.length === length) break;
  }
  return out;
}
