/**
 * Classifies one MySQL/MariaDB statement, given its tokens (mysql-lex.ts) and
 * node-sql-parser for the statement types whose classes depend on structure.
 *
 * In MySQL a statement's type is fixed by its first keyword(s), and nothing
 * nests a DELETE or UPDATE except WITH, EXPLAIN / DESCRIBE / ANALYZE,
 * MariaDB's SET STATEMENT ... FOR and PREPARE / EXECUTE IMMEDIATE of a string
 * (all followed here) and stored-program bodies (opaque). So:
 *
 *  - SELECT / WITH / ( / VALUES / TABLE, DELETE and UPDATE are parsed (the
 *    MariaDB grammar first, then the MySQL one, which accepts e.g. DELETE ...
 *    LIMIT). A DELETE or UPDATE falls into its *_without_where class when the
 *    parse tree has no WHERE or no WHERE keyword stands at parenthesis depth 0
 *    (either is enough). If no grammar accepts the statement, analysis fails,
 *    except for a query whose text (strings and comments included) holds none
 *    of MYSQL_PREFILTER_KEYWORDS: nothing in it could fall into a class.
 *    Statements over MYSQL_PARSE_MAX_CHARS are classified from tokens only.
 *  - Statement types whose classes the first keywords decide are classified
 *    from the tokens without the parser: DDL, TRUNCATE, INSERT / REPLACE,
 *    LOAD, LOCK, SET, transaction control, SHOW, the opaque ones...
 *  - Every statement's tokens are scanned for the few constructs that matter
 *    wherever they stand: LOAD_FILE(...), INTO OUTFILE / DUMPFILE, locking
 *    reads, sequence functions (which write), sys_exec / sys_eval.
 *  - A statement type not known here goes to the parser: it fails analysis if
 *    the parser rejects it and is opaque (and assumed to write) if it accepts.
 *
 * The `copy_program` class stands for server-side file and program access in
 * MySQL: SELECT ... INTO OUTFILE / DUMPFILE, LOAD DATA / LOAD XML INFILE
 * without LOCAL (the server reads one of its own files; with LOCAL the client
 * sends the file, which the protocol layer governs), LOAD_FILE(...) anywhere,
 * the lib_mysqludf_sys functions sys_exec / sys_eval, and CREATE / ALTER
 * TABLE with ENGINE=CONNECT (tables over server files) or DATA / INDEX
 * DIRECTORY.
 *
 * `ddl`: CREATE / ALTER / DROP / RENAME of anything, GRANT, REVOKE, and the
 * account changes SET PASSWORD and SET DEFAULT ROLE (not DROP PREPARE).
 * TRUNCATE is `truncate` only. OPTIMIZE / REPAIR / ANALYZE TABLE write but
 * are not ddl.
 *
 * `readOnlyBypass`: SET of transaction_read_only, tx_read_only, read_only or
 * super_read_only to anything but ON / TRUE / 1, in any scope and spelling
 * (SESSION x, @@x, @@session.x, backquoted, SET STATEMENT ... FOR), and a
 * READ WRITE characteristic (SET [GLOBAL | SESSION] TRANSACTION ..., START
 * TRANSACTION ...), also inside PREPARE ... FROM '...'. SET TRANSACTION
 * ISOLATION LEVEL and READ ONLY are not.
 *
 * `opaque`: stored-program definitions and compound statements, CALL,
 * PREPARE of anything but one string literal, EXECUTE, HANDLER, BINLOG,
 * INSTALL / UNINSTALL, statement types only the parser knows, SET forms not
 * known here, and settings that change how later statements are lexed:
 * sql_mode (unless set to a literal list of the modes in SAFE_SQL_MODES) and
 * the client character set (NAMES, CHARACTER SET, CHARSET,
 * character_set_client; unless utf8 / utf8mb3 / utf8mb4).
 */
import type { DenySqlClass } from '../config/schema.js';
import type { LexedStatement, Token } from './mysql-lex.js';
import { stringValue } from './mysql-lex.js';

