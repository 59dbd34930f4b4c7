/**
 * Client side of MariaDB's `client_ed25519` authentication plugin. Pure: no
 * I/O, the caller moves the bytes. Wire facts (MariaDB plugin/auth_ed25519):
 * - The server sends a 32-byte random nonce; the client answers with the
 *   64-byte Ed25519 signature R || S of exactly those 32 bytes.
 * - The "secret key" is the password itself, of any length: it takes the
 *   place of RFC 8032's 32-byte seed, so h = SHA-512(password) and the rest
 *   is RFC 8032 §5.1.5–5.1.6 unchanged. For a 32-byte password the result is
 *   therefore the ordinary Ed25519 signature with that password as the seed.
 * - The server stores base64(A) without the trailing '=' (43 characters),
 *   which is what `ED25519_PASSWORD('pw')` returns; `ed25519PublicKey` is A.
 * - MariaDB's C clients hand the plugin strlen(password) bytes, so a password
 *   stops at its first NUL there; callers pass the bytes they mean to sign.
 *
 * Node's crypto can verify these signatures but cannot make them (it only
 * accepts a 32-byte seed), hence the small BigInt implementation below. It is
 * not constant-time; it runs once per upstream login.
 */
import { createHash } from 'node:crypto';

/** Field prime p = 2^255 - 19. */
const P = 2n ** 255n - 19n;
/** Order of the base point, L = 2^252 + 27742317777372353535851937790883648493. */
const L = 2n ** 252n + 27742317777372353535851937790883648493n;

const mod = (a: bigint, m: bigint = P): bigint => {
  const r = a % m;
  return r < 0n ? r + m : r;
};

function powMod(base: bigint, exp: bigint, m: bigint = P): bigint {
  let result = 1n;
  let b = mod(base, m);
  for (let e = exp; e > 0n; e >>= 1n) {
    if (e & 1n) result = (result * b) % m;
    b = (b * b) % m;
  }
  return result;
}

/** Multiplicative inverse mod p (Fermat: x^(p-2)). */
const inv = (x: bigint): bigint => powMod(x, P - 2n);

/** Curve constant d = -121665/121666 mod p. */
const D = mod(-121665n * inv(121666n));
const D2 = mod(2n * D);
/** sqrt(-1) mod p = 2^((p-1)/4), used when decoding. */
const SQRT_M1 = powMod(2n, (P - 1n) / 4n);

/** Extended twisted Edwards coordinates: x = X/Z, y = Y/Z, x*y = T/Z. */
interface Point {
  readonly X: bigint;
  readonly Y: bigint;
  readonly Z: bigint;
  readonly T: bigint;
}

const IDENTITY: Point = { X: 0n, Y: 1n, Z: 1n, T: 0n };

/** RFC 8032 §5.1.4, addition on -x^2 + y^2 = 1 + d x^2 y^2. */
function add(p: Point, q: Point): Point {
  const a = mod((p.Y - p.X) * (q.Y - q.X));
  const b = mod((p.Y + p.X) * (q.Y + q.X));
  const c = mod(p.T * D2 * q.T);
  const d = mod(p.Z * 2n * q.Z);
  const e = b - a;
  const f = d - c;
  const g = d + c;
  const h = b + a;
  return { X: mod(e * f), Y: mod(g * h), Z: mod(f * g), T: mod(e * h) };
}

/** RFC 8032 §5.1.4, doubling. */
function double(p: Point): Point {
  const a = mod(p.X * p.X);
  const b = mod(p.Y * p.Y);
  const c = mod(2n * p.Z * p.Z);
  const h = a + b;
  const e = h - mod((p.X + p.Y) * (p.X + p.Y));
  const g = a - b;
  const f = c + g;
  return { X: mod(e * f), Y: mod(g * h), Z: mod(f * g), T: mod(e * h) };
}

