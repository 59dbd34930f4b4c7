/**
 * A lexer for MySQL/MariaDB query text that follows the server's own lexer
 * (sql_lex.cc) wherever the boundaries of strings, identifiers, comments and
 * statements are concerned, with the default sql_mode and a UTF-8 client
 * character set (statements that change either are `opaque`):
 *
 *  - '...' and "..." are strings; a backslash escapes the next character and a
 *    doubled quote stands for one quote.
 *  - `...` is an identifier; a doubled backtick stands for one; no escapes.
 *  - `#` and `-- ` comments run to the next '\n' (`--` only starts a comment
 *    when followed by whitespace, a control character or the end);
 *    `/* ... *\/` comments end at the first `*\/` and do not nest. Optimizer
 *    hints `/*+ ... *\/` are comments too.
 *  - Executable comments `/*! ... *\/`, `/*!NNNNN ... *\/`, `/*M! ... *\/` and
 *    `/*M!NNNNNN ... *\/` are run by the server: their content is lexed as
 *    ordinary text, the markers (and version digits) are dropped. A versioned
 *    or `M!` comment is conditional (it runs on some servers only): its tokens
 *    are marked `cond` so the analyzer can also look at the statement without
 *    them. Wherever the executed and the plain-comment reading of such a
 *    comment would disagree on where it ends (a string, comment or nested
 *    comment inside it, a `*\/` eaten by a `#` comment...), or a conditional
 *    one holds a `;`, lexing fails: no single reading would be safe.
 *  - Every `;` outside strings, identifiers and comments ends a statement,
 *    except that a stored-program definition (CREATE PROCEDURE / FUNCTION /
 *    TRIGGER / EVENT / PACKAGE, ALTER EVENT) and a top-level compound statement
 *    (BEGIN NOT ATOMIC, IF, CASE, LOOP, REPEAT, WHILE, FOR, a label) may hold
 *    `;` in its body, which only the server's grammar can delimit: such a
 *    statement runs to the end of the input as one `compound` statement.
 *
 * A NUL byte fails lexing (the server's lexer treats it as the end in places).
 */

export type TokenType = 'word' | 'ident' | 'string' | 'op';

export interface Token {
  readonly type: TokenType;
  /** Offsets in the lexed text, `end` exclusive. */
  readonly start: number;
  readonly end: number;
  /**
   * word: lower-cased (keywords, names, numbers); ident: the backquoted name
   * unquoted, lower-cased; op: the operator text; string: '' (see stringValue).
   */
  readonly value: string;
  /** Inside a conditional (versioned or M!) executable comment. */
  readonly cond: boolean;
}

export interface LexedStatement {
  /** Source text, trimmed, without the terminating ';' (see StatementInfo.text). */
  readonly text: string;
  /** The statement's tokens with executable comments expanded. */
  readonly tokens: readonly Token[];
  /** A stored-program body or compound statement, merged up to the end of the input. */
  readonly compound: boolean;
  /** Some tokens come from conditional executable comments. */
  readonly conditional: boolean;
}

export type Lexed =
  | { readonly ok: true; readonly statements: readonly LexedStatement[] }
  | { readonly ok: false; readonly error: string };

/** MySQL whitespace (my_isspace): \t \n \v \f \r and space. */
export const isMysqlSpace = (c: number): boolean => c === 32 || (c >= 9 && c <= 13);

/** Characters of unquoted identifiers, keywords and numbers (any non-ASCII character included). */
export const isWordChar = (c: number): boolean =>
  (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95 || c === 36 || c >= 128;

const isDigit = (c: number): boolean => c >= 48 && c <= 57;

/** Trim MySQL whitespace only. */
export function mysqlTrim(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && isMysqlSpace(s.charCodeAt(a))) a++;
  while (b > a && isMysqlSpace(s.charCodeAt(b - 1))) b--;
  return a === 0 && b === s.length ? s : s.slice(a, b);
}