export interface Verdict {
  kind: string;
  readonly classes: Set<DenySqlClass>;
  writes: boolean;
  readOnlyBypass: string | null;
  opaque: boolean;
}

export type Outcome = Verdict | { readonly error: string };

export interface ClassifyEnv {
  /** The text the tokens point into. */
  readonly sql: string;
  /** Parse one statement's text with node-sql-parser: its tree, or why it failed. */
  parse(text: string): { readonly ast: unknown } | { readonly error: string };
  /** Analyze SQL held in a string literal (PREPARE ... FROM '...'), all statements merged. */
  analyzeText(text: string, depth: number): Outcome;
  /** Nesting of analyzeText calls. */
  readonly depth: number;
  /** The whole text of the statement being classified (comments included). */
  readonly statementText?: string;
}

/** Longer statements are not given to node-sql-parser (see parsed()). */
export const MYSQL_PARSE_MAX_CHARS = 8 * 1024;

/** PREPARE ... FROM '...' nested deeper than this is opaque. */
const MAX_DEPTH = 4;

/**
 * Every word whose presence can give a statement a class, `writes`,
 * `readOnlyBypass` or `opaque`, or a SELECT / EXPLAIN / SHOW a nested
 * statement. A statement without any of them (in strings and comments too)
 * need not be parsed (see prefilterMysql) and may be analyzed without the
 * parser when it is a query the parser rejects.
 */
export const MYSQL_PREFILTER_KEYWORDS: readonly string[] = [
  // writes and the *_without_where classes (EXPLAIN's statement too), locking reads
  'delete', 'update', 'insert', 'replace', 'into', 'share', 'lock',
  // copy_program: server-side files and programs
  'outfile', 'dumpfile', 'load_file', 'load', 'sys_exec', 'sys_eval',
  // truncate, ddl
  'truncate', 'create', 'alter', 'drop', 'rename', 'grant', 'revoke',
  // readOnlyBypass; sql_mode and character sets (opaque)
  'set', 'start', 'transaction', 'begin',
  // opaque
  'call', 'prepare', 'execute', 'handler', 'binlog', 'do', 'install', 'uninstall', 'procedure',
  // builtins that write (MariaDB sequences)
  'nextval', 'setval', 'next',
];

export const MYSQL_KEYWORD_RE = new RegExp(
  `(?<![A-Za-z_])(?:${[...MYSQL_PREFILTER_KEYWORDS].sort((a, b) => b.length - a.length).join('|')})(?![A-Za-z0-9_$])`,
  'i',
);

/** Settings whose change can turn a read-only session read-write. */
export const READ_ONLY_SETTINGS: ReadonlySet<string> = new Set([
  'transaction_read_only', 'tx_read_only', 'read_only', 'super_read_only',
]);

/** Client character sets that lex like UTF-8 (this lexer's assumption). */
const UTF8_CHARSETS: ReadonlySet<string> = new Set(['utf8', 'utf8mb3', 'utf8mb4']);

/**
 * sql_mode flags that leave the lexer alone. ANSI_QUOTES (also in ANSI, DB2,
 * MAXDB, MSSQL, ORACLE, POSTGRESQL), NO_BACKSLASH_ESCAPES, MariaDB's MSSQL
 * ([identifiers]) and ORACLE modes, and any flag not listed make SET sql_mode opaque.
 */
