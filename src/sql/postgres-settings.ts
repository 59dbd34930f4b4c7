/**
 * What changing a setting does to the session, for SET/RESET statements and
 * set_config() calls found in a Postgres parse tree: may it undo a read-only
 * session, and may it change how the server lexes later statements?
 * Unknown or non-constant values count as unsafe.
 */

/** Postgres parse_bool's spellings of true (unique prefixes of true/yes, "on", "1"). */
const TRUE_BOOL = /^(?:t|tr|tru|true|y|ye|yes|on|1)$/i;

/** Settings whose change undoes a read-only session (GUC names are case-insensitive). */
const READ_ONLY_GUCS: ReadonlySet<string> = new Set(['default_transaction_read_only', 'transaction_read_only']);

/**
 * Settings that change how the server lexes later statements. With
 * standard_conforming_strings off, `'a\' , ' ; DROP TABLE t; --'` is one
 * SELECT to this parser but a DROP to the server; a client_encoding other
 * than UTF8 lets multi-byte characters swallow quotes and backslashes. A
 * statement that may set them to anything else is opaque: what follows can no
 * longer be classified. (The protocol adapter must still check the values the
 * server reports in ParameterStatus: ALTER ROLE ... SET takes effect later.)
 */
const LEXER_GUCS: ReadonlyMap<string, (value: string) => boolean> = new Map([
  ['standard_conforming_strings', (v: string) => TRUE_BOOL.test(v)],
  ['client_encoding', (v: string) => ['utf8', 'unicode'].includes(v.toLowerCase().replace(/[^a-z0-9]/g, ''))],
]);

export type Obj = Record<string, unknown>;

export const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null;

/** The unwrapped fields of a `{ Type: fields }` wrapper of the given type, if it is one. */
export function unwrap(v: unknown, type: string): Obj | null {
  if (!isObj(v)) return null;
  const inner = v[type];
  return isObj(inner) ? inner : null;
}

/**
 * A constant's text as Postgres would see it when assigning it to a setting,
 * through casts and COLLATE; null when the value is not a constant.
 */
export function constText(v: unknown): string | null {
  const cast = unwrap(v, 'TypeCast') ?? unwrap(v, 'CollateClause');
  if (cast) return constText(cast.arg);
  const c = unwrap(v, 'A_Const');
  if (!c || c.isnull === true) return null;
  // Protobuf JSON omits zero/false/empty scalars: `{ ival: {} }` is 0.
  if (isObj(c.sval)) return typeof c.sval.sval === 'string' ? c.sval.sval : '';
  if (isObj(c.ival)) return String(typeof c.ival.ival === 'number' ? c.ival.ival : 0);
  if (isObj(c.boolval)) return c.boolval.boolval === true ? 'true' : 'false';
  if (isObj(c.fval)) return typeof c.fval.fval === 'string' ? c.fval.fval : '0';
  return null;
}

/** True only when the value is a constant that Postgres reads as boolean true. */
export function isConstTrue(v: unknown): boolean {
  const t = constText(v);
  return t !== null && TRUE_BOOL.test(t);
}

/** set_config(setting_name, new_value, is_local) arguments, positional or named. */
function setConfigArgs(call: Obj): Map<string, unknown> {
  const positional = ['setting_name', 'new_value', 'is_local'];
  const byName = new Map<string, unknown>();
  const args = Array.isArray(call.args) ? call.args : [];
  args.forEach((a, i) => {
    const named = unwrap(a, 'NamedArgExpr');
    if (named && typeof named.name === 'string') byName.set(named.name.toLowerCase(), named.arg);
    else if (i < positional.length) byName.set(positional[i] as string, a);
  });
  return byName;
}

function setConfigBypass(call: Obj): string | null {
  const byName = setConfigArgs(call);
  const name = constText(byName.get('setting_name'))?.toLowerCase() ?? null;
  if (name === null) return 'set_config() with a non-constant setting name';
  if (!READ_ONLY_GUCS.has(name)) return null;
  if (isConstTrue(byName.get('new_value'))) return null;
  return `set_config('${name}')`;
}

/** True if a set_config() call may change a LEXER_GUCS setting to an unsafe value. */
function setConfigLexer(call: Obj): boolean {
  const byName = setConfigArgs(call);
  const name = constText(byName.get('setting_name'))?.toLowerCase() ?? null;
  if (name === null) return true;
  const safe = LEXER_GUCS.get(name);
  if (safe === undefined) return false;
  const value = constText(byName.get('new_value'));
  return value === null || !safe(value);
}

/** True if a SET/RESET may change a LEXER_GUCS setting to an unsafe value. */
function variableSetLexer(n: Obj): boolean {
  const name = typeof n.name === 'string' ? n.name.toLowerCase() : '';
  const safe = LEXER_GUCS.get(name);
  if (safe === undefined) return false;
  const args = Array.isArray(n.args) ? n.args : [];
  const value = n.kind === 'VAR_SET_VALUE' && args.length === 1 ? constText(args[0]) : null;
  return value === null || !safe(value);
}

function variableSetBypass(n: Obj): string | null {
  const kind = typeof n.kind === 'string' ? n.kind : '';
  if (kind === 'VAR_RESET_ALL') return 'RESET ALL';
  const name = typeof n.name === 'string' ? n.name.toLowerCase() : '';
  if (!READ_ONLY_GUCS.has(name)) return null; // VAR_SET_MULTI: its DefElems are checked on their own
  if (kind === 'VAR_SET_VALUE') {
    const args = Array.isArray(n.args) ? n.args : [];
    if (args.length === 1 && isConstTrue(args[0])) return null;
    return `SET ${name}`;
  }
  return kind === 'VAR_RESET' ? `RESET ${name}` : `SET ${name}`;
}

/** What a SET/RESET or a set_config() call may do to the session. */
export interface SettingEffect {
  /** Non-null if it may turn a read-only session read-write. */
  readOnlyBypass: string | null;
  /** True if it may change how the server lexes later statements. */
  lexer: boolean;
}

/** A VariableSetStmt (SET, RESET, SET LOCAL, ALTER ... SET, function SET clauses). */
export function variableSetEffect(n: Obj): SettingEffect {
  return { readOnlyBypass: variableSetBypass(n), lexer: variableSetLexer(n) };
}

/** A call to set_config() (any schema). */
export function setConfigEffect(call: Obj): SettingEffect {
  return { readOnlyBypass: setConfigBypass(call), lexer: setConfigLexer(call) };
}
