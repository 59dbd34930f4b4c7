/** Recordings: asciicast v2 for terminal sessions, audit rows and query lists for database sessions. */
export {
  CastLineParser,
  encodeEvent,
  encodeHeader,
  jsonString,
  parseCast,
  type CastEvent,
  type CastEventCode,
  type CastHeader,
  type CastLine,
  type CastParserOptions,
  type ParsedCast,
} from './asciicast.js';
export {
  CastWriter,
  type CastDigest,
  type CastWriterHeader,
  type CastWriterOptions,
  type CastWriterState,
} from './terminal.js';
export { castToText, playCast, readCast, sha256File, type PlayOptions, type PlayResult, type ReadCastResult } from './reader.js';
export { recordingPath, resolveRecordingPath } from './paths.js';
export { DurableAppender, type AppenderOptions, type AppenderState } from './appender.js';
export {
  MAX_PARAM_BYTES,
  MAX_PARAMS,
  MAX_SHORT_BYTES,
  MAX_SQL_BYTES,
  commandAudit,
  fileAudit,
  formatQueryList,
  forwardAudit,
  queryAudit,
  refusedAudit,
  sessionEventToAudit,
  truncateText,
  type AuditContext,
  type QueryListEntry,
  type QueryListOptions,
  type RecordingAuditInput,
  type Truncated,
} from './queries.js';
