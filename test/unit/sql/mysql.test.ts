import { describe, expect, it } from 'vitest';
import {
  analyzeMysql,
  clearMysqlAnalysisCache,
  mysqlAnalysisCacheSize,
  prefilterMysql,
  splitMysqlStatements,
} from '../../../src/sql/mysql.js';
import type { DenySqlClass, SqlAnalysis, StatementInfo } from '../../../src/sql/types.js';

const PARSER = { prefilter: false, cache: false } as const;

function one(a: SqlAnalysis): StatementInfo {
  if (!a.ok) throw new Error(`analysis failed: ${a.error}`);
  expect(a.statements).toHaveLength(1);
  return a.statements[0] as StatementInfo;
}

function all(a: SqlAnalysis): readonly StatementInfo[] {
  if (!a.ok) throw new Error(`analysis failed: ${a.error}`);
  return a.statements;
}

const DWW: DenySqlClass = 'delete_without_where';
const UWW: DenySqlClass = 'update_without_where';
const COPY: DenySqlClass = 'copy_program';
const DDL: DenySqlClass = 'ddl';
const TRUNC: DenySqlClass = 'truncate';
const RW = 'READ WRITE transaction mode';

/** [sql, classes, writes, readOnlyBypass, opaque, kind] — asserted exactly (kind when given). */
type Case = [string, DenySqlClass[], boolean, string | null, boolean, string?];