const SAFE_SQL_MODES: ReadonlySet<string> = new Set([
  'ALLOW_INVALID_DATES', 'EMPTY_STRING_IS_NULL', 'ERROR_FOR_DIVISION_BY_ZERO', 'HIGH_NOT_PRECEDENCE',
  'IGNORE_BAD_TABLE_OPTIONS', 'IGNORE_SPACE', 'NO_AUTO_CREATE_USER', 'NO_AUTO_VALUE_ON_ZERO', 'NO_DIR_IN_CREATE',
  'NO_ENGINE_SUBSTITUTION', 'NO_FIELD_OPTIONS', 'NO_KEY_OPTIONS', 'NO_TABLE_OPTIONS', 'NO_UNSIGNED_SUBTRACTION',
  'NO_ZERO_DATE', 'NO_ZERO_IN_DATE', 'ONLY_FULL_GROUP_BY', 'PAD_CHAR_TO_FULL_LENGTH', 'PIPES_AS_CONCAT',
  'REAL_AS_FLOAT', 'SIMULTANEOUS_ASSIGNMENT', 'STRICT_ALL_TABLES', 'STRICT_TRANS_TABLES', 'TIME_ROUND_FRACTIONAL',
  'TIME_TRUNCATE_FRACTIONAL', 'TRADITIONAL',
]);

const SCOPES: ReadonlySet<string> = new Set(['global', 'session', 'local', 'persist', 'persist_only']);
const GLOBAL_SCOPES: ReadonlySet<string> = new Set(['global', 'persist', 'persist_only']);

/** Words that start a statement EXPLAIN / DESCRIBE / ANALYZE / SET STATEMENT may wrap. */
const STARTERS: ReadonlySet<string> = new Set(['select', 'with', 'values', 'table', 'delete', 'update', 'insert', 'replace']);
/** Words that start the body of a statement (after a WITH clause). */
const VERBS: ReadonlySet<string> = new Set(['select', 'values', 'table', 'delete', 'update', 'insert', 'replace']);
const QUERY_FIRST: ReadonlySet<string> = new Set(['select', 'with', 'values', 'table', '(']);
const DDL_FIRST: ReadonlySet<string> = new Set(['create', 'alter', 'drop', 'rename', 'grant', 'revoke']);
/** Statements with nothing to find beyond the token scan. */
const HARMLESS_FIRST: ReadonlySet<string> = new Set([
  'show', 'help', 'use', 'begin', 'commit', 'rollback', 'savepoint', 'release', 'xa', 'unlock', 'deallocate',
  'check', 'checksum', 'do',
]);
/** Tree node types a parsed statement may have at the top. */
const PARSED_TYPES: ReadonlySet<string> = new Set(['select', 'delete', 'update', 'insert', 'replace']);

const RW = 'READ WRITE transaction mode';

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null;

export const word = (t: Token | undefined): string => (t !== undefined && t.type === 'word' ? t.value : '');
/** A word or a backquoted identifier, lower-cased. */
const nameOf = (t: Token | undefined): string => (t !== undefined && (t.type === 'word' || t.type === 'ident') ? t.value : '');
const isOp = (t: Token | undefined, op: string): boolean => t !== undefined && t.type === 'op' && t.value === op;
export const isError = (o: Outcome): o is { readonly error: string } => 'error' in o;

export function verdict(kind: string): Verdict {
  return { kind, classes: new Set(), writes: false, readOnlyBypass: null, opaque: false };
}

/** Fold `from` into `into` (classes, writes, opaque: union; the first bypass reason wins). */
export function merge(into: Verdict, from: Verdict): void {
  for (const c of from.classes) into.classes.add(c);
  into.writes ||= from.writes;
  into.opaque ||= from.opaque;
  into.readOnlyBypass ??= from.readOnlyBypass;
}

/** The statement's text from its first to its last token, comments and all. */
function rawText(sql: string, toks: readonly Token[]): string {
  return sql.slice((toks[0] as Token).start, (toks[toks.length - 1] as Token).end);
}

/**
 * The tokens' text for the parser: original spacing where only whitespace
 * separates two tokens, one space where comments or executable-comment
 * markers (or tokens left out) did.
 */
export function cleanText(sql: string, toks: readonly Token[]): string {
  let out = '';
  let prev = -1;
  for (const t of toks) {
    if (prev >= 0 && t.start > prev) {
      let blank = true;
      for (let i = prev; i < t.start && blank; i++) {
        const c = sql.charCodeAt(i);
        blank = c === 32 || (c >= 9 && c <= 13);
      }
      out += blank ? sql.slice(prev, t.start) : ' ';
    }
    out += sql.slice(t.start, t.end);
    prev = t.end;
  }
  return out;
}

