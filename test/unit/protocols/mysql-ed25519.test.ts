import { spawnSync } from 'node:child_process';
import { createPrivateKey, createPublicKey, randomBytes, sign, verify, type KeyObject } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ed25519PublicKey, ed25519Sign } from '../../../protocols/mysql/ed25519.js';

const hex = (s: string): Buffer => Buffer.from(s, 'hex');

/** A Node public key from the raw 32 bytes A. */
const nodePublicKey = (raw: Buffer): KeyObject =>
  createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: raw.toString('base64url') }, format: 'jwk' });

/**
 * A Node private key from a 32-byte seed, as PKCS#8 DER (RFC 8410), so Node
 * derives the public key itself instead of trusting one we hand it.
 */
const nodePrivateKeyFromSeed = (seed: Buffer): KeyObject =>
  createPrivateKey({
    key: Buffer.concat([hex('302e020100300506032b657004220420'), seed]),
    format: 'der',
    type: 'pkcs8',
  });

const nodeVerifies = (password: Buffer, message: Buffer, signature: Buffer): boolean =>
  verify(null, message, nodePublicKey(ed25519PublicKey(password)), signature);

describe('ed25519 for MariaDB client_ed25519', () => {
  it('equals Node’s own Ed25519 when the password is a 32-byte seed', () => {
    for (let i = 0; i < 8; i++) {
      const seed = randomBytes(32);
      const message = randomBytes(32);
      const privateKey = nodePrivateKeyFromSeed(seed);
      const nodeX = createPublicKey(privateKey).export({ format: 'jwk' }).x;

      expect(ed25519PublicKey(seed).toString('base64url')).toBe(nodeX);
      expect(ed25519Sign(seed, message).toString('hex')).toBe(sign(null, message, privateKey).toString('hex'));
    }
  });

  it('also matches Node when the private key is given as a JWK (d = seed)', () => {
    const seed = randomBytes(32);
    const message = randomBytes(32);
    const x = ed25519PublicKey(seed).toString('base64url');
    const privateKey = createPrivateKey({
      key: { kty: 'OKP', crv: 'Ed25519', d: seed.toString('base64url'), x },
      format: 'jwk',
    });
    expect(ed25519Sign(seed, message).equals(sign(null, message, privateKey))).toBe(true);
  });

  it.each([
    ['empty', Buffer.alloc(0)],
    ['1 byte', Buffer.from('x')],
    ['7 bytes', Buffer.from('hunter2')],
    ['31 bytes', randomBytes(31)],
    ['33 bytes', randomBytes(33)],
    ['100 bytes', randomBytes(100)],
    ['UTF-8', Buffer.from('pässwörd-密码-🔑', 'utf8')],
  ])('signs with a %s password so that Node verifies it against ed25519PublicKey', (_name, password) => {
    const scramble = randomBytes(32);
    const signature = ed25519Sign(password, scramble);
    expect(signature).toHaveLength(64);
    expect(ed25519PublicKey(password)).toHaveLength(32);
    expect(nodeVerifies(password, scramble, signature)).toBe(true);
    // Deterministic, as RFC 8032 signatures are.
    expect(ed25519Sign(password, scramble).equals(signature)).toBe(true);
  });

  it('rejects a tampered signature, another message, or another password', () => {
    const password = Buffer.from('correct horse battery staple');
    const scramble = randomBytes(32);
    const signature = ed25519Sign(password, scramble);
    expect(nodeVerifies(password, scramble, signature)).toBe(true);

    for (const index of [0, 31, 32, 63]) {
      const tampered = Buffer.from(signature);
      tampered[index] ^= 0x01;
      expect(nodeVerifies(password, scramble, tampered)).toBe(false);
    }
    const otherScramble = Buffer.from(scramble);
    otherScramble[5] ^= 0x80;
    expect(nodeVerifies(password, otherScramble, signature)).toBe(false);
    expect(nodeVerifies(Buffer.from('correct horse battery stapler'), scramble, signature)).toBe(false);
    expect(ed25519PublicKey(Buffer.from('a')).equals(ed25519PublicKey(Buffer.from('b')))).toBe(false);
  });

  it('reproduces RFC 8032 §7.1 TEST 1 (empty message)', () => {
    const secret = hex('9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60');
    expect(ed25519PublicKey(secret).toString('hex')).toBe(
      'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a',
    );
    expect(ed25519Sign(secret, Buffer.alloc(0)).toString('hex')).toBe(
      'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b',
    );
  });

  it('reproduces RFC 8032 §7.1 TEST 2 (one-byte message)', () => {
    const secret = hex('4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb');
    expect(ed25519PublicKey(secret).toString('hex')).toBe(
      '3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c',
    );
    expect(ed25519Sign(secret, hex('72')).toString('hex')).toBe(
      '92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00',
    );
  });

  // The vector of MariaDB's own unit test, plugin/auth_ed25519/ed25519-t.c:
  // password "foobar" (6 bytes, so not an RFC 8032 seed), nonce = 32 × 'A'.
  it('reproduces MariaDB’s ed25519-t.c vector for password "foobar"', () => {
    const password = Buffer.from('foobar');
    const publicKey = Buffer.from([
      170, 253, 166, 27, 161, 214, 10, 236, 183, 217, 41, 91, 231, 24, 85, 225, 49, 210, 181, 236, 13, 207, 101, 72,
      53, 83, 219, 130, 79, 151, 0, 159,
    ]);
    const signature = Buffer.from([
      232, 61, 201, 63, 67, 63, 51, 53, 86, 73, 238, 35, 170, 117, 146, 214, 26, 17, 35, 9, 8, 132, 245, 141, 48, 99,
      66, 58, 36, 228, 48, 84, 115, 254, 187, 168, 88, 162, 249, 57, 35, 85, 79, 238, 167, 106, 68, 117, 56, 135, 171,
      47, 20, 14, 133, 79, 15, 229, 124, 160, 176, 100, 138, 14,
    ]);
    const nonce = Buffer.alloc(32, 'A');

    expect(ed25519PublicKey(password).equals(publicKey)).toBe(true);
    expect(ed25519Sign(password, nonce).equals(signature)).toBe(true);
    // What ED25519_PASSWORD('foobar') returns: base64 without the '=' pad.
    expect(publicKey.toString('base64').replace(/=+$/, '')).toHaveLength(43);
  });

  // Produced out of band by MariaDB 10.11's own auth_ed25519.so (Debian
  // 1:10.11.x), calling its exported crypto_sign_keypair / crypto_sign from a
  // harness that supplied SHA-512. They pin what no Node cross-check can:
  // passwords that are not 32 bytes, in particular longer ones.
  const scramble = Buffer.from(Array.from({ length: 32 }, (_, i) => i));
  it.each([
    [
      'empty',
      Buffer.alloc(0),
      'e0b1fe74117e1b95b608a4f221df314774b20ea66842350d515371c7c6966c6e',
      '1e7e2c09c0c0e5f755a202872d95c85c4b14d23a888e9c40a0e9323e1ed28dd4aee4a8197c2d2ca26942bf6496d61c60c63661959ab57706eb0bfda05749ad0f',
    ],
    [
      '100-byte',
      Buffer.from('wicket-'.repeat(15).slice(0, 100)),
      '10faeb2694a3f299105d4cf1cffa855a08b20c79ec3ec14a729016717cecbba4',
      'c93a29bfea2a205ebdc8185c9699fc5f15d9929f77ee9f8f9d4eee2536008a13976b080605285ea8e15331f1d26d120d724d3dacf1e81788ae99251844483401',
    ],
    [
      'UTF-8',
      Buffer.from('pässwörd-密码-🔑', 'utf8'),
      '4b3167d86fdd6b5985af6f20ebc21de0837b1b0a143f8331c411c2f5f4fe85c0',
      '068b02943497f13a230cc8e034e5a4b6e79337c993353d9eb303c28f569b6b7ab16f921c94e3c18ee659251f416a20d5146bdab97743ff2aac8dab704cc0610c',
    ],
  ])('matches MariaDB’s plugin for the %s password', (_name, password, publicKey, signature) => {
    expect(ed25519PublicKey(password).toString('hex')).toBe(publicKey);
    expect(ed25519Sign(password, scramble).toString('hex')).toBe(signature);
  });
});

