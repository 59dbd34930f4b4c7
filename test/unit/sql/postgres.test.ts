import { beforeAll, describe, expect, it } from 'vitest';
import {
  analyzePostgres,
  clearPostgresAnalysisCache,
  initPostgresParser,
  postgresAnalysisCacheSize,
  prefilterPostgres,
  splitStatements,
} from '../../../src/sql/index.js';
import type { DenySqlClass, SqlAnalysis, StatementInfo } from '../../../src/sql/index.js';

beforeAll(async () => {
  await initPostgresParser();
  await initPostgresParser(); // idempotent
});

const PARSER = { prefilter: false, cache: false } as const;

function one(a: SqlAnalysis): StatementInfo {
  if (!a.ok) throw new Error(`parse failed: ${a.error}`);
  expect(a.statements).toHaveLength(1);
  return a.statements[0] as StatementInfo;
}

const DWW: DenySqlClass = 'delete_without_where';
const UWW: DenySqlClass = 'update_without_where';
const RW = 'READ WRITE transaction mode';
const SET_DTRO = 'SET default_transaction_read_only';
const SET_TRO = 'SET transaction_read_only';

/** [sql, classes, writes, readOnlyBypass, opaque, kind (parser path)] — asserted exactly. */
type Case = [string, DenySqlClass[], boolean, string | null, boolean, string?];

