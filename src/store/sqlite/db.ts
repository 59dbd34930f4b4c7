/**
 * One better-sqlite3 connection, its PRAGMAs, versioned migrations and a
 * prepared-statement cache shared by the table modules.
 */
import Database from 'better-sqlite3';
import { WicketError, errorMessage } from '../../errors.js';
import { MIGRATIONS } from './migrations.js';

export type Db = Database.Database;
export type Stmt = Database.Statement<unknown[], unknown>;

/**
 * PRAGMAs, with reasons:
 * - journal_mode=WAL: readers (web UI, `wicket audit verify`) never block the
 *   writer and vice versa, and several processes can share the file.
 * - synchronous=FULL: every commit is fsynced to the WAL before it returns, so
 *   an audit batch reported as written survives a power cut (DESIGN §5: the
 *   recording is durable before the session continues). NORMAL would only
 *   fsync at checkpoints: a crash could lose the last commits, i.e. silently
 *   drop audit events the broker believed stored. The writer batches up to
 *   ~1000 events per commit, which keeps FULL's per-commit fsync cheap.
 *   Measured with bench/store.ts: NORMAL gave no significant gain (the cost
 *   is in checkpoints and B-tree work, not the WAL fsync), so FULL it is.
 * - wal_autocheckpoint=4000 pages (16 MB, default 1000): fewer, larger
 *   checkpoints; index pages that every batch touches are copied back once
 *   per checkpoint instead of four times. Measured +5-10% appends/s; the
 *   price is a longer occasional stall (~45 ms vs ~25 ms) in the commit that
 *   happens to run the checkpoint.
 * - busy_timeout=5000: a second process holding the write lock makes us wait,
 *   not fail; appends take milliseconds, so 5 s means something is wrong.
 */
export function openDb(path: string): Db {
  let db: Db;
  try {
    db = new Database(path);
  } catch (err) {
    throw new WicketError('WICKET_ERR_STORE', `store: cannot open ${path}: ${errorMessage(err)}`);
  }
  // busy_timeout first: switching to WAL needs a lock another process may hold.
  db.pragma('busy_timeout = 5000');
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma('wal_autocheckpoint = 4000');
  db.pragma('foreign_keys = ON');
  return db;
}

/** Applies the migrations this database has not seen, each in its own IMMEDIATE transaction. */
export function migrate(db: Db): void {
  db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)');
  const current = (): number =>
    (db.prepare('SELECT coalesce(max(version), 0) AS v FROM schema_migrations').get() as { v: number }).v;
  for (;;) {
    // IMMEDIATE takes the write lock before reading the version, so two
    // processes starting together do not both apply the same step.
    const applied = db
      .transaction((): boolean => {
        const v = current();
        if (v > MIGRATIONS.length) {
          throw new WicketError(
            'WICKET_ERR_STORE',
            `store: database schema version ${v} is newer than this wicket understands (${MIGRATIONS.length}); upgrade wicket`,
          );
        }
        if (v === MIGRATIONS.length) return false;
        db.exec(MIGRATIONS[v]!);
        db.prepare('INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)').run(v + 1, Date.now());
        return true;
      })
      .immediate();
    if (!applied) return;
  }
}

/** Prepared statements by SQL text: prepared once per connection, on first use. */
export class Statements {
  private readonly cache = new Map<string, Stmt>();
  constructor(readonly db: Db) {}

  get(sql: string): Stmt {
    let s = this.cache.get(sql);
    if (s === undefined) {
      s = this.db.prepare(sql);
      this.cache.set(sql, s);
    }
    return s;
  }
}

/** SQLite's constraint errors as the store's stable codes; everything else as WICKET_ERR_STORE. */
export function storeError(err: unknown): WicketError {
  if (err instanceof WicketError) return err;
  const code = (err as { code?: unknown }).code;
  if (code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || code === 'SQLITE_CONSTRAINT_UNIQUE') {
    return new WicketError('WICKET_ERR_CONFLICT', `store: already exists (${errorMessage(err)})`);
  }
  return new WicketError('WICKET_ERR_STORE', `store: ${errorMessage(err)}`, typeof code === 'string' ? { sqlite: code } : undefined);
}

/** JSON columns: parse what the store wrote; a damaged value surfaces as a store error naming the column. */
export function parseJson<T>(text: string, column: string): T {
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new WicketError('WICKET_ERR_STORE', `store: column ${column} holds invalid JSON`);
  }
}