/** Tokens split at commas outside parentheses. */
function splitList(toks: readonly Token[]): Token[][] {
  const items: Token[][] = [[]];
  let depth = 0;
  for (const t of toks) {
    if (t.type === 'op') {
      if (t.value === '(') depth++;
      else if (t.value === ')') depth--;
      else if (t.value === ',' && depth === 0) {
        items.push([]);
        continue;
      }
    }
    (items[items.length - 1] as Token[]).push(t);
  }
  return items;
}

/** Index of the first word `w` outside parentheses at or after `from`, or -1. */
function topLevelWord(toks: readonly Token[], w: string | ReadonlySet<string>, from = 0): number {
  let depth = 0;
  for (let i = 0; i < toks.length; i++) {
    const t = toks[i] as Token;
    if (t.type === 'op') {
      if (t.value === '(') depth++;
      else if (t.value === ')') depth--;
    } else if (i >= from && depth === 0 && t.type === 'word' && (typeof w === 'string' ? t.value === w : w.has(t.value))) {
      return i;
    }
  }
  return -1;
}

const hasSequence = (toks: readonly Token[], a: string, b: string): boolean =>
  toks.some((t, i) => t.type === 'word' && t.value === a && word(toks[i + 1]) === b);

/** The constructs that matter wherever they stand (see the module comment). */
function scanTokens(toks: readonly Token[], v: Verdict, family: 'query' | 'ddl' | 'other'): void {
  for (let i = 0; i < toks.length; i++) {
    const t = toks[i] as Token;
    const name = nameOf(t);
    if (name === '') continue;
    const call = isOp(toks[i + 1], '(');
    const next = word(toks[i + 1]);
    switch (name) {
      case 'load_file':
        if (call) v.classes.add('copy_program');
        break;
      case 'sys_exec':
      case 'sys_eval':
        if (call) {
          v.classes.add('copy_program');
          v.writes = true;
        }
        break;
      case 'nextval':
      case 'setval':
        if (call) v.writes = true;
        break;
    }
    if (t.type !== 'word') continue;
    switch (name) {
      case 'next': // NEXT VALUE FOR s
        if (next === 'value') v.writes = true;
        break;
      case 'into': // SELECT ... INTO @v / OUTFILE / DUMPFILE
        if (family === 'query') v.writes = true;
        if (next === 'outfile' || next === 'dumpfile') {
          v.classes.add('copy_program');
          v.writes = true;
        }
        break;
      case 'for': // FOR UPDATE, FOR SHARE
        if (next === 'update' || next === 'share') v.writes = true;
        break;
      case 'lock': // LOCK IN SHARE MODE
        if (next === 'in' && word(toks[i + 2]) === 'share') v.writes = true;
        break;
      case 'engine': // ENGINE [=] CONNECT
        if (family === 'ddl' && (next === 'connect' || (isOp(toks[i + 1], '=') && word(toks[i + 2]) === 'connect'))) {
          v.classes.add('copy_program');
        }
        break;
      case 'data':
      case 'index': // DATA DIRECTORY = '/path'
        if (family === 'ddl' && next === 'directory') v.classes.add('copy_program');
        break;
    }
  }
}

function functionName(name: unknown): string {
  if (typeof name === 'string') return name.toLowerCase();
  if (isObj(name) && Array.isArray(name.name)) {
    const last: unknown = name.name[name.name.length - 1];
    if (isObj(last) && typeof last.value === 'string') return last.value.toLowerCase();
  }
  return '';
}