const cases: Case[] = [
  // DELETE / UPDATE with and without WHERE
  ['DELETE FROM t', [DWW], true, null, false, 'DeleteStmt'],
  ['DELETE FROM t WHERE id = 1', [], true, null, false, 'DeleteStmt'],
  ['delete from only t using u where t.id = u.id', [], true, null, false],
  ['DELETE FROM t WHERE CURRENT OF c', [], true, null, false],
  ['UPDATE t SET a = 1', [UWW], true, null, false, 'UpdateStmt'],
  ['UPDATE t SET a = 1 WHERE id = 2', [], true, null, false],
  ['UPDATE t SET a = u.a FROM u', [UWW], true, null, false],
  ['UPDATE t SET a = u.a FROM u WHERE t.id = u.id', [], true, null, false],
  ['UPDATE t SET a = 1 WHERE CURRENT OF c', [], true, null, false],
  // data-modifying CTEs, nested
  ['WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d', [DWW], true, null, false, 'SelectStmt'],
  ['WITH d AS (DELETE FROM t WHERE x RETURNING *) SELECT * FROM d', [], true, null, false, 'SelectStmt'],
  ['INSERT INTO archive WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d', [DWW], true, null, false, 'InsertStmt'],
  ['WITH d AS (DELETE FROM t RETURNING *) INSERT INTO archive SELECT * FROM d', [DWW], true, null, false, 'InsertStmt'],
  ['WITH a AS (WITH b AS (UPDATE t SET x = 1 RETURNING *) SELECT * FROM b) SELECT * FROM a', [UWW], true, null, false],
  ['SELECT * FROM (WITH u AS (UPDATE t SET x = 1 RETURNING *) SELECT * FROM u) s', [UWW], true, null, false],
  ['WITH d AS (DELETE FROM t), u AS (UPDATE v SET a = 1) SELECT 1', [DWW, UWW], true, null, false],
  // INSERT, MERGE
  ['INSERT INTO t VALUES (1)', [], true, null, false, 'InsertStmt'],
  ['INSERT INTO t SELECT * FROM u ON CONFLICT (id) DO UPDATE SET a = excluded.a', [], true, null, false],
  ['MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE WHEN NOT MATCHED THEN INSERT VALUES (s.id)', [], true, null, false, 'MergeStmt'],
  ['MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN UPDATE SET a = s.a', [], true, null, false],
  // TRUNCATE
  ['TRUNCATE t', ['truncate'], true, null, false, 'TruncateStmt'],
  ['TRUNCATE ONLY a, b', ['truncate'], true, null, false],
  ['truncate table a restart identity cascade', ['truncate'], true, null, false],
  // COPY
  ["COPY t TO PROGRAM 'gzip > /tmp/t.gz'", ['copy_program'], true, null, false, 'CopyStmt'],
  ["COPY t FROM PROGRAM 'curl http://x'", ['copy_program'], true, null, false],
  ["COPY (SELECT 1) TO PROGRAM 'cat'", ['copy_program'], true, null, false],
  ['COPY t TO STDOUT', [], false, null, false],
  ['COPY (SELECT * FROM t) TO STDOUT WITH (FORMAT csv)', [], false, null, false],
  ['COPY t FROM STDIN', [], true, null, false],
  // DDL
  ['CREATE TABLE t (id int)', ['ddl'], true, null, false, 'CreateStmt'],
  ['ALTER TABLE t ADD COLUMN c int', ['ddl'], true, null, false, 'AlterTableStmt'],
  ['DROP TABLE t', ['ddl'], true, null, false, 'DropStmt'],
  ['DROP INDEX CONCURRENTLY IF EXISTS i', ['ddl'], true, null, false],
  ["COMMENT ON TABLE t IS 'x'", ['ddl'], true, null, false, 'CommentStmt'],
  ['GRANT SELECT ON t TO bob', ['ddl'], true, null, false, 'GrantStmt'],
  ['REVOKE ALL ON t FROM bob', ['ddl'], true, null, false, 'GrantStmt'],
  ['GRANT admin TO bob', ['ddl'], true, null, false, 'GrantRoleStmt'],
  ['CREATE TABLE t2 AS SELECT * FROM t', ['ddl'], true, null, false, 'CreateTableAsStmt'],
  ['SELECT * INTO t2 FROM t', ['ddl'], true, null, false, 'SelectStmt'],
  ['CREATE MATERIALIZED VIEW mv AS SELECT 1', ['ddl'], true, null, false],
  ['REFRESH MATERIALIZED VIEW mv', ['ddl'], true, null, false, 'RefreshMatViewStmt'],
  ['ALTER TABLE t RENAME TO u', ['ddl'], true, null, false, 'RenameStmt'],
  ["SECURITY LABEL ON TABLE t IS 'x'", ['ddl'], true, null, false, 'SecLabelStmt'],
  ['IMPORT FOREIGN SCHEMA s FROM SERVER f INTO local', ['ddl'], true, null, false],
  ['REINDEX TABLE t', ['ddl'], false, null, false],
  ['VACUUM FULL t', ['ddl'], false, null, false],
  ['CLUSTER t USING i', ['ddl'], false, null, false],
  ['CREATE INDEX i ON t (a)', ['ddl'], true, null, false, 'IndexStmt'],
  ['EXPLAIN ANALYZE CREATE TABLE t2 AS SELECT 1', ['ddl'], true, null, false, 'ExplainStmt'],
  ['CREATE RULE r AS ON INSERT TO t DO ALSO DELETE FROM u', ['ddl', DWW], true, null, false, 'RuleStmt'],
  ['ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO bob', ['ddl'], true, null, false],
  ['CREATE SCHEMA s CREATE TABLE x (a int)', ['ddl'], true, null, false],
  ['ALTER ROLE bob SET search_path = x', ['ddl'], true, null, false],
  // keywords inside strings and comments are not statements
  ['SELECT $$DROP TABLE x$$', [], false, null, false, 'SelectStmt'],
  ['SELECT $tag$ UPDATE t SET a = 1 $tag$', [], false, null, false],
  ['SELECT 1 -- DROP TABLE x', [], false, null, false],
  ['SELECT 1 /* DELETE FROM t */', [], false, null, false],
  ["SELECT E'it\\'s; DELETE FROM t'", [], false, null, false],
  ["SELECT 'a''b; TRUNCATE t'", [], false, null, false],
  ['SELECT "delete" FROM "truncate"', [], false, null, false],
  // read-only bypass
  ['SET default_transaction_read_only = off', [], false, SET_DTRO, false, 'VariableSetStmt'],
  ['SET SESSION default_transaction_read_only TO false', [], false, SET_DTRO, false],
  ['SET LOCAL transaction_read_only = off', [], false, SET_TRO, false],
  ['SET default_transaction_read_only = 0', [], false, SET_DTRO, false],
  ['SET default_transaction_read_only TO DEFAULT', [], false, SET_DTRO, false],
  ['SET default_transaction_read_only = on', [], false, null, false],
  ["SET transaction_read_only = 'true'", [], false, null, false],
  ['RESET default_transaction_read_only', [], false, 'RESET default_transaction_read_only', false],
  ['RESET ALL', [], false, 'RESET ALL', false],
  ['RESET search_path', [], false, null, false],
  ['SET search_path = x', [], false, null, false],
  ['SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE', [], false, RW, false],
  ['SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY', [], false, null, false],
  ['BEGIN READ WRITE', [], false, RW, false, 'TransactionStmt'],
  ['START TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ WRITE', [], false, RW, false],
  ['BEGIN', [], false, null, false, 'TransactionStmt'],
  ['BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY', [], false, null, false],
  ['SET TRANSACTION READ WRITE', [], false, RW, false],
  ["select set_config('default_transaction_read_only', 'off', false)", [], false, "set_config('default_transaction_read_only')", false],
  ["SELECT * FROM (SELECT pg_catalog.set_config('transaction_read_only','off',true)) s", [], false, "set_config('transaction_read_only')", false],
  ["WITH c AS (SELECT set_config('transaction_read_only', 'off', true)) SELECT * FROM c", [], false, "set_config('transaction_read_only')", false],
  ["SELECT lower(set_config('default_transaction_read_only', 'off', false))", [], false, "set_config('default_transaction_read_only')", false],
  ["SELECT * FROM set_config('transaction_read_only', 'off', false)", [], false, "set_config('transaction_read_only')", false],
  ["SELECT set_config(new_value => 'off', setting_name => 'transaction_read_only'::text, is_local => false)", [], false, "set_config('transaction_read_only')", false],
  ["SELECT U&\"\\0073et_config\"('transaction_read_only', 'off', false)", [], false, "set_config('transaction_read_only')", false],
  ["SELECT set_config(name, 'off', false) FROM (VALUES ('transaction_read_only')) v(name)", [], false, 'set_config() with a non-constant setting name', true],
  ["SELECT set_config('search_path', 'x', false)", [], false, null, false],
  ["SELECT set_config('Default_Transaction_Read_Only', 'on', false)", [], false, null, false],
  ["PREPARE p AS SELECT set_config('transaction_read_only', 'off', false)", [], false, "set_config('transaction_read_only')", false],
  ['ALTER ROLE bob SET default_transaction_read_only = off', ['ddl'], true, SET_DTRO, false, 'AlterRoleSetStmt'],
  ['ALTER DATABASE d SET default_transaction_read_only TO false', ['ddl'], true, SET_DTRO, false],
  ['ALTER SYSTEM SET default_transaction_read_only = off', ['ddl'], true, SET_DTRO, false],
  ['ALTER ROLE bob RESET ALL', ['ddl'], true, 'RESET ALL', false],
  ["CREATE FUNCTION f() RETURNS int LANGUAGE sql SET default_transaction_read_only = off AS 'select 1'", ['ddl'], true, SET_DTRO, true],
  ['DISCARD ALL', [], false, 'DISCARD ALL', false, 'DiscardStmt'],
  ['DISCARD PLANS', [], false, null, false],
  ["UPDATE pg_settings SET setting = 'off' WHERE name = 'default_transaction_read_only'", [], true, 'UPDATE pg_settings', false],
  // settings that change how later statements are lexed make a statement opaque
  ['SET standard_conforming_strings = off', [], false, null, true],
  ['SET standard_conforming_strings = on', [], false, null, false],
  ['RESET standard_conforming_strings', [], false, null, true],
  ["SELECT set_config('standard_conforming_strings', 'off', false)", [], false, null, true],
  ["SET client_encoding = 'SJIS'", [], false, null, true],
  ["SET NAMES 'UTF8'", [], false, null, false],
  ["SET client_encoding TO 'utf-8'", [], false, null, false],
  ["SELECT 'a\\' , ' ; DROP TABLE t; --'", [], false, null, false],
  // opaque
  ['DO $$BEGIN DELETE FROM t; END$$', [], true, null, true, 'DoStmt'],
  ['DO LANGUAGE plpgsql $$ BEGIN NULL; END $$', [], true, null, true],
  ['CALL p()', [], true, null, true, 'CallStmt'],
  ['CREATE FUNCTION f() RETURNS int AS $$ DELETE FROM t; SELECT 1 $$ LANGUAGE sql', ['ddl'], true, null, true, 'CreateFunctionStmt'],
  ['CREATE PROCEDURE p() BEGIN ATOMIC DELETE FROM t; END', ['ddl', DWW], true, null, true],
  ["SELECT dblink_exec('dbname=orders', 'TRUNCATE t')", [], true, null, true],
  ["SELECT * FROM dblink('dbname=orders', 'SELECT 1') AS r(x int)", [], true, null, true],
  // other writes and reads
  ['SELECT * FROM t FOR UPDATE', [], true, null, false],
  ['SELECT * FROM t FOR KEY SHARE', [], true, null, false],
  ["SELECT nextval('s')", [], true, null, false],
  ['LOCK TABLE t', [], true, null, false, 'LockStmt'],
  ['LOCK TABLE t IN ACCESS SHARE MODE', [], false, null, false],
  ['EXPLAIN DELETE FROM t', [DWW], true, null, false, 'ExplainStmt'],
  ['PREPARE p AS DELETE FROM t', [DWW], true, null, false, 'PrepareStmt'],
  ['SELECT abalance FROM pgbench_accounts WHERE aid = 12345', [], false, null, false, 'SelectStmt'],
  ['SHOW search_path', [], false, null, false, 'VariableShowStmt'],
  ["NOTIFY ch, 'x'", [], false, null, false],
  ['EXECUTE p(1)', [], false, null, false, 'ExecuteStmt'],
];