const cases: Case[] = [
  // DELETE / UPDATE with and without WHERE (a LIMIT is not a WHERE)
  ['DELETE FROM t', [DWW], true, null, false, 'delete'],
  ['DELETE FROM t WHERE id = 1', [], true, null, false, 'delete'],
  ['delete from t where id = 1 limit 1', [], true, null, false, 'delete'],
  ['DELETE FROM t LIMIT 10', [DWW], true, null, false, 'delete'],
  ['DELETE FROM t ORDER BY id LIMIT 10', [DWW], true, null, false],
  ['DELETE FROM t WHERE a IN (SELECT b FROM u WHERE c = 1)', [], true, null, false],
  ['DELETE t1 FROM t1 JOIN t2 ON t1.a = t2.a', [DWW], true, null, false, 'delete'],
  ['DELETE t1, t2 FROM t1 JOIN t2 WHERE t1.a = t2.a', [], true, null, false],
  ['DELETE HISTORY FROM t', [DWW], true, null, false],
  ['UPDATE t SET a = 1', [UWW], true, null, false, 'update'],
  ['UPDATE t SET a = 1 WHERE id = 2', [], true, null, false, 'update'],
  ['UPDATE t SET a = 1 LIMIT 1', [UWW], true, null, false],
  ['UPDATE t SET a = 1 WHERE b ORDER BY c LIMIT 1', [], true, null, false],
  ['UPDATE t SET a = (SELECT max(b) FROM u WHERE u.id = 1)', [UWW], true, null, false],
  ['UPDATE t1 JOIN t2 ON t1.a = t2.a SET t1.b = 2', [UWW], true, null, false],
  ['UPDATE t, u SET t.a = u.a WHERE t.id = u.id', [], true, null, false],
  // nesting: WITH, EXPLAIN, ANALYZE, SET STATEMENT, PREPARE / EXECUTE IMMEDIATE of a literal
  ['WITH x AS (SELECT 1 AS id) DELETE FROM t', [DWW], true, null, false, 'delete'],
  ['WITH x AS (SELECT id FROM u WHERE a = 1) UPDATE t SET b = 2', [UWW], true, null, false, 'update'],
  ['WITH x AS (SELECT 1 AS id) DELETE FROM t WHERE id IN (SELECT id FROM x)', [], true, null, false],
  ['EXPLAIN DELETE FROM t', [DWW], true, null, false, 'keyword-explain'],
  ['EXPLAIN FORMAT=JSON UPDATE t SET a = 1', [UWW], true, null, false],
  ['ANALYZE DELETE FROM t WHERE a = 1', [], true, null, false, 'keyword-analyze'],
  ['SET STATEMENT max_statement_time = 1 FOR DELETE FROM t', [DWW], true, null, false, 'keyword-set'],
  ["PREPARE s FROM 'DELETE FROM t'", [DWW], true, null, false, 'keyword-prepare'],
  ["PREPARE s FROM 'DELETE FROM t WHERE a = \\'x\\''", [], true, null, false],
  ["EXECUTE IMMEDIATE 'UPDATE t SET a = 1'", [UWW], true, null, false, 'keyword-execute'],
  ["EXECUTE IMMEDIATE 'TRUNCATE t'", [TRUNC], true, null, false],
  // INSERT / REPLACE
  ['INSERT INTO t VALUES (1)', [], true, null, false, 'keyword-insert'],
  ['INSERT INTO t (a) VALUES (1) ON DUPLICATE KEY UPDATE a = 2', [], true, null, false],
  ['INSERT LOW_PRIORITY IGNORE INTO t SET a = 1', [], true, null, false],
  ['REPLACE INTO t SELECT * FROM u', [], true, null, false, 'keyword-replace'],
  // TRUNCATE
  ['TRUNCATE t', [TRUNC], true, null, false, 'keyword-truncate'],
  ['truncate table db.t', [TRUNC], true, null, false],
  // DDL
  ['CREATE TABLE t (id int)', [DDL], true, null, false, 'keyword-create'],
  ['CREATE TEMPORARY TABLE t (id int)', [DDL], true, null, false],
  ['CREATE TABLE t2 AS SELECT * FROM t', [DDL], true, null, false],
  ['ALTER TABLE t ADD COLUMN c int', [DDL], true, null, false, 'keyword-alter'],
  ['DROP TABLE IF EXISTS t, u', [DDL], true, null, false, 'keyword-drop'],
  ['RENAME TABLE a TO b', [DDL], true, null, false, 'keyword-rename'],
  ['CREATE INDEX i ON t (a)', [DDL], true, null, false],
  ['DROP INDEX i ON t', [DDL], true, null, false],
  ['CREATE OR REPLACE VIEW v AS SELECT 1', [DDL], true, null, false],
  ['ALTER VIEW v AS SELECT 2', [DDL], true, null, false],
  ['DROP VIEW v', [DDL], true, null, false],
  ['CREATE DATABASE d', [DDL], true, null, false],
  ['CREATE SCHEMA d', [DDL], true, null, false],
  ['ALTER DATABASE d CHARACTER SET utf8mb4', [DDL], true, null, false],
  ['DROP DATABASE d', [DDL], true, null, false],
  ["CREATE USER bob IDENTIFIED BY 'x'", [DDL], true, null, false],
  ["ALTER USER bob IDENTIFIED BY 'y'", [DDL], true, null, false],
  ['RENAME USER bob TO alice', [DDL], true, null, false],
  ['DROP USER bob', [DDL], true, null, false],
  ['CREATE ROLE r', [DDL], true, null, false],
  ['DROP ROLE r', [DDL], true, null, false],
  ['GRANT SELECT ON db.* TO bob', [DDL], true, null, false, 'keyword-grant'],
  ['GRANT r TO bob', [DDL], true, null, false],
  ['REVOKE SELECT ON db.* FROM bob', [DDL], true, null, false, 'keyword-revoke'],
  ['DROP PROCEDURE p', [DDL], true, null, false],
  ['DROP FUNCTION f', [DDL], true, null, false],
  ['DROP TRIGGER tr', [DDL], true, null, false],
  ['DROP EVENT e', [DDL], true, null, false],
  ["ALTER PROCEDURE p COMMENT 'x'", [DDL], true, null, false],
  ["SET PASSWORD FOR bob = 'x'", [DDL], true, null, false, 'keyword-set'],
  ['SET DEFAULT ROLE r TO bob, alice', [DDL], true, null, false],
  ['DROP PREPARE s', [], false, null, false, 'keyword-drop'],
  ['SHOW CREATE TABLE t', [], false, null, false, 'keyword-show'],
  // stored programs and compound statements: ddl (definitions), opaque bodies
  ['CREATE PROCEDURE p() BEGIN DELETE FROM t; END', [DDL], true, null, true, 'keyword-create'],
  ['CREATE DEFINER=`root`@`%` FUNCTION f() RETURNS int RETURN 1', [DDL], true, null, true],
  ['CREATE DEFINER = CURRENT_USER() PROCEDURE p() SELECT 1', [DDL], true, null, true],
  ['CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET NEW.a = 1', [DDL], true, null, true],
  ['CREATE EVENT e ON SCHEDULE EVERY 1 HOUR DO DELETE FROM t', [DDL], true, null, true],
  ['ALTER EVENT e DO DELETE FROM t', [DDL], true, null, true],
  ["CREATE FUNCTION f RETURNS STRING SONAME 'udf.so'", [DDL], true, null, true],
  ['BEGIN NOT ATOMIC DELETE FROM t; END', [], true, null, true, 'keyword-begin'],
  ['IF @x THEN DELETE FROM t; END IF', [], true, null, true, 'keyword-if'],
  ['lbl: LOOP LEAVE lbl; END LOOP lbl', [], true, null, true, 'keyword-compound'],
  // copy_program: server-side files and programs
  ["SELECT * FROM t INTO OUTFILE '/tmp/t.csv'", [COPY], true, null, false, 'select'],
  ["SELECT a INTO DUMPFILE '/tmp/x' FROM t", [COPY], true, null, false],
  ["LOAD DATA INFILE '/tmp/x' INTO TABLE t", [COPY], true, null, false, 'keyword-load'],
  ["load data low_priority infile '/tmp/x' replace into table t", [COPY], true, null, false],
  ["LOAD XML INFILE '/tmp/x.xml' INTO TABLE t", [COPY], true, null, false],
  ["LOAD DATA LOCAL INFILE '/tmp/x' INTO TABLE t", [], true, null, false, 'keyword-load'],
  ["LOAD DATA CONCURRENT LOCAL INFILE 'x' INTO TABLE t", [], true, null, false],
  ["LOAD XML LOCAL INFILE 'x.xml' INTO TABLE t", [], true, null, false],
  ["SELECT LOAD_FILE('/etc/passwd')", [COPY], false, null, false, 'select'],
  ["SELECT `load_file` ('/etc/passwd')", [COPY], false, null, false],
  ["SELECT * FROM t WHERE a = (SELECT LOAD_FILE('/etc/passwd'))", [COPY], false, null, false],
  ["INSERT INTO t SELECT LOAD_FILE('/etc/passwd')", [COPY], true, null, false],
  ["UPDATE t SET a = LOAD_FILE('/x') WHERE id = 1", [COPY], true, null, false],
  ["SET @x = LOAD_FILE('/x')", [COPY], false, null, false],
  ["SHOW TABLES WHERE LOAD_FILE('/x') IS NULL", [COPY], false, null, false],
  ["CREATE TABLE t (a int) ENGINE=CONNECT TABLE_TYPE=CSV FILE_NAME='/etc/passwd'", [DDL, COPY], true, null, false],
  ["CREATE TABLE t (a int) DATA DIRECTORY = '/var/tmp'", [DDL, COPY], true, null, false],
  ["SELECT sys_exec('id')", [COPY], true, null, false],
  ["SELECT 'LOAD_FILE(x)', 'INTO OUTFILE'", [], false, null, false],
  ['SELECT load_file FROM t', [], false, null, false],
  // other writes, and reads
  ['SELECT * FROM t FOR UPDATE', [], true, null, false, 'select'],
  ['SELECT * FROM t WHERE id = 1 FOR UPDATE NOWAIT', [], true, null, false],
  ['SELECT * FROM t LOCK IN SHARE MODE', [], true, null, false],
  ['SELECT a INTO @v FROM t', [], true, null, false],
  ['SELECT a FROM t INTO @v', [], true, null, false],
  ['SELECT NEXTVAL(s)', [], true, null, false],
  ['LOCK TABLES t WRITE', [], true, null, false, 'keyword-lock'],
  ['LOCK TABLES t READ, u READ LOCAL', [], false, null, false],
  ['UNLOCK TABLES', [], false, null, false],
  ['OPTIMIZE TABLE t', [], true, null, false],
  ['ANALYZE TABLE t', [], true, null, false],
  ['CHECK TABLE t', [], false, null, false],
  ['SELECT a, b FROM t WHERE c = 1 ORDER BY a LIMIT 10', [], false, null, false, 'select'],
  ['SELECT @@SESSION.transaction_read_only, @@read_only', [], false, null, false],
  ["SHOW VARIABLES LIKE '%read_only%'", [], false, null, false, 'keyword-show'],
  ['DESCRIBE t', [], false, null, false, 'keyword-describe'],
  ['EXPLAIN SELECT * FROM t', [], false, null, false, 'keyword-explain'],
  ['USE db', [], false, null, false, 'keyword-use'],
  ['BEGIN', [], false, null, false, 'keyword-begin'],
  ['BEGIN WORK', [], false, null, false],
  ['COMMIT', [], false, null, false, 'keyword-commit'],
  ['ROLLBACK', [], false, null, false],
  ['SAVEPOINT s', [], false, null, false],
  ['ROLLBACK TO SAVEPOINT s', [], false, null, false],
  ['RELEASE SAVEPOINT s', [], false, null, false],
  ['START TRANSACTION', [], false, null, false, 'keyword-start'],
  ['START TRANSACTION READ ONLY', [], false, null, false],
  ['START TRANSACTION WITH CONSISTENT SNAPSHOT', [], false, null, false],
  ['SET autocommit = 0', [], false, null, false, 'keyword-set'],
  ['SET @a = 1, @b := (SELECT 2)', [], false, null, false],
  ['DO SLEEP(0)', [], false, null, false, 'keyword-do'],
  ['DEALLOCATE PREPARE s', [], false, null, false],
  // readOnlyBypass
  ['SET @@SESSION.transaction_read_only = 0', [], false, 'SET transaction_read_only', false, 'keyword-set'],
  ['SET SESSION tx_read_only=OFF', [], false, 'SET tx_read_only', false],
  ['set transaction read write', [], false, RW, false],
  ['SET SESSION TRANSACTION READ WRITE', [], false, RW, false],
  ['SET GLOBAL TRANSACTION READ WRITE', [], true, RW, false],
  ['SET TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ WRITE', [], false, RW, false],
  ['START TRANSACTION READ WRITE', [], false, RW, false, 'keyword-start'],
  ['start transaction with consistent snapshot, read write', [], false, RW, false],
  ['SET transaction_read_only = 0', [], false, 'SET transaction_read_only', false],
  ['SET `transaction_read_only` = OFF', [], false, 'SET transaction_read_only', false],
  ['SET @@SESSION.`Tx_Read_Only` = 0', [], false, 'SET tx_read_only', false],
  ['SET @@transaction_read_only := DEFAULT', [], false, 'SET transaction_read_only', false],
  ['SET LOCAL transaction_read_only = FALSE', [], false, 'SET transaction_read_only', false],
  ['SET autocommit = 1, SESSION transaction_read_only = @ro', [], false, 'SET transaction_read_only', false],
  ['SET GLOBAL read_only = 0', [], true, 'SET read_only', false],
  ['SET @@global.super_read_only = OFF', [], true, 'SET super_read_only', false],
  ['SET PERSIST read_only = OFF', [], true, 'SET read_only', false],
  ['SET /*!80000 SESSION */ transaction_read_only = 0', [], false, 'SET transaction_read_only', false],
  ['SET STATEMENT transaction_read_only = 0 FOR INSERT INTO t VALUES (1)', [], true, 'SET transaction_read_only', false],
  ["PREPARE s FROM 'SET SESSION TRANSACTION READ WRITE'", [], false, RW, false, 'keyword-prepare'],
  ['SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED', [], false, null, false],
  ['SET SESSION TRANSACTION READ ONLY', [], false, null, false],
  ['SET SESSION transaction_read_only = 1', [], false, null, false],
  ["SET @@transaction_read_only = 'ON'", [], false, null, false],
  ['SET @read_only = 0', [], false, null, false],
  ['SET @`tx_read_only` = 0', [], false, null, false],
  // opaque
  ['PREPARE s FROM @sql', [], true, null, true, 'keyword-prepare'],
  ["PREPARE s FROM CONCAT('DELETE', ' FROM t')", [], true, null, true],
  ['EXECUTE s', [], true, null, true, 'keyword-execute'],
  ['EXECUTE s USING @a', [], true, null, true],
  ['EXECUTE IMMEDIATE @q', [], true, null, true],
  ['CALL p(1)', [], true, null, true, 'keyword-call'],
  ['HANDLER t OPEN', [], false, null, true, 'keyword-handler'],
  ['HANDLER t READ FIRST', [], false, null, true],
  ["BINLOG 'AAAA'", [], true, null, true, 'keyword-binlog'],
  ["INSTALL PLUGIN p SONAME 'p.so'", [], true, null, true],
  ["SET sql_mode = 'ANSI_QUOTES'", [], false, null, true],
  ["SET SESSION sql_mode = 'STRICT_TRANS_TABLES,NO_BACKSLASH_ESCAPES'", [], false, null, true],
  ["SET @@sql_mode = CONCAT(@@sql_mode, ',ANSI')", [], false, null, true],
  ['SET sql_mode = DEFAULT', [], false, null, true],
  ["SET STATEMENT sql_mode = 'ORACLE' FOR SELECT 1", [], false, null, true],
  ['SET NAMES sjis', [], false, null, true],
  ["SET NAMES 'gbk'", [], false, null, true],
  ['SET NAMES DEFAULT', [], false, null, true],
  ['SET CHARACTER SET big5', [], false, null, true],
  ['SET CHARSET latin1', [], false, null, true],
  ["SET character_set_client = 'cp932'", [], false, null, true],
  ['SET @@session.character_set_client = gb18030', [], false, null, true],
  ["SET sql_mode = 'STRICT_TRANS_TABLES,NO_ZERO_DATE'", [], false, null, false],
  ['SET SESSION sql_mode = TRADITIONAL', [], false, null, false],
  ['SET NAMES utf8mb4', [], false, null, false],
  ["SET NAMES 'utf8mb4' COLLATE 'utf8mb4_unicode_ci'", [], false, null, false],
  ['SET CHARACTER SET utf8', [], false, null, false],
  ['SET character_set_client = utf8mb4', [], false, null, false],
  ['SET character_set_results = latin1', [], false, null, false],
  // keywords in strings, identifiers and comments are not statements
  ["SELECT 'DROP TABLE x; --'", [], false, null, false, 'select'],
  ['SELECT "DELETE FROM t; UPDATE u SET a = 1"', [], false, null, false],
  ["SELECT 'it\\'s; DELETE FROM t; -- '", [], false, null, false],
  ['SELECT "a\\"; DELETE FROM t; -- "', [], false, null, false],
  ["SELECT 'a''b; TRUNCATE t'", [], false, null, false],
  ['SELECT "a""b; TRUNCATE t"', [], false, null, false],
  ["SELECT 'a\\\\'", [], false, null, false],
  ['SELECT `delete;`, `x``;y` FROM `truncate`', [], false, null, false],
  ['SELECT 1 -- ; DROP TABLE t', [], false, null, false],
  ['SELECT 1 # ; DROP TABLE t', [], false, null, false],
  ['SELECT 1 /* ; DELETE FROM t */', [], false, null, false],
  ['SELECT /*+ MAX_EXECUTION_TIME(1000) */ 1 /*+ ; DELETE FROM t */', [], false, null, false],
  // executable comments run: their content counts
  ['DELETE /*! FROM t */', [DWW], true, null, false, 'delete'],
  ['/*!50000 DELETE FROM t */', [DWW], true, null, false, 'delete'],
  ['/*M! DELETE FROM t */', [DWW], true, null, false, 'delete'],
  ['/*M!100100 DELETE FROM t */', [DWW], true, null, false, 'delete'],
  ['UPDATE t SET a = 1 /*!50000 , b = 2 */ /*M!100100 , c = 3 */ /*! , d = 4 */', [UWW], true, null, false, 'update'],
  ['/*!TRUNCATE t*/', [TRUNC], true, null, false, 'keyword-truncate'],
  ['/*!40101 SET NAMES sjis */', [], false, null, true],
  ['SELECT 1 /*!50000 FOR UPDATE */', [], true, null, false],
  ['SELECT /*!40001 SQL_NO_CACHE */ * FROM t', [], false, null, false, 'select'],
  // a versioned comment may not run (older server, or MySQL for /*M!): both readings count
  ['DELETE FROM t /*!50000 WHERE a = 1 */', [DWW], true, null, false],
  ['DELETE FROM t /*M!100100 WHERE a = 1 */', [DWW], true, null, false],
  ['DELETE FROM t /*! WHERE a = 1 */', [], true, null, false],
];