/** Walk a node-sql-parser tree (iteratively: a deep tree cannot overflow the stack). */
function walkTree(root: unknown, v: Verdict): void {
  const stack: unknown[] = [root];
  while (stack.length > 0) {
    const x = stack.pop();
    if (Array.isArray(x)) {
      for (const y of x) if (isObj(y)) stack.push(y);
      continue;
    }
    if (!isObj(x)) continue;
    switch (x.type) {
      case 'delete':
        v.writes = true;
        if (x.where == null) v.classes.add('delete_without_where');
        break;
      case 'update':
        if ('set' in x) {
          v.writes = true;
          if (x.where == null) v.classes.add('update_without_where');
        }
        break;
      case 'insert':
      case 'replace':
        v.writes = true;
        break;
      case 'select': {
        const into = x.into;
        if (isObj(into) && (into.keyword != null || into.expr != null)) {
          v.writes = true;
          const kw = typeof into.keyword === 'string' ? into.keyword.toLowerCase() : '';
          if (kw === 'outfile' || kw === 'dumpfile') v.classes.add('copy_program');
        }
        if (x.locking_read != null) v.writes = true;
        break;
      }
      case 'function': {
        const fn = functionName(x.name);
        if (fn === 'load_file') v.classes.add('copy_program');
        else if (fn === 'sys_exec' || fn === 'sys_eval') {
          v.classes.add('copy_program');
          v.writes = true;
        } else if (fn === 'nextval' || fn === 'setval') v.writes = true;
        break;
      }
    }
    for (const k of Object.keys(x)) {
      const c = x[k];
      if (isObj(c)) stack.push(c);
    }
  }
}

/** DELETE / UPDATE (possibly after WITH) without a WHERE keyword outside parentheses. */
function whereCheck(toks: readonly Token[], v: Verdict): void {
  const at = topLevelWord(toks, VERBS);
  const verb = at < 0 ? '' : (toks[at] as Token).value;
  if (verb !== 'delete' && verb !== 'update') return;
  v.writes = true;
  if (topLevelWord(toks, 'where', at + 1) < 0) v.classes.add(verb === 'delete' ? 'delete_without_where' : 'update_without_where');
}

/**
 * Statements whose classes depend on their structure: parsed. node-sql-parser
 * takes ~2 µs per character (half a second for a DELETE with a 10,000-value
 * IN list), so a statement longer than MYSQL_PARSE_MAX_CHARS is classified
 * from its tokens alone: the WHERE test above, the token scan, and INTO
 * marking a query as writing.
 */
function parsed(toks: readonly Token[], env: ClassifyEnv, first: string): Outcome {
  const text = cleanText(env.sql, toks);
  if (text.length > MYSQL_PARSE_MAX_CHARS) {
    const v = verdict(`keyword-${first === '(' ? 'select' : first}`);
    whereCheck(toks, v);
    scanTokens(toks, v, 'query');
    return v;
  }
  const r = env.parse(text);
  if ('error' in r) {
    // A query with no keyword anywhere cannot fall into a class; anything else must parse.
    if (QUERY_FIRST.has(first) && !MYSQL_KEYWORD_RE.test(env.statementText ?? rawText(env.sql, toks))) {
      const v = verdict(`keyword-${first === '(' ? 'select' : first}`);
      scanTokens(toks, v, 'query');
      return v;
    }
    return { error: r.error };
  }
  const top: unknown = Array.isArray(r.ast) ? r.ast[0] : r.ast;
  const type = isObj(top) && typeof top.type === 'string' ? top.type : 'unknown';
  const v = verdict(type);
  if (!PARSED_TYPES.has(type) || (Array.isArray(r.ast) && r.ast.length !== 1)) {
    v.opaque = true;
    v.writes = true;
  }
  walkTree(r.ast, v);
  whereCheck(toks, v);
  scanTokens(toks, v, 'query');
  return v;
}

