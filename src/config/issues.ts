/**
 * zod issues -> config problems people can act on. The schema carries its
 * own messages for most fields; `humanErrors` covers the rest (zod's generic
 * "Invalid input: expected string, received number"), and `toProblems`
 * splits unknown keys into one problem per key.
 */
import type { z } from 'zod';
import type { ConfigPath, ConfigProblem } from './locate.js';

type RawIssue = z.core.$ZodRawIssue;
type Issue = z.core.$ZodIssue;

const TYPE_NAMES: Readonly<Record<string, string>> = {
  string: 'a string',
  number: 'a number',
  int: 'a whole number',
  boolean: 'true or false',
  array: 'a list',
  object: 'a mapping',
  record: 'a mapping',
  tuple: 'a list',
  null: 'null',
};

function quoteValue(v: unknown): string {
  return typeof v === 'string' ? v : String(v);
}

function sizeMessage(origin: string, bound: number | bigint, below: boolean, inclusive: boolean): string {
  const n = Number(bound);
  if (origin === 'string') {
    if (below && n === 1) return 'must not be empty';
    return below ? `expected at least ${n} characters` : `expected at most ${n} characters`;
  }
  if (origin === 'array' || origin === 'set') {
    if (below && n === 1) return 'expected at least one item';
    return below ? `expected at least ${n} items` : `expected at most ${n} items`;
  }
  const op = below ? (inclusive ? '>=' : '>') : inclusive ? '<=' : '<';
  return `expected a number ${op} ${n}`;
}

/** Parse-level zod error map: used only where the schema gave no message of its own. */
export function humanErrors(iss: RawIssue): string {
  switch (iss.code) {
    case 'invalid_type':
      return `expected ${TYPE_NAMES[iss.expected] ?? iss.expected}`;
    case 'too_small':
      return sizeMessage(iss.origin, iss.minimum, true, iss.inclusive !== false);
    case 'too_big':
      return sizeMessage(iss.origin, iss.maximum, false, iss.inclusive !== false);
    case 'invalid_value':
      return iss.values.length === 1
        ? `expected ${quoteValue(iss.values[0])}`
        : `expected one of ${iss.values.map(quoteValue).join(', ')}`;
    case 'unrecognized_keys':
      return 'unknown key';
    case 'invalid_format':
      return 'invalid format';
    default:
      return 'invalid value';
  }
}

/**
 * Flattens zod issues. `isMissing(path)` tells whether the key at `path` is
 * absent from the file: any issue there is reported as `required`.
 */
export function toProblems(issues: readonly Issue[], isMissing: (path: ConfigPath) => boolean): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  for (const iss of issues) {
    if (iss.code === 'unrecognized_keys') {
      for (const key of iss.keys) out.push({ path: [...iss.path, key], message: 'unknown key' });
    } else if (iss.path.length > 0 && isMissing(iss.path)) {
      out.push({ path: iss.path, message: 'required' });
    } else {
      out.push({ path: iss.path, message: iss.message });
    }
  }
  return out;
}
