/**
 * ssh2, loaded so that its per-packet padding comes from a pool of random
 * bytes instead of one `crypto.randomFillSync` call per packet.
 *
 * ssh2 fills 4 to 19 padding bytes of every packet it sends with
 * randomFillSync, which on Node 20 costs about 5 µs per call however few the
 * bytes (a synchronous crypto job per call), against 0.25 µs for a copy out
 * of a pool. On a keystroke, wicket sends two packets (one each way), and the
 * call was 11% of the main thread's time in the keystroke bench.
 *
 * ssh2 takes randomFillSync from `require('crypto')` once, when its modules
 * load, so the pooled function is put in place for exactly that moment and
 * the original restored before anything else runs: the rest of the process
 * keeps Node's own function. The pool is filled by that original function,
 * in 64 KiB refills, and no byte of it is handed out twice.
 *
 * Import ssh2's values from here, never from 'ssh2' directly (types may
 * come from 'ssh2'). If ssh2 was loaded before this module (a test that
 * imports it first), that copy is reused as it is, only without the pool.
 */
import crypto from 'node:crypto';
import { createRequire } from 'node:module';

type Ssh2 = typeof import('ssh2');
type RandomFillSync = (buf: NodeJS.ArrayBufferView, offset?: number, size?: number) => NodeJS.ArrayBufferView;

const POOL_BYTES = 64 * 1024;
/** Larger requests (key exchange cookies are 16 bytes; nothing else comes near) go straight to Node. */
const MAX_POOLED = 256;

/** A randomFillSync that serves small requests on Buffers from a pool that `fill` keeps topped up. */
export function pooledRandomFill(fill: RandomFillSync, poolBytes = POOL_BYTES): RandomFillSync {
  const pool = Buffer.allocUnsafe(poolBytes);
  let at = poolBytes; // empty: the first call fills it
  return (buf, offset = 0, size) => {
    const n = size ?? buf.byteLength - offset;
    const plain = Buffer.isBuffer(buf) && Number.isSafeInteger(offset) && Number.isSafeInteger(n);
    if (!plain || n > MAX_POOLED || n > poolBytes || offset < 0 || n < 0 || offset + n > buf.byteLength) return fill(buf, offset, size);
    if (at + n > poolBytes) {
      fill(pool);
      at = 0;
    }
    pool.copy(buf, offset, at, at + n);
    at += n;
    return buf;
  };
}

function loadSsh2(): Ssh2 {
  const require = createRequire(import.meta.url);
  const original = crypto.randomFillSync;
  const mutable = crypto as { randomFillSync: unknown };
  mutable.randomFillSync = pooledRandomFill(original as RandomFillSync);
  try {
    return require('ssh2') as Ssh2;
  } finally {
    mutable.randomFillSync = original;
  }
}

const ssh2: Ssh2 = loadSsh2();
export default ssh2;
