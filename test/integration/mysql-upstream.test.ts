/**
 * The MySQL adapter against a private MariaDB started for these tests
 * (mariadb-install-db in a temp dir, free port, TLS, general query log,
 * ed25519 plugin): upstream auth variants, and completeness of the record
 * cross-checked with the server's own general log.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RowDataPacket } from 'mysql2/promise';
import { mariadbUnavailable, startPrivateMariaDb, type PrivateMariaDb } from '../support/mariadb.js';
import { auditOf, mariadbCli, mysql2Connect, startMysqlBroker, type MyBroker } from '../support/wicket-mysql.js';

const queries = async (b: MyBroker): Promise<Record<string, unknown>[]> => (await auditOf(b, 'query')).map((e) => e.data as Record<string, unknown>);

const PW = 'alice pass 1';
const skip = mariadbUnavailable({ tls: true, generalLog: true, ed25519: true });

describe.skipIf(skip !== null)('mysql adapter: private MariaDB upstream', () => {
  let m: PrivateMariaDb;
  let b: MyBroker;

  beforeAll(async () => {
    m = await startPrivateMariaDb({ tls: true, generalLog: true, ed25519: true, serverArgs: ['--max-allowed-packet=67108864'] });
    await m.sql([
      'CREATE DATABASE app',
      'CREATE TABLE app.k (id INT PRIMARY KEY, v VARCHAR(50))',
      'CREATE TABLE app.blobs (id INT PRIMARY KEY, data LONGBLOB)',
      "CREATE USER native@'%' IDENTIFIED VIA mysql_native_password USING PASSWORD('native-pw')",
      "CREATE USER ed@'%' IDENTIFIED VIA ed25519 USING PASSWORD('ed-pw with spaces')",
      "CREATE USER tlsonly@'%' IDENTIFIED BY 'tls-pw' REQUIRE SSL",
      "GRANT ALL ON app.* TO native@'%'",
      "GRANT ALL ON app.* TO ed@'%'",
      "GRANT ALL ON app.* TO tlsonly@'%'",
    ].join(';\n'));
    const t = (name: string, user: string, pw: string, tls: string): string =>
      `  - { name: ${name}, segment: s, protocol: mysql, address: "127.0.0.1:${m.port}", user: ${user}, password: ${JSON.stringify(pw)}, database: app, tls: ${tls} }`;
    b = await startMysqlBroker([
      'data_dir: ./data',
      'listen: { mysql: "127.0.0.1:0" }',
      'segments: [{ name: s }]',
      'targets:',
      t('native', 'native', 'native-pw', 'disable'),
      t('ed', 'ed', 'ed-pw with spaces', 'disable'),
      t('tlsreq', 'tlsonly', 'tls-pw', 'require'),
      t('tlsmissing', 'tlsonly', 'tls-pw', 'disable'),
      t('wrongpw', 'native', 'not-it', 'disable'),
      'roles: [{ name: r, allow: [{ segments: [s] }] }]',
      'users: [{ name: alice, roles: [r] }]',
      '',
    ].join('\n'), { alice: PW });
  }, 120_000);

  afterAll(async () => {
    await b?.stop();
    await m?.stop();
  });

  const whoami = async (target: string): Promise<string> => {
    const r = await mariadbCli(b, { user: `alice@${target}`, password: PW }, ['-N', '-B', '-e', "SELECT CONCAT(CURRENT_USER(), ' ', IFNULL((SELECT VARIABLE_VALUE FROM information_schema.SESSION_STATUS WHERE VARIABLE_NAME = 'Ssl_cipher'), ''))"]);
    if (r.code !== 0) throw new Error(r.stderr);
    return r.stdout.trim();
  };

  it('logs in upstream with mysql_native_password', async () => {
    expect(await whoami('native')).toMatch(/^native@%/);
  });

  it('logs in upstream with MariaDB client_ed25519', async () => {
    expect(await whoami('ed')).toMatch(/^ed@%/);
  });

  it('uses TLS upstream when the target says require, and an account that requires SSL works', async () => {
    expect(await whoami('tlsreq')).toMatch(/^tlsonly@% \S+/);
  });

  it('reports an upstream refusal without leaking the upstream account or password', async () => {
    const r = await mariadbCli(b, { user: 'alice@wrongpw', password: PW }, ['-e', 'SELECT 1']);
    expect(r.stderr).toMatch(/ERROR 1045 .*upstream wrongpw refused wicket's login/);
    expect(r.stderr).not.toMatch(/not-it|native/);
    const r2 = await mariadbCli(b, { user: 'alice@tlsmissing', password: PW }, ['-e', 'SELECT 1']);
    expect(r2.code).not.toBe(0);
    expect(r2.stderr).not.toMatch(/tls-pw/);
  });

  it('round-trips a 20 MiB blob (packets of 16 MiB and more) intact', async () => {
    const c = await mysql2Connect(b, { user: 'alice@native', password: PW });
    try {
      const big = Buffer.alloc(20 * 1024 * 1024);
      for (let i = 0; i < big.length; i += 4096) big[i] = (i / 4096) & 0xff;
      await c.execute('INSERT INTO blobs (id, data) VALUES (?, ?)', [20, big]);
      const [rows] = await c.query<RowDataPacket[]>('SELECT data FROM blobs WHERE id = 20');
      expect(Buffer.compare(rows[0]!.data as Buffer, big)).toBe(0);
      const q = await queries(b);
      const ev = q.find((e) => e.step === 'stmt_execute' && String(e.sql).startsWith('INSERT INTO blobs (id, data)'));
      expect(String((ev!.params as { value: string }[])[1]!.value)).toMatch(/truncated by wicket: 20971520 bytes total/);
    } finally {
      await c.end();
    }
  }, 60_000);

  it('records every statement: 2,500 via COM_QUERY and 2,500 via COM_STMT_EXECUTE, all in the server general log', async () => {
    const c = await mysql2Connect(b, { user: 'alice@native', password: PW });
    const N = 2500;
    try {
      for (let i = 0; i < N; i++) await c.query(`INSERT INTO k (id, v) VALUES (${i}, 'q${i}')`);
      for (let i = 0; i < N; i++) await c.execute('SELECT v FROM k WHERE id = ?', [i]);
      const [rows] = await c.query<RowDataPacket[]>('SELECT COUNT(*) AS n FROM k');
      expect(Number(rows[0]!.n)).toBe(N);
    } finally {
      await c.end();
    }
    const q = (await auditOf(b, 'query')).map((e) => e.data as { step: string; sql: string; params?: { value: string }[]; rows?: number });
    const inserts = new Set(q.filter((e) => e.step === 'query' && e.sql.startsWith('INSERT INTO k')).map((e) => e.sql));
    const executes = q.filter((e) => e.step === 'stmt_execute' && e.sql === 'SELECT v FROM k WHERE id = ?');
    expect(inserts.size).toBe(N);
    expect(executes).toHaveLength(N);
    expect(new Set(executes.map((e) => e.params![0]!.value)).size).toBe(N);
    expect(executes.every((e) => e.rows === 1)).toBe(true);
    // The server's own log saw the same statements.
    const log = readFileSync(m.generalLog!, 'utf8');
    const logged = log.split('\n').filter((l) => /\sQuery\s+INSERT INTO k \(id, v\) VALUES/.test(l) || /\sExecute\s+SELECT v FROM k WHERE id = /.test(l));
    expect(logged.filter((l) => l.includes('INSERT INTO k'))).toHaveLength(N);
    expect(logged.filter((l) => /\sExecute\s/.test(l))).toHaveLength(N);
    for (const l of logged.filter((x) => x.includes('INSERT INTO k')).slice(0, 50)) {
      expect(inserts.has(l.slice(l.indexOf('INSERT INTO k')).trim())).toBe(true);
    }
  }, 120_000);
});