/**
 * Only when the local MariaDB already has the ed25519 plugin loaded; this test
 * never installs anything. ED25519_PASSWORD() hashes the string's bytes in the
 * connection character set, so the passwords here are ASCII.
 */
function serverEd25519Password(password: string): string | undefined {
  const literal = `'${password.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
  const run = spawnSync(
    'mariadb',
    ['-h', '127.0.0.1', '-P', '3306', '-u', 'root', '--batch', '--skip-column-names', '-e', `SELECT ED25519_PASSWORD(${literal})`],
    { encoding: 'utf8', timeout: 5_000 },
  );
  return run.status === 0 ? run.stdout.trim() : undefined;
}

const serverHasEd25519 = serverEd25519Password('secret') !== undefined;

describe.skipIf(!serverHasEd25519)('ed25519 against the local MariaDB (ED25519_PASSWORD)', () => {
  it.each(['secret', '', 'x', 'a much longer password than thirty-two bytes, for good measure'])(
    'matches ED25519_PASSWORD(%j)',
    (password) => {
      const expected = ed25519PublicKey(Buffer.from(password, 'utf8')).toString('base64').replace(/=+$/, '');
      expect(expected).toHaveLength(43);
      expect(serverEd25519Password(password)).toBe(expected);
    },
  );
});