describe('analyzeMysql: one statement', () => {
  it('has at least 150 cases', () => expect(cases.length).toBeGreaterThanOrEqual(150));

  for (const [sql, classes, writes, bypass, opaque, kind] of cases) {
    it(sql, () => {
      const parsed = one(analyzeMysql(sql, PARSER));
      expect({ classes: parsed.classes, writes: parsed.writes, readOnlyBypass: parsed.readOnlyBypass, opaque: parsed.opaque })
        .toEqual({ classes, writes, readOnlyBypass: bypass, opaque });
      expect(parsed.text).toBe(sql);
      if (kind !== undefined) expect(parsed.kind).toBe(kind);
      // The default path (pre-filter + cache) agrees on everything but `kind`.
      const fast = one(analyzeMysql(sql));
      expect({ ...fast, kind: null }).toEqual({ ...parsed, kind: null });
    });
  }
});

describe('analyzeMysql: several statements', () => {
  it('splits and classifies each statement', () => {
    const a = all(analyzeMysql('SELECT 1; DELETE FROM t; UPDATE t SET a = 1 WHERE b; TRUNCATE u;'));
    expect(a.map((s) => [s.text, s.kind, s.classes, s.writes])).toEqual([
      ['SELECT 1', 'select', [], false],
      ['DELETE FROM t', 'delete', [DWW], true],
      ['UPDATE t SET a = 1 WHERE b', 'update', [], true],
      ['TRUNCATE u', 'keyword-truncate', [TRUNC], true],
    ]);
  });

  it('finds a DELETE after strings, identifiers and comments holding ";"', () => {
    const sql = "SELECT 'a;b', \"c\\\";d\", `e;f` /* ; */ # ;\n; -- ;\nDELETE FROM t";
    const a = all(analyzeMysql(sql));
    expect(a.map((s) => [s.text, s.classes])).toEqual([
      ["SELECT 'a;b', \"c\\\";d\", `e;f` /* ; */ # ;", []],
      ['DELETE FROM t', [DWW]],
    ]);
  });

  it('reads an executable comment as code: a ";" in it ends a statement', () => {
    const a = all(analyzeMysql('SELECT 1 /*!; DROP TABLE t */'));
    expect(a.map((s) => [s.text, s.classes])).toEqual([
      ['SELECT 1', []],
      ['DROP TABLE t', [DDL]],
    ]);
    // A conditional one may not run: its ';' would split the query differently, so it is refused.
    expect(analyzeMysql('SELECT 1 /*M!; DELETE FROM t */').ok).toBe(false);
  });

  it('treats "--" without a following space as operators, not a comment', () => {
    const a = all(analyzeMysql('SELECT 1 --; DELETE FROM t'));
    expect(a.map((s) => [s.text, s.classes])).toEqual([
      ['SELECT 1 --', []],
      ['DELETE FROM t', [DWW]],
    ]);
    expect(all(analyzeMysql('SELECT 1 --\tx; DELETE FROM t')).map((s) => s.text)).toEqual(['SELECT 1 --\tx; DELETE FROM t']);
  });

  it('keeps a stored-program body whole, with its ";", up to the end of the query', () => {
    const a = all(analyzeMysql('CREATE PROCEDURE p() BEGIN SELECT 1; DELETE FROM t; END;\nCALL p();'));
    expect(a).toHaveLength(1);
    expect(a[0]).toMatchObject({ text: 'CREATE PROCEDURE p() BEGIN SELECT 1; DELETE FROM t; END;\nCALL p()', classes: [DDL], opaque: true, writes: true });
    // CREATE TABLE is not a body, even for a table named `event`
    expect(all(analyzeMysql('CREATE TABLE event (a int); DELETE FROM t')).map((s) => s.classes)).toEqual([[DDL], [DWW]]);
  });

  it('fails the whole query when one statement cannot be analyzed', () => {
    const a = analyzeMysql('SELECT 1; DELETE FROM');
    expect(a.ok).toBe(false);
  });
});

