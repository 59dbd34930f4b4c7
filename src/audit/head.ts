/**
 * The signed head: `${dataDir}/audit.head` = JSON {count, lastSeq, lastHash,
 * writtenAt, mac}, mac = HMAC-SHA256 under `${dataDir}/audit.key` (32 random
 * bytes, 0600, created on first use).
 *
 * Why: the chain alone proves that nothing was edited, removed or reordered
 * *between* rows, but deleting rows from the end leaves a shorter, perfectly
 * valid chain. The head, kept outside the database and signed with a key the
 * database does not hold, records how far the chain went, so a truncated tail
 * (or a chain rewritten from some point on) shows up in `wicket audit verify`.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { closeSync, fsyncSync, linkSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { open, readFile, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { WicketError, errorMessage } from '../errors.js';
import type { AuditHead, Store } from '../store/types.js';
import { canonicalJSON } from './canonical.js';

export const HEAD_FILE = 'audit.head';
export const KEY_FILE = 'audit.key';
const KEY_BYTES = 32;
const MAC_CONTEXT = 'wicket-audit-head-v1\n';

export interface SignedHead extends AuditHead {
  /** Epoch ms when the head was written. */
  readonly writtenAt: number;
  /** HMAC-SHA256 hex over the other fields. */
  readonly mac: string;
}

export type HeadRead =
  | { readonly status: 'missing' }
  | { readonly status: 'invalid'; readonly reason: string }
  | { readonly status: 'ok'; readonly head: SignedHead };

export const headPath = (dataDir: string): string => join(dataDir, HEAD_FILE);
export const keyPath = (dataDir: string): string => join(dataDir, KEY_FILE);

/**
 * The head key. With create=true a missing key is generated; creation is
 * race-free across processes (written to a temp file, then hard-linked into
 * place, which fails if another process got there first). With create=false
 * (the verifier, which must not change anything) a missing key returns null.
 */
export function loadHeadKey(dataDir: string, create: boolean): Buffer | null {
  const path = keyPath(dataDir);
  const read = (): Buffer | null => {
    let key: Buffer;
    try {
      key = readFileSync(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
    if (key.length !== KEY_BYTES) {
      throw new WicketError('WICKET_ERR_AUDIT_TAMPERED', `${path}: expected ${KEY_BYTES} bytes, found ${key.length}`);
    }
    return key;
  };
  const existing = read();
  if (existing !== null || !create) return existing;
  const tmp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    writeSync(fd, randomBytes(KEY_BYTES));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    linkSync(tmp, path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  } finally {
    unlinkSync(tmp);
  }
  return read();
}

function macOf(key: Buffer, h: AuditHead & { readonly writtenAt: number }): string {
  const body = canonicalJSON({ count: h.count, lastSeq: h.lastSeq, lastHash: h.lastHash, writtenAt: h.writtenAt });
  return createHmac('sha256', key).update(MAC_CONTEXT).update(body).digest('hex');
}

/** Reads and authenticates the head file. A missing key with a present head file is reported as invalid. */
export async function readHead(dataDir: string, key: Buffer | null): Promise<HeadRead> {
  let text: string;
  try {
    text = await readFile(headPath(dataDir), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { status: 'missing' };
    return { status: 'invalid', reason: `cannot read ${HEAD_FILE}: ${errorMessage(err)}` };
  }
  let v: Partial<Record<keyof SignedHead, unknown>>;
  try {
    v = JSON.parse(text) as typeof v;
  } catch {
    return { status: 'invalid', reason: `${HEAD_FILE} is not JSON` };
  }
  const { count, lastSeq, lastHash, writtenAt, mac } = v;
  if (
    !Number.isSafeInteger(count) || !Number.isSafeInteger(lastSeq) || !Number.isSafeInteger(writtenAt) ||
    typeof lastHash !== 'string' || typeof mac !== 'string'
  ) {
    return { status: 'invalid', reason: `${HEAD_FILE} is missing fields` };
  }
  const head = { count: count as number, lastSeq: lastSeq as number, lastHash, writtenAt: writtenAt as number, mac };
  if (key === null) return { status: 'invalid', reason: `${KEY_FILE} is missing, so ${HEAD_FILE} cannot be authenticated` };
  const want = Buffer.from(macOf(key, head), 'hex');
  const got = Buffer.from(mac, 'hex');
  if (got.length !== want.length || !timingSafeEqual(got, want)) {
    return { status: 'invalid', reason: `${HEAD_FILE} signature does not match (file edited, or ${KEY_FILE} replaced)` };
  }
  return { status: 'ok', head };
}

/** Write to a temp file, fsync, rename over the target: readers see the old or the new file, never half of one. */
async function writeAtomic(path: string, content: string, beforeRename?: () => Promise<boolean>): Promise<boolean> {
  const tmp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  const fh = await open(tmp, 'wx', 0o600);
  try {
    await fh.writeFile(content);
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    if (beforeRename && !(await beforeRename())) {
      await unlink(tmp);
      return false;
    }
    await rename(tmp, path);
    return true;
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
}

/** Signs and writes `head` (atomically). Returns what was written. */
export async function writeHead(dataDir: string, key: Buffer, head: AuditHead, now: number = Date.now()): Promise<SignedHead> {
  const signed: SignedHead = { count: head.count, lastSeq: head.lastSeq, lastHash: head.lastHash, writtenAt: now, mac: '' };
  const out: SignedHead = { ...signed, mac: macOf(key, signed) };
  await writeAtomic(headPath(dataDir), `${JSON.stringify(out)}\n`);
  return out;
}

/**
 * The writer's step: move the signed head up to the store's current head.
 * Before extending it, check that the store still contains the old head's
 * last event unchanged: if not, the log was truncated or rewritten under a
 * running writer, and the head (the evidence) is left as it is while the
 * caller fails closed. The existing head is read before the store's, so a
 * head written meanwhile by another process can only be newer, never make
 * ours look like a regression; and a head that another process moved past
 * ours between our read and our rename is not overwritten.
 */
export async function sealHead(store: Store, dataDir: string, key: Buffer, now: number = Date.now()): Promise<SignedHead> {
  const before = await readHead(dataDir, key);
  const head = await store.auditHead();
  if (before.status === 'ok') {
    const old = before.head;
    if (old.lastSeq === head.lastSeq && old.lastHash === head.lastHash && old.count === head.count) return old;
    if (old.lastSeq > head.lastSeq) {
      throw new WicketError(
        'WICKET_ERR_AUDIT_TAMPERED',
        `audit log ends at event #${head.lastSeq} but the signed head says #${old.lastSeq}: events were deleted`,
      );
    }
    if (old.lastSeq > 0) {
      const [row] = await store.readAudit(old.lastSeq - 1, 1);
      if (row === undefined || row.seq !== old.lastSeq || row.hash !== old.lastHash) {
        throw new WicketError('WICKET_ERR_AUDIT_TAMPERED', `audit event #${old.lastSeq} no longer matches the signed head`);
      }
    }
  }
  const signed: SignedHead = { count: head.count, lastSeq: head.lastSeq, lastHash: head.lastHash, writtenAt: now, mac: '' };
  const out: SignedHead = { ...signed, mac: macOf(key, signed) };
  await writeAtomic(headPath(dataDir), `${JSON.stringify(out)}\n`, async () => {
    const current = await readHead(dataDir, key);
    return !(current.status === 'ok' && current.head.lastSeq > out.lastSeq);
  });
  return out;
}
