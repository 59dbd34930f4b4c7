/**
 * Postgres SQL analysis on the real Postgres parser (libpg-query, WASM).
 *
 *   await initPostgresParser();          // once, at startup
 *   const a = analyzePostgres(sql);      // sync afterwards
 *
 * One query string may hold several statements (simple Query protocol); each
 * gets a StatementInfo with its own source text, its deny_sql classes,
 * whether it writes, whether it could undo a read-only session, and whether
 * part of it is opaque (DO, function bodies, CALL). See types.ts for the
 * field contracts, postgres-classify.ts for the class definitions and
 * postgres-prefilter.ts for the parser-free fast path.
 *
 * A query the parser rejects yields `{ ok: false, error }` with the parser's
 * message; the caller decides (forward when no deny rule is active, refuse
 * when one is).
 */
import { loadModule, parseSync } from 'libpg-query';
import type { ParseResult } from 'libpg-query';
import { errorMessage, WicketError } from '../errors.js';
import { classifyPostgres } from './postgres-classify.js';
import { pgTrim, prefilterPostgres } from './postgres-prefilter.js';
import { Lru } from './lru.js';
import { EMPTY, UNPARSED_SIMPLE, failure, simple } from './results.js';
import type { AnalyzeOptions, SqlAnalysis, StatementInfo } from './types.js';

/** Entries kept by the result cache. */
export const CACHE_ENTRIES = 10_000;
/** Only queries shorter than this many UTF-8 bytes are cached. */
export const CACHE_MAX_BYTES = 8 * 1024;
/** `kind` of a statement that the pre-filter let through without parsing. */
export { UNPARSED_SIMPLE };

let loading: Promise<void> | null = null;
let ready = false;
const cache = new Lru<string, SqlAnalysis>(CACHE_ENTRIES);

/** Load the parser's WASM module. Idempotent; concurrent calls share one load. */
export function initPostgresParser(): Promise<void> {
  loading ??= loadModule().then(
    () => {
      ready = true;
    },
    (e: unknown) => {
      loading = null; // let a later call retry
      throw new WicketError('WICKET_ERR_INTERNAL', `cannot load the Postgres SQL parser: ${errorMessage(e)}`);
    },
  );
  return loading;
}

/** Drop every cached analysis (tests, or after a parser upgrade). */
export function clearPostgresAnalysisCache(): void {
  cache.clear();
}

/** Number of cached analyses. */
export function postgresAnalysisCacheSize(): number {
  return cache.size;
}


/**
 * Source text of a statement. The parser reports stmt_location/stmt_len in
 * UTF-8 bytes; a missing (0) stmt_len means "to the end of the string".
 */
function slicer(sql: string): (location: number, len: number) => string {
  if (Buffer.byteLength(sql, 'utf8') === sql.length) {
    // ASCII only: bytes and UTF-16 code units coincide.
    return (loc, len) => sql.slice(loc, len > 0 ? loc + len : sql.length);
  }
  const bytes = Buffer.from(sql, 'utf8');
  return (loc, len) => bytes.toString('utf8', loc, len > 0 ? loc + len : bytes.length);
}

function parse(sql: string): SqlAnalysis {
  let tree: ParseResult;
  try {
    tree = parseSync(sql);
  } catch (e) {
    return failure(errorMessage(e));
  }
  const raws = tree.stmts ?? [];
  if (raws.length === 0) return EMPTY;
  const slice = slicer(sql);
  const statements: StatementInfo[] = [];
  for (const raw of raws) {
    const stmt: unknown = raw.stmt;
    const kind = typeof stmt === 'object' && stmt !== null ? (Object.keys(stmt)[0] ?? 'unknown') : 'unknown';
    const c = classifyPostgres(stmt);
    statements.push(
      Object.freeze({
        text: pgTrim(slice(raw.stmt_location ?? 0, raw.stmt_len ?? 0)),
        kind,
        classes: Object.freeze(c.classes),
        writes: c.writes,
        readOnlyBypass: c.readOnlyBypass,
        opaque: c.opaque,
      }),
    );
  }
  return Object.freeze({ ok: true, statements: Object.freeze(statements) });
}

function cacheable(sql: string): boolean {
  // A UTF-16 code unit is at most 3 UTF-8 bytes: skip byteLength for short strings.
  return sql.length * 3 < CACHE_MAX_BYTES || Buffer.byteLength(sql, 'utf8') < CACHE_MAX_BYTES;
}

/**
 * Analyze a query string (one or more statements). Synchronous; requires
 * `await initPostgresParser()` first. Results are frozen and may be shared.
 */
export function analyzePostgres(sql: string, options: AnalyzeOptions = {}): SqlAnalysis {
  if (!ready) {
    throw new WicketError('WICKET_ERR_INTERNAL', 'the Postgres SQL parser is not loaded: await initPostgresParser() first');
  }
  // The parser reads a C string: text after a NUL would never be analyzed.
  if (sql.includes('\0')) return failure('query contains a NUL byte');
  if (options.prefilter !== false) {
    const text = prefilterPostgres(sql);
    if (text !== null) return simple(text);
  }
  // Postgres answers an empty query with EmptyQueryResponse; the parser throws.
  if (pgTrim(sql) === '') return EMPTY;
  const useCache = options.cache !== false && cacheable(sql);
  if (useCache) {
    const hit = cache.get(sql);
    if (hit !== undefined) return hit;
  }
  const result = parse(sql);
  if (useCache) cache.set(sql, result);
  return result;
}

/**
 * Each statement's text, for recording a multi-statement simple Query one
 * statement at a time. A query the parser rejects comes back whole, as one;
 * an empty query gives [].
 */
export function splitStatements(sql: string): string[] {
  const a = analyzePostgres(sql);
  return a.ok ? a.statements.map((s) => s.text) : [sql];
}