describe('analyzePostgres: one statement', () => {
  it('has at least 60 cases', () => expect(cases.length).toBeGreaterThanOrEqual(60));

  for (const [sql, classes, writes, bypass, opaque, kind] of cases) {
    it(sql, () => {
      const parsed = one(analyzePostgres(sql, PARSER));
      expect({ classes: parsed.classes, writes: parsed.writes, readOnlyBypass: parsed.readOnlyBypass, opaque: parsed.opaque })
        .toEqual({ classes, writes, readOnlyBypass: bypass, opaque });
      expect(parsed.text).toBe(sql);
      if (kind !== undefined) expect(parsed.kind).toBe(kind);
      // The default path (pre-filter + cache) agrees on everything but `kind`.
      const fast = one(analyzePostgres(sql));
      expect({ ...fast, kind: null }).toEqual({ ...parsed, kind: null });
    });
  }
});

describe('analyzePostgres: several statements', () => {
  it('splits and classifies each statement', () => {
    const a = analyzePostgres('SELECT 1; DELETE FROM t; UPDATE t SET a = 1 WHERE b');
    expect(a.ok).toBe(true);
    if (!a.ok) return;
    expect(a.statements.map((s) => [s.text, s.kind, s.classes, s.writes])).toEqual([
      ['SELECT 1', 'SelectStmt', [], false],
      ['DELETE FROM t', 'DeleteStmt', [DWW], true],
      ['UPDATE t SET a = 1 WHERE b', 'UpdateStmt', [], true],
    ]);
  });

  it('slices by UTF-8 byte offsets after non-ASCII text', () => {
    expect(splitStatements("SELECT 'héllo wörld ✓'; SELECT '日本語' ; DELETE FROM t")).toEqual([
      "SELECT 'héllo wörld ✓'",
      "SELECT '日本語'",
      'DELETE FROM t',
    ]);
    expect(splitStatements("SELECT '😀', 'ü';DROP TABLE \"tä\";")).toEqual(["SELECT '😀', 'ü'", 'DROP TABLE "tä"']);
    const a = analyzePostgres("SELECT 'ø'; DROP TABLE x");
    expect(a.ok && a.statements.map((s) => s.classes)).toEqual([[], ['ddl']]);
  });

  it('leaves leading comments out and keeps trailing ones', () => {
    expect(splitStatements('/* a */ SELECT 1 /* b */; -- c\n DROP TABLE t;')).toEqual(['SELECT 1 /* b */', 'DROP TABLE t']);
    expect(splitStatements('SELECT 1 -- done')).toEqual(['SELECT 1 -- done']);
  });

  it('does not split inside strings', () => {
    expect(splitStatements("SELECT E'a\\'; b'; SELECT $$;$$; SELECT 'x;y'")).toEqual([
      "SELECT E'a\\'; b'",
      'SELECT $$;$$',
      "SELECT 'x;y'",
    ]);
  });

  it('skips empty statements', () => {
    expect(splitStatements('; ; SELECT 1;;')).toEqual(['SELECT 1']);
    expect(splitStatements('')).toEqual([]);
    expect(analyzePostgres('  \n ')).toEqual({ ok: true, statements: [] });
    expect(analyzePostgres('/* only a comment */')).toEqual({ ok: true, statements: [] });
  });
});

