/**
 * MariaDB Connector/J (DBeaver's MariaDB driver) through wicket: TLS with the
 * person's password, server-side prepared statements with int, string,
 * decimal and datetime parameters, a transaction rolled back, metadata
 * queries and an error; every execution is recorded with its parameters.
 * Needs java and Debian's libmariadb-java (.ci/run installs it).
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from '../support/cli.js';
import { auditOf, machineMysqlDb, mysql2Connect, startMysqlBroker, type MyBroker } from '../support/wicket-mysql.js';

const run = promisify(execFile);
const JAR = '/usr/share/java/mariadb-java-client.jar';
const PW = 'alice-jdbc-password-1';
const hasJava = await run('java', ['-version']).then(() => true, () => false);
const skip = !hasJava ? 'java is not installed' : !existsSync(JAR) ? `${JAR} missing (apt-get install libmariadb-java)` : null;

describe.skipIf(skip !== null)('mysql through wicket: MariaDB Connector/J (DBeaver\'s MariaDB driver)', () => {
  let b: MyBroker;
  let db: Awaited<ReturnType<typeof machineMysqlDb>>;
  beforeAll(async () => {
    db = await machineMysqlDb('wicket_jdbc');
    await db.sql('CREATE TABLE kept (id INT PRIMARY KEY, label VARCHAR(20))');
    b = await startMysqlBroker([
      'data_dir: ./data',
      'listen: { mysql: 127.0.0.1:0 }',
      'segments: [{ name: dev }]',
      'targets:',
      `  - { name: app-my, segment: dev, protocol: mysql, address: 127.0.0.1:3306, user: root, database: ${db.name}, tls: disable }`,
      'roles:',
      '  - { name: developer, allow: [{ segments: [dev], protocols: [mysql] }] }',
      'users:',
      '  - { name: alice, roles: [developer] }',
      '',
    ].join('\n'), { alice: PW });
  });
  afterAll(async () => {
    await b?.stop();
    await db?.drop();
  });

  it('connects over TLS, runs server-side prepared statements, a transaction, metadata and an error, all recorded', { timeout: 60_000 }, async () => {
    // The greeting comes before the target is known: once wicket has reached a MariaDB upstream, clients are told they talk to MariaDB.
    const first = await mysql2Connect(b, { user: 'alice@app-my', password: PW });
    await first.end();
    const url = `jdbc:mariadb://${b.host}:${b.port}/${db.name}?useSsl=true&trustServerCertificate=true&useServerPrepStmts=true`;
    const r = await run('java', ['-cp', JAR, join(ROOT, 'test', 'support', 'jdbc', 'WicketMysqlJdbc.java'), url, 'alice@app-my', PW], { timeout: 50_000 });
    expect(r.stdout.trim().split('\n')).toEqual(['server MariaDB', 'count 6 max name-8 sum 34.50', 'after rollback name-1', 'metadata id', 'error 1146']);
    const queries = (await auditOf(b, 'query')).map((e) => e.data as { sql?: string; step?: string; params?: { type: string; value: string | null }[]; error?: { code: string } });
    const inserts = queries.filter((q) => q.step === 'stmt_execute' && q.sql === 'insert into jt values (?, ?, ?, ?)');
    expect(inserts).toHaveLength(8);
    expect(inserts[0]!.params?.map((p) => p.value)).toEqual(['1', 'name-1', '1.25', '2026-11-27 10:00:01']);
    expect(queries.some((q) => q.sql?.startsWith('update jt set name'))).toBe(true);
    expect(queries.some((q) => q.sql === 'select * from no_such_table' && q.error?.code === '1146/42S02')).toBe(true);
    const start = (await auditOf(b, 'session.start')).at(-1)!;
    expect((start.data as { meta?: { tls?: boolean } }).meta?.tls).toBe(true);
  });
});