/**
 * Whether `--` at `i` starts a comment: the next character is whitespace or a
 * control character (my_isspace || my_iscntrl), or the input ends there.
 * Returns null for DEL (0x7f), whose class depends on the character set.
 */
export function dashDashComment(sql: string, i: number): boolean | null {
  if (i + 2 >= sql.length) return true;
  const c = sql.charCodeAt(i + 2);
  if (c === 127) return null;
  return c <= 32;
}

/** Multi-character operators, longest first. */
const OPS = ['<=>', '->>', ':=', '<=', '>=', '<>', '!=', '<<', '>>', '&&', '||', '->', '@@'];
const OP_STARTS: ReadonlySet<number> = new Set(OPS.map((o) => o.charCodeAt(0)));

const ESCAPES: Record<string, string> = { '0': '\0', b: '\b', n: '\n', r: '\r', t: '\t', Z: '\x1a', '%': '\\%', _: '\\_' };

/** The value of a string token: escapes resolved as MySQL does (\% and \_ keep their backslash). */
export function stringValue(sql: string, t: Token): string {
  const q = sql[t.start] as string;
  let out = '';
  let i = t.start + 1;
  let from = i;
  const end = t.end;
  while (i < end) {
    const ch = sql[i];
    if (ch === '\\' && i + 1 < end) {
      out += sql.slice(from, i);
      const e = sql[i + 1] as string;
      out += ESCAPES[e] ?? e;
      i += 2;
      from = i;
    } else if (ch === q) {
      out += sql.slice(from, i);
      if (sql[i + 1] === q && i + 1 < end) {
        out += q;
        i += 2;
        from = i;
      } else {
        return out; // closing quote
      }
    } else {
      i++;
    }
  }
  return out + sql.slice(from, end);
}

interface ExecComment {
  readonly start: number;
  /** End of the opening marker and version digits. */
  readonly openEnd: number;
  /** Start of the closing `*\/`. */
  readonly closeStart: number;
  readonly end: number;
}

interface Scan {
  readonly tokens: Token[];
  readonly execs: ExecComment[];
  /** Some tokens are `cond`. */
  readonly conditional: boolean;
}

function failure(error: string): Lexed {
  return { ok: false, error };
}