/** SQL in a string literal (PREPARE ... FROM '...', EXECUTE IMMEDIATE '...'). */
function literal(text: string, kind: string, env: ClassifyEnv): Outcome {
  const v = verdict(kind);
  if (env.depth >= MAX_DEPTH) {
    v.opaque = true;
    v.writes = true;
    return v;
  }
  const inner = env.analyzeText(text, env.depth + 1);
  if (isError(inner)) return { error: `in the statement text of ${kind.replace('keyword-', '').toUpperCase()}: ${inner.error}` };
  merge(v, inner);
  return v;
}

function isTrueLiteral(sql: string, value: readonly Token[]): boolean {
  if (value.length !== 1) return false;
  const t = value[0] as Token;
  const s = t.type === 'word' ? t.value : t.type === 'string' ? stringValue(sql, t).toLowerCase() : '';
  return s === 'on' || s === 'true' || s === '1';
}

function isUtf8(sql: string, t: Token | undefined): boolean {
  if (t === undefined) return false;
  const s = t.type === 'string' ? stringValue(sql, t).toLowerCase() : nameOf(t);
  return UTF8_CHARSETS.has(s);
}

function isSafeSqlMode(sql: string, value: readonly Token[]): boolean {
  if (value.length !== 1) return false;
  const t = value[0] as Token;
  if (t.type === 'word') return SAFE_SQL_MODES.has(t.value.toUpperCase());
  if (t.type !== 'string') return false;
  return stringValue(sql, t)
    .split(',')
    .every((m) => m.trim() === '' || SAFE_SQL_MODES.has(m.trim().toUpperCase()));
}

/** The assignments of SET (or of SET STATEMENT ... FOR). */
function assignments(toks: readonly Token[], v: Verdict, sql: string): void {
  for (const item of splitList(toks)) {
    if (item.length === 0) continue;
    let k = 0;
    if (SCOPES.has(word(item[0])) && item.length > 1 && !isOp(item[1], '=') && !isOp(item[1], ':=')) {
      if (GLOBAL_SCOPES.has(word(item[0]))) v.writes = true;
      k = 1;
    }
    const head = word(item[k]);
    // SET NAMES cs [COLLATE c], SET CHARACTER SET cs, SET CHARSET cs
    let cs = -1;
    if (head === 'names') cs = k + 1;
    else if (head === 'charset') cs = k + 1;
    else if (head === 'character' && word(item[k + 1]) === 'set') cs = k + 2;
    if (cs >= 0) {
      const rest = item.slice(cs + 1);
      const tailOk = rest.length === 0 || (head === 'names' && rest.length === 2 && word(rest[0]) === 'collate');
      if (!isUtf8(sql, item[cs]) || !tailOk) v.opaque = true;
      continue;
    }
    let eq = -1;
    let depth = 0;
    for (let i = k; i < item.length && eq < 0; i++) {
      const t = item[i] as Token;
      if (isOp(t, '(')) depth++;
      else if (isOp(t, ')')) depth--;
      else if (depth === 0 && (isOp(t, '=') || isOp(t, ':='))) eq = i;
    }
    if (eq < 0) {
      v.opaque = true; // a SET form not known here
      continue;
    }
    const target = item.slice(k, eq);
    const value = item.slice(eq + 1);
    // @user_variable = ...
    if (target.length === 2 && isOp(target[0], '@') && (target[1] as Token).type !== 'op') continue;
    for (const t of target) {
      const name = nameOf(t);
      if (GLOBAL_SCOPES.has(name)) v.writes = true;
      if (READ_ONLY_SETTINGS.has(name) && !isTrueLiteral(sql, value)) v.readOnlyBypass ??= `SET ${name}`;
      if (name === 'sql_mode' && !isSafeSqlMode(sql, value)) v.opaque = true;
      if (name === 'character_set_client' && !(value.length === 1 && isUtf8(sql, value[0]))) v.opaque = true;
    }
  }
}

