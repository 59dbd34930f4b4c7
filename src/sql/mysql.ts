/**
 * MySQL / MariaDB SQL analysis: our own lexer (mysql-lex.ts) splits the query
 * and expands executable comments exactly where the server would, then each
 * statement is classified (mysql-classify.ts), with node-sql-parser (its
 * MariaDB grammar, then its MySQL one) for the statement types whose classes
 * depend on structure (SELECT, DELETE, UPDATE).
 *
 *   const a = analyzeMysql(sql);   // synchronous; the parser loads on first use
 *
 * One COM_QUERY may hold several statements (CLIENT_MULTI_STATEMENTS); each
 * gets a StatementInfo (types.ts). A query that cannot be analyzed safely
 * yields `{ ok: false, error }`: the caller refuses it when a policy is
 * active and forwards it otherwise.
 *
 * The analysis assumes the server lexes as with the default sql_mode and a
 * UTF-8 client character set; statements that change either (SET sql_mode
 * with ANSI_QUOTES or NO_BACKSLASH_ESCAPES..., SET NAMES sjis...) are opaque.
 * A server configured with such a global sql_mode is not detected here.
 *
 * A parse costs ~0.3-0.8 ms, so results are cached and a cheap pre-filter
 * (prefilterMysql) lets plain queries through without lexing or parsing.
 */
import { createRequire } from 'node:module';
import { DENY_SQL_CLASSES } from '../config/schema.js';
import { Lru } from './lru.js';
import { EMPTY, NO_CLASSES, failure, simple } from './results.js';
import type { ClassifyEnv, Outcome } from './mysql-classify.js';
import { classifyLexed, isError, merge, MYSQL_KEYWORD_RE, verdict } from './mysql-classify.js';
import { dashDashComment, isMysqlSpace, isWordChar, lexMysql, mysqlTrim } from './mysql-lex.js';
import type { AnalyzeOptions, SqlAnalysis, StatementInfo } from './types.js';

/** Entries kept by the result cache. */
export const MYSQL_CACHE_ENTRIES = 10_000;
/** Only queries shorter than this many UTF-8 bytes are cached. */
export const MYSQL_CACHE_MAX_BYTES = 8 * 1024;
/** `kind` of a statement that the pre-filter let through without parsing. */

const cache = new Lru<string, SqlAnalysis>(MYSQL_CACHE_ENTRIES);

/** Drop every cached analysis (tests, or after a parser upgrade). */
export function clearMysqlAnalysisCache(): void {
  cache.clear();
}

/** Number of cached analyses. */
export function mysqlAnalysisCacheSize(): number {
  return cache.size;
}

// ---------------------------------------------------------------------------
// node-sql-parser, loaded on first use (half a megabyte of JS per grammar)

type NspModule = typeof import('node-sql-parser/build/mariadb.js');
type NspParser = InstanceType<NspModule['Parser']>;

let parsers: { readonly mariadb: NspParser; readonly mysql: NspParser } | null = null;

function loadParsers(): { readonly mariadb: NspParser; readonly mysql: NspParser } {
  if (parsers === null) {
    const require = createRequire(import.meta.url);
    const mariadb = require('node-sql-parser/build/mariadb.js') as NspModule;
    const mysql = require('node-sql-parser/build/mysql.js') as NspModule;
    parsers = { mariadb: new mariadb.Parser(), mysql: new mysql.Parser() };
  }
  return parsers;
}

/** A short message for a parse failure (the parser's own lists every token it expected). */
function parseError(e: unknown, text: string): string {
  if (typeof e === 'object' && e !== null && 'location' in e) {
    const loc = (e as { location?: { start?: { offset?: unknown } } }).location;
    const at = loc?.start?.offset;
    if (typeof at === 'number') {
      const near = /^\S{1,40}/.exec(text.slice(at))?.[0];
      return near === undefined ? 'syntax error at end of input' : `syntax error at or near "${near}"`;
    }
  }
  return e instanceof Error ? e.message.slice(0, 200) : String(e);
}

function parse(text: string): { readonly ast: unknown } | { readonly error: string } {
  const p = loadParsers();
  try {
    return { ast: p.mariadb.astify(text, { database: 'MariaDB' }) };
  } catch (e) {
    try {
      return { ast: p.mysql.astify(text, { database: 'MySQL' }) };
    } catch {
      return { error: parseError(e, text) };
    }
  }
}

// ---------------------------------------------------------------------------
// pre-filter

/** First words of statements that can fall into no class without a keyword of MYSQL_PREFILTER_KEYWORDS. */
export const MYSQL_FIRST_WORDS: ReadonlySet<string> = new Set([
  'select', 'with', 'values', 'table', 'show', 'describe', 'desc', 'explain', 'help', 'use',
  'commit', 'rollback', 'savepoint', 'release',
]);

const EXECUTABLE_COMMENT_RE = /\/\*[Mm]?!/;

/** Index of the first token after whitespace and comments; -1 on an unterminated comment. */
function skipSpaceAndComments(sql: string, i: number): number {
  const n = sql.length;
  while (i < n) {
    const c = sql.charCodeAt(i);
    if (isMysqlSpace(c)) {
      i++;
    } else if (c === 35 /* # */ || (c === 45 /* - */ && sql.charCodeAt(i + 1) === 45 && dashDashComment(sql, i) === true)) {
      while (i < n && sql.charCodeAt(i) !== 10) i++;
    } else if (c === 47 /* / */ && sql.charCodeAt(i + 1) === 42 /* * */) {
      const e = sql.indexOf('*/', i + 2);
      if (e < 0) return -1;
      i = e + 2;
    } else {
      return i;
    }
  }
  return i;
}

