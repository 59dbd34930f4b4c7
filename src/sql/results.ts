/**
 * Frozen analysis results both dialects build the same way (results are
 * cached and shared between callers, so they are immutable).
 */
import type { SqlAnalysis, StatementInfo } from './types.js';

/** `kind` of a statement the cheap pre-filter proved harmless without running the parser. */
export const UNPARSED_SIMPLE = 'unparsed-simple';

export const NO_CLASSES: readonly never[] = Object.freeze([]);
export const EMPTY: SqlAnalysis = Object.freeze({ ok: true, statements: Object.freeze([]) });

export function failure(error: string): SqlAnalysis {
  return Object.freeze({ ok: false, error });
}

/** One statement the pre-filter passed: no classes, no writes, nothing opaque. */
export function simple(text: string): SqlAnalysis {
  const info: StatementInfo = Object.freeze({
    text,
    kind: UNPARSED_SIMPLE,
    classes: NO_CLASSES,
    writes: false,
    readOnlyBypass: null,
    opaque: false,
  });
  return Object.freeze({ ok: true, statements: Object.freeze([info]) });
}
