/**
 * The SQL side of a rule: `access: read` (the session runs with
 * default_transaction_read_only, so statements that would undo it are
 * refused) and `deny_sql` classes, decided on the real Postgres parse tree.
 *
 * A refused statement is not forwarded. In its place the upstream runs a DO
 * block that raises SQLSTATE 42501 with wicket's message, so the error
 * reaches the client in the right place in the response stream and the
 * server's transaction state (aborted, skip-to-Sync) matches what the client
 * believes, exactly as if the statement itself had failed.
 */
import { analyzePostgres } from '../../src/sql/postgres.js';
import { decideSql, type SqlPolicy, type Verdict } from '../../src/sql/policy.js';

export { policyActive, type SqlPolicy, type Verdict } from '../../src/sql/policy.js';

/** Splits `sql` into statements for the record and decides whether it may run. */
export function checkSql(sql: string, policy: SqlPolicy): Verdict {
  return decideSql(sql, analyzePostgres(sql), policy);
}

/** A statement that makes the server raise 42501 with `message` (kept to a safe character set). */
export function refusalSql(message: string): string {
  const safe = message.replace(/[^A-Za-z0-9 ._:,()[\]=/-]/g, ' ').slice(0, 900);
  return `DO $wicket$BEGIN RAISE EXCEPTION USING ERRCODE = '42501', MESSAGE = 'wicket: ${safe}'; END$wicket$`;
}

/** The CONTEXT line Postgres adds to an error raised in a DO block. */
const REFUSAL_CONTEXT = 'PL/pgSQL function inline_code_block line 1 at RAISE';

/**
 * Our refusal is raised by a DO block upstream, so its ErrorResponse carries
 * `CONTEXT: PL/pgSQL function inline_code_block ...`, which only confuses
 * the person. Given a whole ErrorResponse frame, returns it without that
 * field when it is a wicket refusal (42501, message `wicket: ...`, that exact
 * context); null otherwise (forward as is).
 */
export function stripRefusalContext(frame: Buffer): Buffer | null {
  if (frame.length < 6 || frame[0] !== 0x45) return null;
  const fields: [number, Buffer][] = [];
  let i = 5;
  while (i < frame.length && frame[i] !== 0) {
    const code = frame[i]!;
    const zero = frame.indexOf(0, i + 1);
    if (zero < 0) return null;
    fields.push([code, frame.subarray(i + 1, zero)]);
    i = zero + 1;
  }
  const get = (c: string): string | undefined => fields.find(([k]) => k === c.charCodeAt(0))?.[1].toString('utf8');
  if (get('C') !== '42501' || !get('M')?.startsWith('wicket: ') || get('W') !== REFUSAL_CONTEXT) return null;
  const kept = fields.filter(([k]) => k !== 0x57 /* W */);
  const len = 4 + kept.reduce((n, [, v]) => n + 2 + v.length, 0) + 1;
  const out = Buffer.alloc(1 + len);
  out[0] = 0x45;
  out.writeInt32BE(len, 1);
  let o = 5;
  for (const [k, v] of kept) {
    out[o++] = k;
    o += v.copy(out, o);
    out[o++] = 0;
  }
  out[o] = 0;
  return out;
}