describe('analyzeMysql: failures', () => {
  const bad: [string, RegExp][] = [
    ['SELEC 1', /^syntax error/],
    ['SELECT 1; DELETE FROM', /^syntax error at end of input$/],
    // grammar gaps of node-sql-parser where a class depends on the structure
    ['DELETE FROM t1 USING t1 JOIN t2 ON t1.a = t2.a', /^syntax error/],
    ['SELECT * FROM t FOR SHARE', /^syntax error/],
    ["SELECT * FROM t INTO OUTFILE '/x' FIELDS TERMINATED BY ','", /^syntax error at or near "FIELDS"$/],
    // statement types not known here and refused by the parser
    ['FLUSH TABLES', /^syntax error/],
    ['KILL 5', /^syntax error/],
    // lexing that a server could read two ways
    ['SELECT 1\0; DROP TABLE t', /^query contains a NUL byte$/],
    ['SELECT 1 /*!50000 ; DELETE FROM t */', /versioned executable comment holds a ';'/],
    ['SELECT 1 /*M!; DELETE FROM t */', /versioned executable comment holds a ';'/],
    ["SELECT 1 /*!50000 'a */' */", /would end elsewhere/],
    ['SELECT 1 /*!50000 # */\n */', /would end elsewhere/],
    ['SELECT 1 /*! /* c */ 2 */', /comment inside an executable comment/],
    ['SELECT 1 /*!500001 x */', /ambiguous version/],
    ['SELECT 1 /*!50000x */', /ambiguous version/],
    ['SELECT 1 /*! 2', /unterminated executable comment/],
    // without a versioned comment's content the statement must parse too (it may not run)
    ['DELETE /*!50000 FROM t */', /^syntax error at end of input$/],
    ['SELECT 1 --\x7f; DROP TABLE t', /DEL/],
    ["PREPARE s FROM 'DELETE FROM t1 USING t1 JOIN t2'", /^in the statement text of PREPARE: syntax error/],
  ];
  for (const [sql, error] of bad) {
    it(JSON.stringify(sql), () => {
      const a = analyzeMysql(sql, PARSER);
      expect(a.ok).toBe(false);
      if (!a.ok) expect(a.error).toMatch(error);
      expect(analyzeMysql(sql)).toEqual(a);
    });
  }

  it('classifies harmless statements the parser rejects by their first keywords', () => {
    for (const sql of ['SHOW FULL PROCESSLIST', 'SHOW ENGINE INNODB STATUS', 'VALUES (1), (2)', 'TABLE t', 'XA RECOVER']) {
      const s = one(analyzeMysql(sql, PARSER));
      expect(s).toMatchObject({ classes: [], writes: false, readOnlyBypass: null, opaque: false });
      expect(s.kind).toMatch(/^keyword-/);
    }
    const s = one(analyzeMysql('SELECT * FROM t USE INDEX (i) WHERE a = 1', PARSER));
    expect(s).toMatchObject({ kind: 'keyword-select', classes: [], writes: false });
  });

  it('but not a query the parser rejects that mentions a keyword anywhere', () => {
    expect(analyzeMysql("SELECT * FROM t USE INDEX (i) WHERE a = 'delete'", PARSER).ok).toBe(false);
    expect(analyzeMysql('SELECT * FROM t USE INDEX (i) /* update */', PARSER).ok).toBe(false);
  });
});