function classifySet(toks: readonly Token[], env: ClassifyEnv): Outcome {
  const v = verdict('keyword-set');
  const w1 = word(toks[1]);
  if (w1 === 'statement') {
    // MariaDB: SET STATEMENT var = value [, ...] FOR statement
    const f = topLevelWord(toks, 'for', 2);
    if (f < 0) return { error: 'SET STATEMENT without FOR' };
    assignments(toks.slice(2, f), v, env.sql);
    scanTokens(toks.slice(0, f), v, 'other');
    const inner = classifyStatement(toks.slice(f + 1), env);
    if (isError(inner)) return inner;
    merge(v, inner);
    return v;
  }
  scanTokens(toks, v, 'other');
  if (w1 === 'password' || (w1 === 'default' && word(toks[2]) === 'role')) {
    // Account changes, as ALTER USER.
    v.classes.add('ddl');
    v.writes = true;
    return v;
  }
  if (w1 === 'role' || w1 === 'resource') return v;
  // SET [GLOBAL | SESSION | LOCAL] TRANSACTION characteristic, ...
  const k = SCOPES.has(w1) && word(toks[2]) === 'transaction' ? 2 : 1;
  if (word(toks[k]) === 'transaction') {
    if (GLOBAL_SCOPES.has(w1)) v.writes = true;
    if (hasSequence(toks, 'read', 'write')) v.readOnlyBypass = RW;
    return v;
  }
  assignments(toks.slice(1), v, env.sql);
  // Any other spelling of a READ WRITE characteristic (e.g. SET @@SESSION.TRANSACTION ...).
  if (hasSequence(toks, 'read', 'write')) v.readOnlyBypass ??= RW;
  return v;
}

/** EXPLAIN / DESCRIBE / ANALYZE: the wrapped statement, if any, is classified as if run. */
function wrapper(toks: readonly Token[], env: ClassifyEnv, kind: string, parens: boolean): Outcome | null {
  let at = -1;
  for (let i = 1; i < toks.length && at < 0; i++) {
    const t = toks[i] as Token;
    if ((t.type === 'word' && STARTERS.has(t.value)) || (parens && isOp(t, '('))) at = i;
  }
  if (at < 0) return null;
  const inner = classifyStatement(toks.slice(at), env);
  if (isError(inner)) return inner;
  const v = verdict(kind);
  merge(v, inner);
  scanTokens(toks.slice(0, at), v, 'other');
  return v;
}

function opaque(kind: string, writes: boolean): Verdict {
  const v = verdict(kind);
  v.opaque = true;
  v.writes = writes;
  return v;
}

