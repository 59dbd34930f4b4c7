import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { openStore } from '../../../src/store/open.js';
import type { SessionRecord, Store } from '../../../src/store/types.js';

const dirs: string[] = [];
const stores: Store[] = [];
afterAll(async () => {
  for (const s of stores) await s.close().catch(() => undefined);
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

export function tempDir(prefix = 'wicket-store-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(dir);
  return dir;
}

/** A migrated SqliteStore on a real file in a fresh temp data dir. */
export async function freshStore(): Promise<{ store: Store; dir: string; dbPath: string }> {
  const dir = tempDir();
  const store = await openStore('sqlite', dir);
  stores.push(store);
  return { store, dir, dbPath: join(dir, 'wicket.db') };
}

export function session(id: string, over: Partial<SessionRecord> = {}): SessionRecord {
  return {
    id,
    user: 'alice',
    target: 'orders-db',
    segment: 'payments-prod',
    protocol: 'postgres',
    clientAddr: '127.0.0.1:50000',
    brokerId: 'b_test',
    rule: 'developer.allow[1]',
    access: 'read',
    grantId: null,
    startedAt: 1_000,
    endedAt: null,
    status: 'live',
    endReason: null,
    recordingPath: null,
    recordingSha256: null,
    recordingBytes: null,
    meta: { database: 'orders' },
    ...over,
  };
}