describe('analyzeMysql: statements too long for the parser', () => {
  const ids = Array.from({ length: 3000 }, (_, i) => i).join(', ');
  const big: [string, DenySqlClass[], boolean, string][] = [
    [`DELETE FROM t WHERE id IN (${ids})`, [], true, 'keyword-delete'],
    [`DELETE FROM t ORDER BY FIELD(id, ${ids}) LIMIT 5`, [DWW], true, 'keyword-delete'],
    [`DELETE FROM t WHERE (id) IN (SELECT id FROM u WHERE id IN (${ids}))`, [], true, 'keyword-delete'],
    [`UPDATE t SET a = FIELD(id, ${ids})`, [UWW], true, 'keyword-update'],
    [`UPDATE t SET a = (SELECT b FROM u WHERE u.id IN (${ids}))`, [UWW], true, 'keyword-update'],
    [`UPDATE t SET a = 1 WHERE id IN (${ids})`, [], true, 'keyword-update'],
    [`WITH x AS (SELECT id FROM u WHERE id IN (${ids})) DELETE FROM t`, [DWW], true, 'keyword-with'],
    [`SELECT * FROM t WHERE id IN (${ids}) FOR UPDATE`, [], true, 'keyword-select'],
    [`SELECT * FROM t WHERE id IN (${ids}) INTO OUTFILE '/tmp/x' FIELDS TERMINATED BY ','`, [COPY], true, 'keyword-select'],
    [`SELECT * FROM t WHERE id IN (${ids}) AND note = 'delete; update'`, [], false, 'keyword-select'],
  ];
  for (const [sql, classes, writes, kind] of big) {
    it(`${sql.slice(0, 40)}...${sql.slice(-30)}`, () => {
      expect(sql.length).toBeGreaterThan(8192);
      const s = one(analyzeMysql(sql, PARSER));
      expect({ classes: s.classes, writes: s.writes, kind: s.kind, opaque: s.opaque }).toEqual({ classes, writes, kind, opaque: false });
    });
  }
});