/** Classify one statement's tokens (not a compound one). */
export function classifyStatement(toks: readonly Token[], env: ClassifyEnv): Outcome {
  if (toks.length === 0) return verdict('empty');
  const t0 = toks[0] as Token;
  const first = isOp(t0, '(') ? '(' : word(t0);
  const kind = `keyword-${first}`;
  if (QUERY_FIRST.has(first) || first === 'delete' || first === 'update') return parsed(toks, env, first);
  if (DDL_FIRST.has(first)) {
    const v = verdict(kind);
    if (first === 'drop' && word(toks[1]) === 'prepare') return v; // = DEALLOCATE PREPARE
    v.classes.add('ddl');
    v.writes = true;
    scanTokens(toks, v, 'ddl');
    return v;
  }
  if (HARMLESS_FIRST.has(first)) {
    const v = verdict(kind);
    scanTokens(toks, v, 'other');
    return v;
  }
  const second = word(toks[1]);
  switch (first) {
    case 'set':
      return classifySet(toks, env);
    case 'truncate':
    case 'insert':
    case 'replace': {
      const v = verdict(kind);
      if (first === 'truncate') v.classes.add('truncate');
      v.writes = true;
      scanTokens(toks, v, 'other');
      return v;
    }
    case 'explain':
    case 'describe':
    case 'desc': {
      const w = wrapper(toks, env, kind, true);
      if (w !== null) return w;
      const v = verdict(kind); // a table's columns, or FOR CONNECTION n
      scanTokens(toks, v, 'other');
      return v;
    }
    case 'analyze': {
      // MariaDB's ANALYZE [FORMAT=JSON] <statement> runs the statement.
      const w = ['table', 'tables', 'no_write_to_binlog', 'local'].includes(second) ? null : wrapper(toks, env, kind, true);
      if (w !== null) return w;
      const v = verdict(kind);
      v.writes = true; // ANALYZE TABLE stores statistics
      return v;
    }
    case 'optimize':
    case 'repair': {
      const v = verdict(kind);
      v.writes = true;
      return v;
    }
    case 'start':
      if (second === 'transaction') {
        const v = verdict(kind);
        if (hasSequence(toks, 'read', 'write')) v.readOnlyBypass = RW;
        return v;
      }
      break;
    case 'load':
      if (second === 'data' || second === 'xml') {
        const v = verdict(kind);
        v.writes = true;
        const infile = toks.findIndex((t) => t.type === 'word' && t.value === 'infile');
        const local = toks.slice(2, infile < 0 ? toks.length : infile).some((t) => word(t) === 'local');
        if (!local) v.classes.add('copy_program');
        scanTokens(toks, v, 'other');
        return v;
      }
      if (second === 'index') return verdict(kind); // LOAD INDEX INTO CACHE
      break;
    case 'lock':
      if (second === 'table' || second === 'tables') {
        const v = verdict(kind);
        v.writes = toks.some((t) => word(t) === 'write');
        return v;
      }
      if (second === 'instance') return verdict(kind); // LOCK INSTANCE FOR BACKUP
      break;
    case 'prepare':
      // PREPARE name FROM 'text' is analyzed; FROM @var or an expression is opaque.
      if (word(toks[2]) === 'from' && toks.length === 4 && (toks[3] as Token).type === 'string') {
        return literal(stringValue(env.sql, toks[3] as Token), kind, env);
      }
      return opaque(kind, true);
    case 'execute':
      // MariaDB: EXECUTE IMMEDIATE 'text' [USING ...]
      if (second === 'immediate' && toks[2]?.type === 'string' && (toks.length === 3 || word(toks[3]) === 'using')) {
        return literal(stringValue(env.sql, toks[2]), kind, env);
      }
      return opaque(kind, true);
    case 'call':
    case 'binlog':
    case 'install':
    case 'uninstall':
      return opaque(kind, true);
    case 'handler':
      return opaque(kind, false);
  }
  // A statement type not known here: the parser must accept it, and it stays opaque.
  const text = cleanText(env.sql, toks);
  if (text.length > MYSQL_PARSE_MAX_CHARS) return { error: `statement of unknown type too long to parse (${text.length} characters)` };
  const r = env.parse(text);
  if ('error' in r) return { error: r.error };
  const top: unknown = Array.isArray(r.ast) ? r.ast[0] : r.ast;
  return opaque(isObj(top) && typeof top.type === 'string' ? top.type : 'unknown', true);
}

/**
 * Classify a lexed statement. Its tokens from conditional executable comments
 * (`/*!50000 ... *\/`, `/*M! ... *\/`) may or may not run: the statement is
 * classified with and without them, and the verdicts are merged.
 */
export function classifyLexed(st: LexedStatement, env: ClassifyEnv): Outcome {
  const toks = st.tokens;
  if (st.compound) {
    const first = isOp(toks[1], ':') ? 'compound' : word(toks[0]) || 'compound';
    // A stored-program definition or compound statement: its body is not analyzed.
    const v = opaque(`keyword-${first}`, true);
    if (DDL_FIRST.has(first)) v.classes.add('ddl');
    return v;
  }
  const senv: ClassifyEnv = { ...env, statementText: st.text };
  const a = classifyStatement(toks, senv);
  if (isError(a) || !st.conditional) return a;
  const without = toks.filter((t) => !t.cond);
  if (without.length === toks.length || without.length === 0) return a;
  const b = classifyStatement(without, senv);
  if (isError(b)) return b;
  merge(a, b);
  return a;
}
