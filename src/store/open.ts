/** Picks the Store implementation from the config's `store:` setting (DESIGN.md §3). */
import { chmodSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { WicketError } from '../errors.js';
import { SqliteStore } from './sqlite/store.js';
import type { Store } from './types.js';

export const SQLITE_FILE = 'wicket.db';

/**
 * 'sqlite' opens (creating) `${dataDir}/wicket.db` and brings its schema up
 * to date. The data dir is created 0700 and a new database file 0600: it
 * holds password hashes and the audit log.
 */
export async function openStore(storeSetting: string, dataDir: string): Promise<Store> {
  const setting = storeSetting.trim();
  if (setting === 'sqlite') {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    const path = join(dataDir, SQLITE_FILE);
    const created = !existsSync(path);
    const store = new SqliteStore(path);
    try {
      if (created) chmodSync(path, 0o600);
      await store.migrate();
    } catch (err) {
      await store.close();
      throw err;
    }
    return store;
  }
  if (/^postgres(ql)?:\/\//i.test(setting)) {
    throw new WicketError(
      'WICKET_ERR_STORE',
      'store: postgres:// (cluster mode) is not available in this version; use store: sqlite',
    );
  }
  throw new WicketError('WICKET_ERR_STORE', `store: expected "sqlite" or a postgres:// URL, got "${storeSetting}"`);
}
