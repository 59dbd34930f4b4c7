/**
 * Dialect-neutral results of SQL analysis. The Postgres analyzer
 * (postgres.ts) fills these from the real Postgres parse tree; a MySQL
 * analyzer will fill the same shapes from its own parser.
 *
 * Results may be shared between callers (they are cached), so they are
 * deeply frozen: treat them as read-only.
 */
import type { DenySqlClass } from '../config/schema.js';

export type { DenySqlClass };

export interface StatementInfo {
  /**
   * The statement's own source text, trimmed: from its first token to the
   * end of its last one (comments after the last token included), without
   * the terminating ';'. Leading comments are not part of it.
   */
  readonly text: string;
  /**
   * Parse-tree node of the statement (Postgres: 'SelectStmt', 'DeleteStmt',
   * 'VariableSetStmt', ...), or 'unparsed-simple' when the cheap pre-filter
   * proved the statement cannot fall into any class and skipped the parser.
   */
  readonly kind: string;
  /** The deny_sql classes the statement falls into, in DENY_SQL_CLASSES order. */
  readonly classes: readonly DenySqlClass[];
  /**
   * True if the statement modifies data or schema as far as the text shows:
   * INSERT/UPDATE/DELETE/MERGE anywhere (data-modifying CTEs too), SELECT
   * INTO, COPY FROM, COPY ... PROGRAM, row locks (FOR UPDATE/SHARE), LOCK stronger than ROW
   * EXCLUSIVE, DDL (not VACUUM/ANALYZE/CLUSTER/REINDEX), known writing
   * builtins (nextval, setval, lo_*), and DO/CALL/dblink/unknown statement
   * types (assumed). Conservative: EXPLAIN DELETE and PREPARE ... AS DELETE count.
   * Side effects of user functions called from a SELECT are invisible here.
   */
  readonly writes: boolean;
  /**
   * Non-null (a short reason) if the statement could turn a read-only
   * session read-write: SET/RESET of default_transaction_read_only or
   * transaction_read_only, RESET ALL, DISCARD ALL, READ WRITE transaction
   * modes, set_config() on those settings anywhere in the tree, and the same
   * inside ALTER ROLE/DATABASE/SYSTEM/FUNCTION ... SET.
   */
  readonly readOnlyBypass: string | null;
  /**
   * True when part of the statement's effect is code the analyzer cannot see:
   * DO blocks, CREATE FUNCTION/PROCEDURE bodies, CALL, dblink-style calls
   * that run SQL strings elsewhere, and statement types the analyzer does not
   * know; also SET/RESET/set_config() that may change
   * standard_conforming_strings (to off) or client_encoding (to non-UTF8),
   * after which the server lexes later statements differently from this
   * parser. Policy may refuse opaque statements while a deny_sql rule is
   * active, since their classes cannot be known.
   */
  readonly opaque: boolean;
}

export type SqlAnalysis =
  | { readonly ok: true; readonly statements: readonly StatementInfo[] }
  | { readonly ok: false; readonly error: string };

export interface AnalyzeOptions {
  /** Use the keyword pre-filter (default true). Tests turn it off to compare paths. */
  readonly prefilter?: boolean;
  /** Use and fill the result cache (default true). */
  readonly cache?: boolean;
}
