/**
 * One line per decision, for `wicket policy check`, the audit log and the
 * error a denied client sees. One line because it ends up in log files and
 * protocol error messages, where a newline breaks the format.
 */
import { formatDuration } from '../util/duration.js';
import type { Decision } from './types.js';

/** ISO 8601 UTC, without milliseconds when they are zero: 2026-11-27T14:00:00Z. */
export function isoTime(ms: number): string {
  return new Date(ms).toISOString().replace('.000Z', 'Z');
}

/** Lock reasons and names come from people; fold any line breaks they typed. */
function oneLine(s: string): string {
  return s.replace(/\s*[\r\n]+\s*/g, ' ').trimEnd();
}

export function explain(d: Decision): string {
  if (d.type === 'deny') {
    const rule = d.rule === null ? '' : ` [rule ${d.rule.label}]`;
    return oneLine(`deny ${d.user} → ${d.target}: ${d.message}${rule}`);
  }
  let basis = d.grantId === null ? 'standing' : `approval grant ${d.grantId}`;
  if (d.endsAt !== null) basis += ` until ${isoTime(d.endsAt)}`;
  const parts = [d.access, basis];
  if (d.maxDurationMs !== null) parts.push(`max ${formatDuration(d.maxDurationMs)}`);
  if (d.denySql.length > 0) parts.push(`deny_sql ${d.denySql.join(',')}`);
  if (d.forwarding) parts.push('port forwarding');
  if (d.localInfile) parts.push('LOAD DATA LOCAL INFILE');
  return oneLine(`allow ${d.user} → ${d.target} (${d.protocol}, segment ${d.segment}) by ${d.rule.label}: ${parts.join(', ')}`);
}
