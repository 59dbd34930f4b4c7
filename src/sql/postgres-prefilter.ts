/**
 * A cheap test that proves a query is one plain statement with nothing for
 * the analyzer to find, so the parser can be skipped (the relay may see
 * 20k statements/s; a parse costs tens of microseconds).
 *
 * A query takes this path only if ALL hold:
 *  1. none of PREFILTER_KEYWORDS occurs as a word, case-insensitively (ASCII
 *     folding, as Postgres folds keywords), anywhere: in strings and comments
 *     too, so a keyword hidden there only costs a parse;
 *  2. it contains no `U&` (a Unicode-escaped identifier such as
 *     U&"\0073et_config" would spell a function name without its letters);
 *  3. its first token, after whitespace and comments, is `(` or one of
 *     FIRST_WORDS (so statement types the parser does not know, from a newer
 *     server, always reach the parser and fail closed);
 *  4. it has no `;`, or exactly one that is the last non-blank character and
 *     no `--` anywhere (so that `;` cannot sit inside a line comment).
 *
 * Keywords are matched as words: not preceded by [A-Za-z_] and not followed
 * by [A-Za-z0-9_$], the characters that would make them part of a longer
 * identifier for Postgres' lexer. Digits and `$` before a keyword do count as
 * a boundary (old servers lexed `select 1into t` as SELECT 1 INTO t).
 *
 * The pre-filter does not check syntax: a keyword-free query with a syntax
 * error takes this path and is left for the server to reject.
 */
import { OPAQUE_FUNCS, WRITING_FUNCS } from './postgres-classify.js';

/** Every word that any class, `writes`, `opaque` or `readOnlyBypass` needs. */
export const PREFILTER_KEYWORDS: readonly string[] = [
  // writes and the *_without_where classes (also inside CTEs, EXPLAIN, PREPARE)
  'delete', 'update', 'insert', 'merge', 'into', 'share', 'lock',
  // truncate, copy_program, COPY FROM
  'truncate', 'copy',
  // ddl (also EXPLAIN ANALYZE CREATE TABLE AS)
  'create', 'alter', 'drop', 'comment', 'grant', 'revoke', 'security', 'rename', 'refresh',
  'import', 'reindex', 'cluster', 'vacuum', 'analyze', 'analyse', 'reassign',
  // readOnlyBypass
  'set', 'reset', 'begin', 'start', 'transaction', 'discard', 'set_config',
  // opaque (statements, and functions that run SQL strings: dblink*)
  'do', 'call', ...OPAQUE_FUNCS,
  // builtins that write (nextval, setval, lo_*)
  ...WRITING_FUNCS,
];

/** First words of statements that can never fall into a class without a keyword above. */
export const FIRST_WORDS: ReadonlySet<string> = new Set([
  'select', 'with', 'values', 'table', 'show', 'explain', 'fetch', 'move', 'close', 'declare',
  'prepare', 'execute', 'deallocate', 'commit', 'end', 'rollback', 'abort', 'savepoint', 'release',
  'listen', 'unlisten', 'notify',
]);

const KEYWORD_RE = new RegExp(
  `(?<![A-Za-z_])(?:${[...PREFILTER_KEYWORDS].sort((a, b) => b.length - a.length).join('|')})(?![A-Za-z0-9_$])|u&`,
  'i',
);

/** Postgres' whitespace (scan.l `space`); String.prototype.trim would also eat U+00A0 etc. */
const isPgSpace = (c: number): boolean => c === 32 || (c >= 9 && c <= 13);

/** Trim Postgres whitespace only. */
export function pgTrim(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && isPgSpace(s.charCodeAt(a))) a++;
  while (b > a && isPgSpace(s.charCodeAt(b - 1))) b--;
  return a === 0 && b === s.length ? s : s.slice(a, b);
}

/** Index of the first token after whitespace and comments; -1 on an unterminated comment. */
function skipSpaceAndComments(sql: string, i: number): number {
  const n = sql.length;
  while (i < n) {
    const c = sql.charCodeAt(i);
    if (isPgSpace(c)) {
      i++;
    } else if (c === 45 /* - */ && sql.charCodeAt(i + 1) === 45) {
      while (i < n && sql[i] !== '\n' && sql[i] !== '\r') i++;
    } else if (c === 47 /* / */ && sql.charCodeAt(i + 1) === 42 /* * */) {
      // Postgres block comments nest.
      let depth = 1;
      i += 2;
      while (depth > 0) {
        if (i >= n) return -1;
        if (sql[i] === '/' && sql[i + 1] === '*') { depth++; i += 2; }
        else if (sql[i] === '*' && sql[i + 1] === '/') { depth--; i += 2; }
        else i++;
      }
    } else {
      return i;
    }
  }
  return i;
}

const WORD_CHAR = /[A-Za-z0-9_$]/;

/**
 * The statement's text if `sql` is one statement the analyzer would find
 * nothing in (see the module comment), else null: parse it.
 */
export function prefilterPostgres(sql: string): string | null {
  if (KEYWORD_RE.test(sql)) return null;
  const start = skipSpaceAndComments(sql, 0);
  if (start < 0 || start >= sql.length) return null;
  if (sql[start] !== '(') {
    let e = start;
    while (e < sql.length && WORD_CHAR.test(sql[e] as string)) e++;
    if (!FIRST_WORDS.has(sql.slice(start, e).toLowerCase())) return null;
  }
  let end = sql.length;
  const semi = sql.indexOf(';', start);
  if (semi >= 0) {
    if (sql.includes('--')) return null;
    for (let i = semi + 1; i < sql.length; i++) if (!isPgSpace(sql.charCodeAt(i))) return null;
    end = semi;
  }
  const text = pgTrim(sql.slice(start, end));
  return text === '' ? null : text;
}