describe('analyzePostgres: failures', () => {
  const bad: [string, string][] = [
    ['SELEC 1', 'syntax error at or near "SELEC"'],
    ['SELECT 1; DELETE FROM', 'syntax error at end of input'],
    ['SELECT 1into t', 'trailing junk after numeric literal at or near "1into"'],
    ['DROP TABLE', 'syntax error at end of input'],
    ['SELECT 1\0; DROP TABLE t', 'query contains a NUL byte'],
  ];
  for (const [sql, error] of bad) {
    it(JSON.stringify(sql), () => {
      expect(analyzePostgres(sql)).toEqual({ ok: false, error });
      expect(analyzePostgres(sql, PARSER)).toEqual({ ok: false, error });
    });
  }

  it('the pre-filter does not check syntax: keyword-free errors are left to the server', () => {
    const sql = "SELECT 'unterminated";
    expect(analyzePostgres(sql, PARSER)).toEqual({ ok: false, error: 'unterminated quoted string at or near "\'unterminated"' });
    expect(one(analyzePostgres(sql))).toMatchObject({ kind: 'unparsed-simple', classes: [], writes: false });
  });

  it('splitStatements returns an unparseable query whole', () => {
    expect(splitStatements('SELECT 1; SELEC 2')).toEqual(['SELECT 1; SELEC 2']);
  });
});