describe('splitMysqlStatements', () => {
  const splits: [string, string[]][] = [
    ['SELECT 1;', ['SELECT 1']],
    ['; ; SELECT 1;;', ['SELECT 1']],
    ['SELECT 1; SELECT 2 ;\n', ['SELECT 1', 'SELECT 2']],
    ['', []],
    ['  \n\t ', []],
    ['-- only a comment', []],
    ['/* a */ ; # b\n;', []],
    ['/*+ hint */', []],
    ["SELECT 'a;b'; SELECT \"c;d\"; SELECT `e;f`", ["SELECT 'a;b'", 'SELECT "c;d"', 'SELECT `e;f`']],
    ["SELECT 'a\\';b'; SELECT 2", ["SELECT 'a\\';b'", 'SELECT 2']],
    ["SELECT 'a'';b'; SELECT 2", ["SELECT 'a'';b'", 'SELECT 2']],
    ['/* a */ SELECT 1 /* b */; -- c\n DROP TABLE t;', ['SELECT 1 /* b */', 'DROP TABLE t']],
    ['SELECT 1 # x; y\n; SELECT 2', ['SELECT 1 # x; y', 'SELECT 2']],
    ['SELECT 1 -- x; SELECT 2', ['SELECT 1 -- x; SELECT 2']],
    ['SELECT 1 /*!; DROP TABLE t */', ['SELECT 1', 'DROP TABLE t']],
    ['/*!40101 SET NAMES utf8mb4 */;\n/*!40014 SET FOREIGN_KEY_CHECKS=0 */;', ['/*!40101 SET NAMES utf8mb4 */', '/*!40014 SET FOREIGN_KEY_CHECKS=0 */']],
    ["SELECT 'héllo; wörld ✓'; SELECT '日本語';DROP TABLE `tä`", ["SELECT 'héllo; wörld ✓'", "SELECT '日本語'", 'DROP TABLE `tä`']],
    ['BEGIN; INSERT INTO t VALUES (1); COMMIT', ['BEGIN', 'INSERT INTO t VALUES (1)', 'COMMIT']],
    ['CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW BEGIN SET NEW.a = 1; END; SELECT 1', ['CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW BEGIN SET NEW.a = 1; END; SELECT 1']],
    // what the lexer refuses comes back whole
    ['SELECT 1 /*!50000 ; x */ ', ['SELECT 1 /*!50000 ; x */']],
  ];
  for (const [sql, expected] of splits) {
    it(JSON.stringify(sql), () => expect(splitMysqlStatements(sql)).toEqual(expected));
  }

  it('agrees with the statement texts of the analysis', () => {
    const sql = "/* x */ SELECT 1; DELETE FROM t WHERE a = 'b;c' -- done\n; UPDATE t SET a = 1 WHERE id = 2";
    expect(splitMysqlStatements(sql)).toEqual(all(analyzeMysql(sql)).map((s) => s.text));
  });

  it('an empty or comment-only query analyzes to no statements', () => {
    expect(analyzeMysql('')).toEqual({ ok: true, statements: [] });
    expect(analyzeMysql(' ; -- nothing\n # here')).toEqual({ ok: true, statements: [] });
  });
});