function scan(sql: string): Scan | string {
  const n = sql.length;
  const tokens: Token[] = [];
  const execs: ExecComment[] = [];
  let exec: { start: number; openEnd: number; plainEnd: number } | null = null;
  let i = 0;
  let conditional = false;
  /** `cond` of the tokens being read (inside a conditional executable comment). */
  let cond = false;
  while (i < n) {
    const c = sql.charCodeAt(i);
    if (isMysqlSpace(c)) {
      i++;
      continue;
    }
    if (exec !== null && c === 42 /* * */ && sql.charCodeAt(i + 1) === 47 /* / */) {
      if (exec.plainEnd !== i) return 'an executable comment would end elsewhere if read as a plain comment';
      execs.push({ start: exec.start, openEnd: exec.openEnd, closeStart: i, end: i + 2 });
      exec = null;
      cond = false;
      i += 2;
      continue;
    }
    if (c === 47 /* / */ && sql.charCodeAt(i + 1) === 42 /* * */) {
      // Inside an executable comment the server reads any comment as a plain
      // one, ending at the first */; read as a plain comment, the outer one
      // would end there too: the two readings cannot agree.
      if (exec !== null) return 'a comment inside an executable comment';
      const c2 = sql.charCodeAt(i + 2);
      const maria = (c2 === 77 || c2 === 109) /* M m */ && sql.charCodeAt(i + 3) === 33; /* ! */
      if (c2 === 33 || maria) {
        let j = i + (maria ? 4 : 3);
        let d = j;
        while (d < n && isDigit(sql.charCodeAt(d))) d++;
        cond = maria;
        if (d - j >= 5) {
          // MySQL reads a 5-digit version after /*!, MariaDB 6 after /*M!;
          // with more digits, or a word glued to them, servers read it differently.
          if (d - j > (maria ? 6 : 5) || (d < n && isWordChar(sql.charCodeAt(d)))) {
            return 'an executable comment with an ambiguous version number';
          }
          cond = true;
          j = d;
        }
        exec = { start: i, openEnd: j, plainEnd: sql.indexOf('*/', i + 2) };
        conditional ||= cond;
        i = j;
        continue;
      }
      const e = sql.indexOf('*/', i + 2);
      i = e < 0 ? n : e + 2;
      continue;
    }
    if (c === 35 /* # */ || (c === 45 /* - */ && sql.charCodeAt(i + 1) === 45)) {
      if (c === 45) {
        const dd = dashDashComment(sql, i);
        if (dd === null) return "'--' followed by a DEL character";
        if (!dd) {
          tokens.push({ type: 'op', start: i, end: i + 1, value: '-', cond });
          i++;
          continue;
        }
      }
      const e = sql.indexOf('\n', i);
      i = e < 0 ? n : e;
      continue;
    }
    if (c === 39 /* ' */ || c === 34 /* " */) {
      let j = i + 1;
      while (j < n) {
        const ch = sql.charCodeAt(j);
        if (ch === 92 /* \ */) j += 2;
        else if (ch === c) {
          if (sql.charCodeAt(j + 1) === c) j += 2;
          else break;
        } else j++;
      }
      const end = Math.min(j + 1, n); // unterminated: to the end
      tokens.push({ type: 'string', start: i, end, value: '', cond });
      i = end;
      continue;
    }
    if (c === 96 /* ` */) {
      let j = i + 1;
      while (j < n) {
        if (sql.charCodeAt(j) === 96) {
          if (sql.charCodeAt(j + 1) === 96) j += 2;
          else break;
        } else j++;
      }
      const end = Math.min(j + 1, n);
      tokens.push({ type: 'ident', start: i, end, value: sql.slice(i + 1, j).replaceAll('``', '`').toLowerCase(), cond });
      i = end;
      continue;
    }
    if (isWordChar(c)) {
      let j = i + 1;
      while (j < n && isWordChar(sql.charCodeAt(j))) j++;
      tokens.push({ type: 'word', start: i, end: j, value: sql.slice(i, j).toLowerCase(), cond });
      i = j;
      continue;
    }
    if (c === 59 /* ; */ && cond) return "a versioned executable comment holds a ';'";
    const op = (OP_STARTS.has(c) && OPS.find((o) => sql.startsWith(o, i))) || (sql[i] as string);
    tokens.push({ type: 'op', start: i, end: i + op.length, value: op, cond });
    i += op.length;
  }
  if (exec !== null) return 'an unterminated executable comment';
  return { tokens, execs, conditional };
}

const word = (t: Token | undefined): string => (t !== undefined && t.type === 'word' ? t.value : '');

/** Object words after CREATE whose definitions have a body that may hold ';'. */
const BODY_OBJECTS: ReadonlySet<string> = new Set(['procedure', 'function', 'trigger', 'event', 'package']);
/** Object words after CREATE / ALTER whose definitions have no such body. */
const PLAIN_OBJECTS: ReadonlySet<string> = new Set([
  'table', 'view', 'index', 'unique', 'fulltext', 'spatial', 'database', 'schema', 'user', 'role', 'server',
  'tablespace', 'logfile', 'sequence', 'temporary', 'resource', 'instance', 'system', 'online', 'offline', 'ignore',
]);
/** First words of compound statements MariaDB runs outside stored programs. */
const COMPOUND_FIRST: ReadonlySet<string> = new Set(['if', 'case', 'loop', 'repeat', 'while', 'for', 'declare']);

/**
 * Whether a statement (its tokens) may continue past a ';': a stored-program
 * definition or a compound statement. Errs towards true.
 */
