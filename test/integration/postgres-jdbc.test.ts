/**
 * PostgreSQL's JDBC driver (what DBeaver and most Java tools use) through
 * wicket: SCRAM over TLS, prepared statements past the driver's server-side
 * prepare threshold, transactions, metadata queries; every execution is
 * recorded with its parameters. Needs java and Debian's
 * libpostgresql-jdbc-java (.ci/run installs it).
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditEvents, machineDb, startBroker, type Broker } from '../support/wicket-pg.js';
import { ROOT } from '../support/cli.js';

const run = promisify(execFile);
const JAR = '/usr/share/java/postgresql.jar';
const PW = 'alice-jdbc-password-1';
const hasJava = await run('java', ['-version']).then(() => true, () => false);
const skip = !hasJava ? 'java is not installed' : !existsSync(JAR) ? `${JAR} missing (apt-get install libpostgresql-jdbc-java)` : null;

describe.skipIf(skip !== null)('postgres through wicket: JDBC (DBeaver\'s driver)', () => {
  let b: Broker;
  let db: Awaited<ReturnType<typeof machineDb>>;
  beforeAll(async () => {
    db = await machineDb('wicket_jdbc');
    b = await startBroker([
      'data_dir: ./data',
      'listen: { postgres: 127.0.0.1:0 }',
      'segments: [{ name: dev }]',
      'targets:',
      `  - { name: app-db, segment: dev, protocol: postgres, address: 127.0.0.1:5432, user: postgres, database: ${db.name}, tls: disable }`,
      'roles:',
      '  - { name: developer, allow: [{ segments: [dev], protocols: [postgres] }] }',
      'users:',
      '  - { name: alice, roles: [developer] }',
      '',
    ].join('\n'), { alice: PW });
  });
  afterAll(async () => {
    await b?.stop();
    await db?.drop();
  });

  it('connects with SCRAM over TLS, runs prepared statements, transactions and metadata queries, all recorded', { timeout: 60_000 }, async () => {
    const url = `jdbc:postgresql://${b.host}:${b.port}/${db.name}`;
    const r = await run('java', ['-cp', JAR, join(ROOT, 'test', 'support', 'jdbc', 'WicketJdbc.java'), url, 'alice@app-db', PW], { timeout: 50_000 });
    expect(r.stdout.trim().split('\n')).toEqual(['server PostgreSQL', 'count 6 max name-8', 'after rollback name-1', 'metadata pg_class']);
    await b.running.audit.flush();
    const queries = (await auditEvents(b, 'query')).map((e) => e.data as { sql?: string; step?: string; params?: { value: string | null; format: string; type: number | null }[] });
    const inserts = queries.filter((q) => q.step === 'execute' && q.sql === 'insert into jt values ($1, $2)');
    // JDBC binds ints in binary: recorded as hex with the type OID (int4 = 23); strings as text.
    expect(inserts.map((q) => q.params?.map((p) => `${p.format}:${p.type ?? ''}:${p.value}`))).toEqual(
      Array.from({ length: 8 }, (_, i) => [`binary:23:${(i + 1).toString(16).padStart(8, '0')}`, expect.stringMatching(new RegExp(`^text:\\d*:name-${i + 1}$`))]),
    );
    expect(queries.some((q) => q.sql?.startsWith('update jt set name'))).toBe(true);
    const start = (await auditEvents(b, 'session.start')).at(-1)!;
    expect((start.data as { meta?: { tls?: boolean } }).meta?.tls).toBe(true);
  });
});