describe('pre-filter', () => {
  const simple = [
    'SELECT abalance FROM pgbench_accounts WHERE aid = 12345;',
    'select 1',
    '/* app=web */ SELECT id, name FROM users WHERE id = ?',
    'SELECT * FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.created_at > NOW() - INTERVAL 1 DAY',
    'WITH x AS (SELECT 1 AS a) SELECT a FROM x;',
    'SHOW TABLES',
    "SHOW VARIABLES LIKE '%version%'",
    'EXPLAIN SELECT COUNT(*) FROM t',
    '(SELECT 1) UNION ALL (SELECT 2)',
    "SELECT 'héllo', 'wörld' ;  ",
    'SELECT updated_at, created_by, deleted FROM t ORDER BY 1 LIMIT 10 OFFSET 5',
    'COMMIT',
    'rollback;',
    'SELECT 1 -- trailing note',
    'SELECT 1 # trailing note',
    'USE shop',
    'DESCRIBE t',
    'SELECT `Starting`, `Settings` FROM t /* x */ ;',
    'SELECT /*+ BKA(t) */ * FROM t',
    'SELECT @@version, @@SESSION.transaction_isolation',
  ];

  it('has 20 samples', () => expect(simple).toHaveLength(20));

  for (const sql of simple) {
    it(`agrees with the full analysis: ${sql}`, () => {
      expect(prefilterMysql(sql)).not.toBeNull();
      const fast = analyzeMysql(sql);
      const parsed = analyzeMysql(sql, PARSER);
      expect(one(fast).kind).toBe('unparsed-simple');
      expect(one(parsed).kind).not.toBe('unparsed-simple');
      expect({ ...one(fast), kind: null }).toEqual({ ...one(parsed), kind: null });
    });
  }

  const needAnalysis = [
    "SELECT LOAD_FILE('/x')",
    'SELECT 1; SELECT 2',
    'SELECT 1 -- x;',
    'SELECT 1 # x;',
    'SELECT /*!50000 1 */',
    'SELECT /*!1 */',
    'SELECT /*M!100100 1 */',
    'SELECT * FROM t FOR UPDATE',
    'SELECT * FROM t LOCK IN SHARE MODE',
    'SELECT a INTO @x FROM t',
    'SELECT NEXT VALUE FOR s',
    'FLUSH TABLES',
    'SET NAMES utf8mb4',
    'INSERT INTO t VALUES (1)',
    'DELETE FROM t',
    'SELECT 1 ; ; ',
    '/* unterminated SELECT 1',
    '--x\nSELECT 1',
    '',
    '  -- only a comment',
    'SELECT 1\0',
  ];
  for (const sql of needAnalysis) {
    it(`leaves to the full analysis: ${JSON.stringify(sql)}`, () => expect(prefilterMysql(sql)).toBeNull());
  }
});

