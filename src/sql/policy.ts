/**
 * The SQL side of a rule, for every database adapter: `access: read` and
 * `deny_sql` classes decided on an analysis (one analyzer per dialect, the
 * same StatementInfo shapes). The adapters differ only in how a refusal
 * reaches the client (Postgres: an error raised upstream in place; MySQL:
 * an ERR packet from wicket).
 */
import type { DenySqlClass } from '../config/schema.js';
import type { SqlAnalysis } from './types.js';

export interface SqlPolicy {
  readonly access: 'read' | 'write';
  readonly denySql: readonly DenySqlClass[];
  /** Rule label for messages, e.g. developer.allow[1]. */
  readonly rule: string;
}

export type Verdict =
  | { readonly ok: true; readonly statements: readonly string[] }
  | { readonly ok: false; readonly statements: readonly string[]; readonly reason: string };

export const policyActive = (p: SqlPolicy): boolean => p.access === 'read' || p.denySql.length > 0;

/** Splits `sql` into statements for the record (from `a`) and decides whether it may run. */
export function decideSql(sql: string, a: SqlAnalysis, policy: SqlPolicy): Verdict {
  if (!a.ok) {
    // Unparseable SQL only reaches the server when no rule depends on understanding it.
    return policyActive(policy)
      ? { ok: false, statements: [sql], reason: `statement refused by rule ${policy.rule}: it could not be parsed for policy checks (${a.error})` }
      : { ok: true, statements: [sql] };
  }
  const statements = a.statements.length ? a.statements.map((s) => s.text) : [sql];
  if (!policyActive(policy)) return { ok: true, statements };
  for (const s of a.statements) {
    const denied = s.classes.filter((c) => policy.denySql.includes(c));
    if (denied.length) return { ok: false, statements, reason: `statement refused by rule ${policy.rule} (deny_sql: ${denied.join(', ')})` };
    if (policy.access === 'read' && s.readOnlyBypass) {
      return { ok: false, statements, reason: `statement refused by rule ${policy.rule} (access: read): ${s.readOnlyBypass}` };
    }
    if (s.opaque) {
      return { ok: false, statements, reason: `statement refused by rule ${policy.rule}: ${s.kind} bodies cannot be checked against access: ${policy.access}${policy.denySql.length ? ` and deny_sql` : ''}` };
    }
  }
  return { ok: true, statements };
}