/**
 * A cheap test that proves a query is one plain statement with nothing for
 * the analyzer to find, so lexing and parsing can be skipped. It holds if:
 *  1. no word of MYSQL_PREFILTER_KEYWORDS occurs anywhere, case-insensitively
 *     (in strings and comments too: a keyword there only costs a parse);
 *  2. there is no executable comment opener (`/*!`, `/*M!`), no NUL and no DEL;
 *  3. the first token, after whitespace and comments, is `(` or one of
 *     MYSQL_FIRST_WORDS;
 *  4. there is no `;`, or exactly one as the last non-blank character and no
 *     `#` or `--` anywhere (so that it cannot sit inside a line comment).
 * Returns the statement's text, or null: analyze it fully. Syntax is not
 * checked: a keyword-free query with an error is left for the server.
 */
export function prefilterMysql(sql: string): string | null {
  if (MYSQL_KEYWORD_RE.test(sql) || EXECUTABLE_COMMENT_RE.test(sql)) return null;
  if (sql.includes('\0') || sql.includes('\x7f')) return null;
  const start = skipSpaceAndComments(sql, 0);
  if (start < 0 || start >= sql.length) return null;
  if (sql[start] !== '(') {
    let e = start;
    while (e < sql.length && isWordChar(sql.charCodeAt(e))) e++;
    if (!MYSQL_FIRST_WORDS.has(sql.slice(start, e).toLowerCase())) return null;
  }
  let end = sql.length;
  const semi = sql.indexOf(';', start);
  if (semi >= 0) {
    if (sql.includes('--') || sql.includes('#')) return null;
    for (let i = semi + 1; i < sql.length; i++) if (!isMysqlSpace(sql.charCodeAt(i))) return null;
    end = semi;
  }
  const text = mysqlTrim(sql.slice(start, end));
  return text === '' ? null : text;
}

// ---------------------------------------------------------------------------
// analysis


type Analyzed = { readonly ok: true; readonly statements: StatementInfo[] } | { readonly ok: false; readonly error: string };

function analyzeStatements(sql: string, depth: number): Analyzed {
  const lexed = lexMysql(sql);
  if (!lexed.ok) return lexed;
  const env: ClassifyEnv = { sql, parse, analyzeText, depth };
  const statements: StatementInfo[] = [];
  for (const st of lexed.statements) {
    const v = classifyLexed(st, env);
    if (isError(v)) return { ok: false, error: v.error };
    statements.push(
      Object.freeze({
        text: st.text,
        kind: v.kind,
        classes: v.classes.size === 0 ? NO_CLASSES : Object.freeze(DENY_SQL_CLASSES.filter((c) => v.classes.has(c))),
        writes: v.writes,
        readOnlyBypass: v.readOnlyBypass,
        opaque: v.opaque,
      }),
    );
  }
  return { ok: true, statements };
}

/** All statements of `text` merged into one verdict (SQL inside PREPARE ... FROM '...'). */
function analyzeText(text: string, depth: number): Outcome {
  const a = analyzeStatements(text, depth);
  if (!a.ok) return { error: a.error };
  const v = verdict('text');
  for (const s of a.statements) {
    merge(v, {
      kind: s.kind,
      classes: new Set(s.classes),
      writes: s.writes,
      readOnlyBypass: s.readOnlyBypass,
      opaque: s.opaque,
    });
  }
  return v;
}

function cacheable(sql: string): boolean {
  // A UTF-16 code unit is at most 3 UTF-8 bytes: skip byteLength for short strings.
  return sql.length * 3 < MYSQL_CACHE_MAX_BYTES || Buffer.byteLength(sql, 'utf8') < MYSQL_CACHE_MAX_BYTES;
}

/**
 * Analyze a MySQL / MariaDB query string (one or more statements).
 * Synchronous. Results are deeply frozen and may be shared.
 */
export function analyzeMysql(sql: string, opts: AnalyzeOptions = {}): SqlAnalysis {
  if (opts.prefilter !== false) {
    const text = prefilterMysql(sql);
    if (text !== null) return simple(text);
  }
  const useCache = opts.cache !== false && cacheable(sql);
  if (useCache) {
    const hit = cache.get(sql);
    if (hit !== undefined) return hit;
  }
  const a = analyzeStatements(sql, 0);
  const result = !a.ok ? failure(a.error) : a.statements.length === 0 ? EMPTY : Object.freeze({ ok: true as const, statements: Object.freeze(a.statements) });
  if (useCache) cache.set(sql, result);
  return result;
}

/**
 * Each statement's text (trimmed, without its ';'), for recording a
 * multi-statement query one statement at a time; empty statements are
 * dropped, so a query of comments only gives []. Splitting needs no parser;
 * a query the lexer refuses (see lexMysql) comes back whole, as one.
 */
export function splitMysqlStatements(sql: string): string[] {
  const lexed = lexMysql(sql);
  if (lexed.ok) return lexed.statements.map((s) => s.text);
  const whole = mysqlTrim(sql);
  return whole === '' ? [] : [whole];
}
