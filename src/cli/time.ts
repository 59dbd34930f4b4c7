import { WicketError } from '../errors.js';
import { parseDuration } from '../util/duration.js';

/** `--since 1d` (a duration ago) or `--since 2026-11-20` / an ISO timestamp. */
export function parseSince(text: string, now: number): number {
  const d = parseDuration(text);
  if (d !== null) return now - d;
  const t = Date.parse(text);
  if (!Number.isNaN(t)) return t;
  throw new WicketError('WICKET_ERR_USAGE', `--since: expected a duration such as 1d or a date such as 2026-11-20, got "${text}"`);
}

export const isoTime = (ms: number | null): string => (ms === null ? '-' : new Date(ms).toISOString().replace('.000Z', 'Z'));
