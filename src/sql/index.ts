/** SQL analysis for the database adapters; dialect-neutral types, one analyzer per dialect. */
export type { AnalyzeOptions, DenySqlClass, SqlAnalysis, StatementInfo } from './types.js';
export {
  analyzePostgres,
  clearPostgresAnalysisCache,
  initPostgresParser,
  postgresAnalysisCacheSize,
  splitStatements,
  CACHE_ENTRIES,
  CACHE_MAX_BYTES,
  UNPARSED_SIMPLE,
} from './postgres.js';
export { DDL_NODES, OPAQUE_FUNCS, WRITING_FUNCS } from './postgres-classify.js';
export { FIRST_WORDS, PREFILTER_KEYWORDS, prefilterPostgres } from './postgres-prefilter.js';
export { analyzeMysql, clearMysqlAnalysisCache, splitMysqlStatements } from './mysql.js';
export { decideSql, policyActive, type SqlPolicy, type Verdict } from './policy.js';