export function isCompound(toks: readonly Token[]): boolean {
  const first = word(toks[0]);
  if (first === 'begin') return word(toks[1]) === 'not';
  if (COMPOUND_FIRST.has(first)) return true;
  // `label: BEGIN ...`
  if ((toks[0]?.type === 'word' || toks[0]?.type === 'ident') && toks[1]?.type === 'op' && toks[1].value === ':') return true;
  if (first !== 'create' && first !== 'alter') return false;
  // CREATE [OR REPLACE] [ALGORITHM = x] [DEFINER = user] [SQL SECURITY x] [AGGREGATE] <object>:
  // the first object word decides (a definer spelled like one errs towards a body).
  for (let k = 1; k < toks.length && k < 40; k++) {
    const w = word(toks[k]);
    if (BODY_OBJECTS.has(w)) return first === 'create' || w === 'event' || w === 'package';
    if (PLAIN_OBJECTS.has(w)) return false;
  }
  return false;
}

/**
 * The statement's text: from its first token (or the executable comment that
 * holds it, if that comment lies within the statement) to its end. Markers of
 * executable comments that straddle the statement's boundary are blanked, so
 * `SELECT 1 /*!; DROP TABLE t *\/` gives `SELECT 1` and `DROP TABLE t`.
 */
function statementText(sql: string, s: number, regionStart: number, regionEnd: number, execs: readonly ExecComment[]): string {
  const blanks: [number, number][] = [];
  for (const x of execs) {
    if (x.end <= s || x.start >= regionEnd) continue;
    if (x.start < s && x.start >= regionStart && x.end <= regionEnd) {
      s = x.start; // the whole comment is part of this statement
      continue;
    }
    if (x.start >= s && x.end > regionEnd) blanks.push([x.start, x.openEnd]);
    else if (x.start < s && x.end <= regionEnd) blanks.push([x.closeStart, x.end]);
  }
  if (blanks.length === 0) return mysqlTrim(sql.slice(s, regionEnd));
  blanks.sort((a, b) => a[0] - b[0]);
  let out = '';
  let at = s;
  for (const [a, b] of blanks) {
    out += sql.slice(at, a) + ' '.repeat(b - a);
    at = b;
  }
  return mysqlTrim(out + sql.slice(at, regionEnd));
}

/** Split and tokenize a query string; see the module comment. */
export function lexMysql(sql: string): Lexed {
  if (sql.includes('\0')) return failure('query contains a NUL byte');
  const r = scan(sql);
  if (typeof r === 'string') return failure(`cannot split the query: ${r}`);
  const { tokens, execs, conditional } = r;
  const statements: LexedStatement[] = [];
  let regionStart = 0;
  let from = 0;
  const flush = (to: number, regionEnd: number): boolean => {
    if (to > from) {
      const toks = tokens.slice(from, to);
      const cond = conditional && toks.some((t) => t.cond);
      if (isCompound(toks) || (cond && isCompound(toks.filter((t) => !t.cond)))) {
        // Runs to the end of the input; its text ends before a final ';'.
        let last = tokens.length;
        while (last > from && (tokens[last - 1] as Token).type === 'op' && (tokens[last - 1] as Token).value === ';') last--;
        const end = last < tokens.length ? (tokens[last] as Token).start : sql.length;
        statements.push({
          text: statementText(sql, (toks[0] as Token).start, regionStart, end, execs),
          tokens: tokens.slice(from, last).filter((t) => !(t.type === 'op' && t.value === ';')),
          compound: true,
          conditional: cond,
        });
        return true;
      }
      statements.push({
        text: statementText(sql, (toks[0] as Token).start, regionStart, regionEnd, execs),
        tokens: toks,
        compound: false,
        conditional: cond,
      });
    }
    return false;
  };
  for (let k = 0; k < tokens.length; k++) {
    const t = tokens[k] as Token;
    if (t.type !== 'op' || t.value !== ';') continue;
    if (flush(k, t.start)) return { ok: true, statements };
    regionStart = t.end;
    from = k + 1;
  }
  flush(tokens.length, sql.length);
  return { ok: true, statements };
}