describe('cache', () => {
  it('returns the same deeply frozen result for the same text', () => {
    clearMysqlAnalysisCache();
    expect(mysqlAnalysisCacheSize()).toBe(0);
    const sql = 'UPDATE accounts SET balance = balance + 1 WHERE id = 7; DELETE FROM log';
    const a = analyzeMysql(sql);
    const b = analyzeMysql(sql);
    expect(b).toBe(a);
    expect(mysqlAnalysisCacheSize()).toBe(1);
    expect(Object.isFrozen(a)).toBe(true);
    expect(a.ok).toBe(true);
    if (!a.ok) return;
    expect(Object.isFrozen(a.statements)).toBe(true);
    for (const s of a.statements) {
      expect(Object.isFrozen(s)).toBe(true);
      expect(Object.isFrozen(s.classes)).toBe(true);
    }
    expect(a.statements[1]?.classes).toEqual([DWW]);
    const fresh = analyzeMysql(sql, { cache: false });
    expect(fresh).not.toBe(a);
    expect(fresh).toEqual(a);
  });

  it('caches failures too, frozen', () => {
    clearMysqlAnalysisCache();
    const a = analyzeMysql('FLUSH TABLES');
    expect(analyzeMysql('FLUSH TABLES')).toBe(a);
    expect(Object.isFrozen(a)).toBe(true);
    expect(a.ok).toBe(false);
  });

  it('does not cache long queries or pre-filtered ones', () => {
    clearMysqlAnalysisCache();
    analyzeMysql(`SELECT '${'x'.repeat(9000)}' FROM t WHERE a IN (SELECT 1); DELETE FROM t WHERE a = 1`);
    analyzeMysql('SELECT 1');
    expect(mysqlAnalysisCacheSize()).toBe(0);
    analyzeMysql('SELECT 1', { prefilter: false });
    expect(mysqlAnalysisCacheSize()).toBe(1);
  });

  it('pre-filtered results are frozen too', () => {
    const a = analyzeMysql('SELECT 1');
    expect(Object.isFrozen(a)).toBe(true);
    expect(a.ok && Object.isFrozen(a.statements[0])).toBe(true);
  });
});