/** [k]P by double-and-add, most significant bit first. */
function multiply(p: Point, k: bigint): Point {
  let acc = IDENTITY;
  for (let i = BigInt(k.toString(2).length) - 1n; i >= 0n; i--) {
    acc = double(acc);
    if ((k >> i) & 1n) acc = add(acc, p);
  }
  return acc;
}

function bytesToBigIntLE(bytes: Uint8Array): bigint {
  let n = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(bytes[i]);
  return n;
}

function bigIntToBytesLE(n: bigint, length: number): Buffer {
  const out = Buffer.alloc(length);
  for (let i = 0; i < length; i++, n >>= 8n) out[i] = Number(n & 0xffn);
  return out;
}

/** RFC 8032 §5.1.2: y little-endian, the top bit holds the parity of x. */
function encodePoint(p: Point): Buffer {
  const zInv = inv(p.Z);
  const x = mod(p.X * zInv);
  const y = mod(p.Y * zInv);
  const out = bigIntToBytesLE(y, 32);
  out[31] |= Number(x & 1n) << 7;
  return out;
}

/** RFC 8032 §5.1.3. Throws on a string that is not a curve point. */
function decodePoint(bytes: Uint8Array): Point {
  if (bytes.length !== 32) throw new Error('ed25519: a point encoding is 32 bytes');
  const sign = BigInt(bytes[31] >> 7);
  const y = bytesToBigIntLE(bytes) & ((1n << 255n) - 1n);
  if (y >= P) throw new Error('ed25519: y is not reduced mod p');
  // x^2 = (y^2 - 1) / (d y^2 + 1) = u / v; candidate x = u v^3 (u v^7)^((p-5)/8).
  const y2 = mod(y * y);
  const u = mod(y2 - 1n);
  const v = mod(D * y2 + 1n);
  let x = mod(u * powMod(v, 3n) * powMod(u * powMod(v, 7n), (P - 5n) / 8n));
  const vx2 = mod(v * x * x);
  if (vx2 === mod(-u)) x = mod(x * SQRT_M1);
  else if (vx2 !== u) throw new Error('ed25519: not a point on the curve');
  if (x === 0n && sign === 1n) throw new Error('ed25519: invalid encoding of x = 0');
  if ((x & 1n) !== sign) x = P - x;
  return { X: x, Y: y, Z: 1n, T: mod(x * y) };
}

/** The base point B: y = 4/5, x positive (even), encoded as 0x58 0x66 … 0x66. */
const B = decodePoint(Buffer.from('58' + '66'.repeat(31), 'hex'));

const sha512 = (...parts: Uint8Array[]): Buffer => {
  const h = createHash('sha512');
  for (const part of parts) h.update(part);
  return h.digest();
};

/** RFC 8032 §5.1.5 with the password in place of the seed. */
function expandPassword(password: Buffer): { a: bigint; prefix: Buffer; publicKey: Buffer } {
  const h = sha512(password);
  const scalar = Buffer.from(h.subarray(0, 32));
  scalar[0] &= 0xf8; // clear the 3 low bits (cofactor 8)
  scalar[31] &= 0x7f; // clear bit 255
  scalar[31] |= 0x40; // set bit 254
  const a = bytesToBigIntLE(scalar);
  return { a, prefix: h.subarray(32, 64), publicKey: encodePoint(multiply(B, a)) };
}

/** The 64-byte signature MariaDB's client_ed25519 expects for `scramble`. */
export function ed25519Sign(password: Buffer, message: Buffer): Buffer {
  const { a, prefix, publicKey } = expandPassword(password);
  const r = mod(bytesToBigIntLE(sha512(prefix, message)), L);
  const R = encodePoint(multiply(B, r));
  const k = mod(bytesToBigIntLE(sha512(R, publicKey, message)), L);
  const S = mod(r + k * a, L);
  return Buffer.concat([R, bigIntToBytesLE(S, 32)]);
}

/** The public key A for `password` (what ED25519_PASSWORD() stores), 32 bytes. */
export function ed25519PublicKey(password: Buffer): Buffer {
  return expandPassword(password).publicKey;
}