describe('pre-filter', () => {
  const simple = [
    'SELECT abalance FROM pgbench_accounts WHERE aid = 12345;',
    'select 1',
    '/* app=web */ SELECT id, name FROM users WHERE id = $1',
    "SELECT * FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.created_at > now() - interval '1 day'",
    'WITH x AS (SELECT 1 AS a) SELECT a FROM x;',
    "VALUES (1, 'a'), (2, 'b')",
    'TABLE pgbench_branches',
    'SHOW search_path',
    'EXPLAIN SELECT count(*) FROM t',
    '(SELECT 1) UNION ALL (SELECT 2)',
    "SELECT 'héllo', 'wörld' ;  ",
    'SELECT updated_at, created_by FROM t ORDER BY 1 LIMIT 10 OFFSET 5',
    'COMMIT',
    'rollback;',
    'SELECT 1 -- trailing note',
    'FETCH 10 FROM c',
    'EXECUTE p(1, 2)',
    'PREPARE q(int) AS SELECT $1 + 1',
    "NOTIFY ch, 'x'",
    'SELECT "Starting", "Settings", "Drops" FROM t /* x */ ;',
  ];

  it('has 20 samples', () => expect(simple).toHaveLength(20));

  for (const sql of simple) {
    it(`agrees with the parser: ${sql}`, () => {
      expect(prefilterPostgres(sql)).not.toBeNull();
      const fast = analyzePostgres(sql);
      const parsed = analyzePostgres(sql, PARSER);
      expect(one(fast).kind).toBe('unparsed-simple');
      expect(one(parsed).kind).not.toBe('unparsed-simple');
      expect({ ...one(fast), kind: null }).toEqual({ ...one(parsed), kind: null });
    });
  }

  const needParser = [
    "SELECT set_config('x', 'y', false)",
    "SELECT U&\"\\0073et_config\"('transaction_read_only', 'off', false)",
    'SELECT 1into t',
    'DO $$ BEGIN END $$',
    'SELECT 1; SELECT 2',
    'SELECT 1 -- x;',
    'REPACK t',
    'SELECT * FROM t FOR SHARE',
    "SELECT nextval('s')",
    "SELECT dblink_exec('x', 'y')",
    'SELECT * FROM t WHERE a = 1 OR b = 2 ; ; ',
    '/* unterminated SELECT 1',
    '',
  ];
  for (const sql of needParser) {
    it(`sends to the parser: ${JSON.stringify(sql)}`, () => expect(prefilterPostgres(sql)).toBeNull());
  }
});

describe('cache', () => {
  it('returns the same frozen result for the same text', () => {
    clearPostgresAnalysisCache();
    expect(postgresAnalysisCacheSize()).toBe(0);
    const sql = 'UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = 7;';
    const a = analyzePostgres(sql);
    const b = analyzePostgres(sql);
    expect(b).toBe(a);
    expect(postgresAnalysisCacheSize()).toBe(1);
    expect(Object.isFrozen(a)).toBe(true);
    expect(a.ok && Object.isFrozen(a.statements[0]?.classes)).toBe(true);
    expect(analyzePostgres(sql, { cache: false })).not.toBe(a);
  });

  it('does not cache long queries or pre-filtered ones', () => {
    clearPostgresAnalysisCache();
    analyzePostgres(`SELECT '${'x'.repeat(9000)}' FROM t WHERE a IN (SELECT 1); DELETE FROM t WHERE a = 1`);
    analyzePostgres('SELECT 1');
    expect(postgresAnalysisCacheSize()).toBe(0);
  });
});
