import { describe, expect, it } from 'vitest';
import { createHash, createHmac } from 'node:crypto';
import { generatePassword, hashPassword, passwordProblem, scramSecret, verifyPasswordHash } from '../../../src/auth/password.js';
import { Throttle } from '../../../src/auth/throttle.js';

describe('scrypt password hashes', () => {
  it('verifies the right password and rejects others', async () => {
    const h = await hashPassword('correct horse battery');
    expect(h).toMatch(/^scrypt\$16384\$8\$1\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$/);
    expect(h).not.toContain('correct');
    expect(await verifyPasswordHash('correct horse battery', h)).toBe(true);
    expect(await verifyPasswordHash('correct horse batterY', h)).toBe(false);
    expect(await verifyPasswordHash('', h)).toBe(false);
  });

  it('salts: two hashes of one password differ', async () => {
    expect(await hashPassword('same password!')).not.toBe(await hashPassword('same password!'));
  });

  it('refuses malformed or absurd stored parameters instead of computing them', async () => {
    expect(await verifyPasswordHash('x', 'md5$abc')).toBe(false);
    expect(await verifyPasswordHash('x', 'scrypt$1073741824$8$1$AAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=')).toBe(false);
  });

  it('password policy', () => {
    expect(passwordProblem('')).toBe('password is empty');
    expect(passwordProblem('short')).toBe('password must be at least 12 characters');
    expect(passwordProblem('long enough now')).toBeNull();
    expect(generatePassword()).toMatch(/^[A-HJ-NP-Za-km-z2-9]{24}$/);
  });
});

describe('SCRAM-SHA-256 secret', () => {
  // RFC 7677 section 3 example exchange: user "user", password "pencil".
  const authMessage =
    'n=user,r=rOprNGfwEbeRWgbNEkqO,' +
    'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,' +
    'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0';
  const s = scramSecret('pencil', 'W22ZaJ0SNY7soEsUEjb6gQ==', 4096);

  it('produces the RFC 7677 server signature', () => {
    const v = createHmac('sha256', Buffer.from(s.serverKey, 'base64')).update(authMessage).digest('base64');
    expect(v).toBe('6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=');
  });

  it('verifies the RFC 7677 client proof from StoredKey alone', () => {
    const proof = Buffer.from('dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=', 'base64');
    const clientSig = createHmac('sha256', Buffer.from(s.storedKey, 'base64')).update(authMessage).digest();
    const clientKey = Buffer.from(proof.map((b, i) => b ^ clientSig[i]!));
    expect(createHash('sha256').update(clientKey).digest('base64')).toBe(s.storedKey);
  });
});

describe('login throttle', () => {
  it('allows the free failures, then blocks with doubling delays, per user and per address', () => {
    const t = new Throttle({ freeFailures: 3, windowMs: 60_000, maxBlockMs: 10_000, maxEntries: 100 });
    const keys = ['user:alice', 'addr:10.0.0.1'];
    for (let i = 0; i < 2; i++) t.fail(keys, 1000);
    expect(t.retryAfter(keys, 1000)).toBe(0);
    t.fail(keys, 1000);
    expect(t.retryAfter(keys, 1000)).toBe(1000);
    t.fail(keys, 1000);
    expect(t.retryAfter(keys, 1000)).toBe(2000);
    // another user from the same address is blocked too; the same user from elsewhere as well
    expect(t.retryAfter(['user:bob', 'addr:10.0.0.1'], 1000)).toBe(2000);
    expect(t.retryAfter(['user:alice', 'addr:10.0.0.2'], 1000)).toBe(2000);
    expect(t.retryAfter(keys, 3000)).toBe(0);
    for (let i = 0; i < 20; i++) t.fail(keys, 3000);
    expect(t.retryAfter(keys, 3000)).toBe(10_000);
    t.succeed(keys);
    expect(t.retryAfter(keys, 3000)).toBe(0);
  });

  it('keeps its table bounded', () => {
    const t = new Throttle({ maxEntries: 10 });
    for (let i = 0; i < 1000; i++) t.fail([`user:u${i}`], 0);
    expect((t as unknown as { entries: Map<string, unknown> }).entries.size).toBe(10);
  });
});
