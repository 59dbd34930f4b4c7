/**
 * The MySQL adapter end to end, against the machine's MariaDB 10.11
 * (127.0.0.1:3306, root without a password) with the real `mariadb` client
 * and the `mysql2` driver.
 */
import net from 'node:net';
import v8 from 'node:v8';
import vm from 'node:vm';
import mysqlCb from 'mysql2';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RowDataPacket } from 'mysql2/promise';
import { auditOf, machineMysqlDb, mariadbCli, mysql2Connect, startMysqlBroker, type MyBroker } from '../support/wicket-mysql.js';
import { encodePacket, PacketSplitter, type LogicalPacket } from '../../protocols/mysql/packets.js';
import { buildHandshakeResponse, buildSslRequest, CLIENT, WICKET_CAPS } from '../../protocols/mysql/handshake.js';
import { spawnPty } from '../support/pty.js';
import { createToken } from '../../src/auth/tokens.js';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

const PW = 'correct horse battery';
let b: MyBroker;
let db: Awaited<ReturnType<typeof machineMysqlDb>>;

beforeAll(async () => {
  db = await machineMysqlDb('wmy');
  await db.sql('CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(100), amount DECIMAL(10,2), data LONGBLOB, at DATETIME(6), f DOUBLE)');
  await db.sql("INSERT INTO t (id, name) VALUES (1, 'one'), (2, 'two'), (3, 'three')");
  b = await startMysqlBroker([
    'data_dir: ./data',
    'listen: { mysql: "127.0.0.1:0" }',
    'segments: [{ name: dbs }]',
    'targets:',
    `  - { name: mdb, segment: dbs, protocol: mysql, address: "127.0.0.1:3306", user: root, database: ${db.name}, tls: disable }`,
    `  - { name: mdbro, segment: dbs, protocol: mysql, address: "127.0.0.1:3306", user: root, database: ${db.name}, tls: disable }`,
    `  - { name: mdbonly, segment: dbs, protocol: mysql, address: "127.0.0.1:3306", user: root, databases: [${db.name}], tls: disable }`,
    'roles:',
    '  - name: dev',
    '    allow:',
    '      - { segments: [dbs], targets: [mdb, mdbonly], access: write, deny_sql: [ddl, delete_without_where] }',
    '      - { segments: [dbs], targets: [mdbro], access: read }',
    'users:',
    '  - { name: alice, roles: [dev] }',
    '  - { name: bob, roles: [] }',
    '',
  ].join('\n'), { alice: PW, bob: PW });
}, 60_000);

afterAll(async () => {
  await b?.stop();
  await db?.drop();
});

const queries = async (): Promise<Record<string, unknown>[]> => (await auditOf(b, 'query')).map((e) => e.data as Record<string, unknown>);

describe('mysql adapter: logins', () => {
  it('runs a query with the mariadb client over TLS and records it', async () => {
    const r = await mariadbCli(b, { user: 'alice@mdb', password: PW }, ['-N', '-B', '-e', 'SELECT name FROM t ORDER BY id; SELECT 40 + 2']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split('\n')).toEqual(['one', 'two', 'three', '42']);
    const q = await queries();
    expect(q.find((e) => e.sql === 'SELECT name FROM t ORDER BY id')).toMatchObject({ step: 'query', rows: 3 });
    expect(q.find((e) => e.sql === 'SELECT 40 + 2')).toMatchObject({ rows: 1 });
  });

  it('asks for --ssl when the client does not use TLS', async () => {
    const r = await mariadbCli(b, { user: 'alice@mdb', password: PW, ssl: false }, ['-e', 'SELECT 1']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/requires TLS: connect with --ssl/);
  });

  it('refuses a wrong password with 1045 and an unknown target with the reason', async () => {
    const bad = await mariadbCli(b, { user: 'alice@mdb', password: 'nope' }, ['-e', 'SELECT 1']);
    expect(bad.stderr).toMatch(/ERROR 1045 \(28000\).*Access denied for user 'alice'/);
    const unknown = await mariadbCli(b, { user: 'alice@nosuch', password: PW }, ['-e', 'SELECT 1']);
    expect(unknown.stderr).toMatch(/ERROR 1045 \(28000\).*nosuch/);
    const denied = await mariadbCli(b, { user: 'bob@mdb', password: PW }, ['-e', 'SELECT 1']);
    expect(denied.stderr).toMatch(/ERROR 1045 \(28000\)/);
  });

  it('logs in with mysql2 and names the person in the server processlist', async () => {
    const c = await mysql2Connect(b, { user: 'alice@mdb', password: PW });
    try {
      const [rows] = await c.query<RowDataPacket[]>("SELECT ATTR_VALUE AS v FROM performance_schema.session_connect_attrs WHERE PROCESSLIST_ID = CONNECTION_ID() AND ATTR_NAME = 'program_name'").catch(() => [[]] as unknown as [RowDataPacket[]]);
      if (rows.length) expect(String(rows[0]!.v)).toMatch(/^wicket:alice:/);
      const [one] = await c.query<RowDataPacket[]>('SELECT 1 AS x');
      expect(one[0]!.x).toBe(1);
    } finally {
      await c.end();
    }
  });
});

describe('mysql adapter: real clients', () => {
  it('drives the interactive mariadb client in a pty', async () => {
    const t = spawnPty('mariadb', ['-h', b.host, '-P', String(b.port), '-u', 'alice@mdb', '-p', '--ssl', db.name]);
    try {
      await t.waitFor(/Enter password:/, { timeoutMs: 15_000 });
      t.write(`${PW}\r`);
      await t.waitFor(/MariaDB \[[^\]]*\]> $/, { timeoutMs: 15_000 });
      const from = t.output().length;
      t.write("SELECT CONCAT('inter', 'active') AS word;\r");
      await t.waitFor(/interactive[\s\S]*1 row in set[\s\S]*> $/, { timeoutMs: 15_000, from });
      t.write('exit\r');
      expect(await t.exited).toBe(0);
    } finally {
      t.kill();
    }
    const q = await queries();
    expect(q.some((e) => e.sql === "SELECT CONCAT('inter', 'active') AS word" && e.rows === 1)).toBe(true);
  }, 40_000);

  it('runs mysqlslap through wicket, every query recorded', async () => {
    const before = (await queries()).filter((e) => e.sql === 'SELECT 1').length;
    const r = await execFileP('mysqlslap', ['-h', b.host, '-P', String(b.port), '-u', 'alice@mdb', `--password=${PW}`, '--ssl', `--create-schema=${db.name}`, '--query=SELECT 1', '--concurrency=4', '--iterations=2', '--number-of-queries=200']);
    expect(r.stdout).toMatch(/Average number of seconds to run all queries/);
    const after = (await queries()).filter((e) => e.sql === 'SELECT 1').length;
    expect(after - before).toBe(400);
  }, 60_000);
});

describe('mysql adapter: statements and parameters', () => {
  it('records prepared statements with their parameters, each type decoded', async () => {
    const c = await mysql2Connect(b, { user: 'alice@mdb', password: PW });
    try {
      const at = new Date(Date.UTC(2026, 10, 27, 12, 34, 56, 789));
      await c.execute('INSERT INTO t (id, name, amount, data, at, f) VALUES (?, ?, ?, ?, ?, ?)', [10, 'ten', '12.50', Buffer.from([0, 1, 2]), at, 2.5]);
      await c.execute('INSERT INTO t (id, name) VALUES (?, ?)', [11, null]);
      const [rows] = await c.execute<RowDataPacket[]>('SELECT id, name FROM t WHERE id >= ? ORDER BY id', [10]);
      expect(rows.map((r) => r.id)).toEqual([10, 11]);
      const q = await queries();
      const ins = q.filter((e) => e.step === 'stmt_execute' && String(e.sql).startsWith('INSERT INTO t (id, name, amount'));
      expect(ins).toHaveLength(1);
      const params = ins[0]!.params as { type: number; format: string; value: string | null }[];
      expect(params[0]!.value).toBe('10');
      expect(params[1]!.value).toBe('ten');
      expect(params[2]!.value).toBe('12.50');
      expect(params[3]).toMatchObject({ format: 'binary', value: '000102' });
      expect(params[4]!.value).toMatch(/^2026-11-27 \d\d:34:56/);
      expect(params[5]!.value).toBe('2.5');
      const nul = q.find((e) => e.step === 'stmt_execute' && String(e.sql) === 'INSERT INTO t (id, name) VALUES (?, ?)');
      expect((nul!.params as { format: string }[])[1]!.format).toBe('null');
      expect(q.find((e) => e.step === 'stmt_execute' && String(e.sql).startsWith('SELECT id, name FROM t WHERE id >= ?'))).toMatchObject({ rows: 2 });
      expect(q.some((e) => e.step === 'prepare' && String(e.sql).startsWith('SELECT id, name FROM t'))).toBe(true);
    } finally {
      await c.end();
    }
  });

  it('splits multi-statement strings into one event per statement', async () => {
    const c = await mysql2Connect(b, { user: 'alice@mdb', password: PW, multipleStatements: true });
    try {
      const [results] = await c.query('SELECT 1 AS a; UPDATE t SET name = name WHERE id = 1; SELECT 2 AS b');
      expect(Array.isArray(results)).toBe(true);
      const q = await queries();
      expect(q.find((e) => e.sql === 'UPDATE t SET name = name WHERE id = 1')).toMatchObject({ step: 'query' });
      expect(q.find((e) => e.sql === 'SELECT 2 AS b')).toMatchObject({ rows: 1 });
    } finally {
      await c.end();
    }
  });

});

describe('mysql adapter: policy', () => {
  it('refuses DDL and DELETE without WHERE with 1227 naming the rule, and the session continues', async () => {
    const c = await mysql2Connect(b, { user: 'alice@mdb', password: PW });
    try {
      await expect(c.query('DROP TABLE t')).rejects.toMatchObject({ errno: 1227, message: expect.stringMatching(/wicket: statement refused by rule dev\.allow\[0\].*ddl/) });
      await expect(c.query('DELETE FROM t')).rejects.toMatchObject({ errno: 1227 });
      await expect(c.execute('DELETE /*! FROM t */')).rejects.toMatchObject({ errno: 1227 });
      const [rows] = await c.query<RowDataPacket[]>('SELECT COUNT(*) AS n FROM t');
      expect(Number(rows[0]!.n)).toBeGreaterThanOrEqual(3);
      const refused = await auditOf(b, 'refused');
      expect(refused.some((e) => (e.data as { what: string }).what === 'DROP TABLE t')).toBe(true);
    } finally {
      await c.end();
    }
  });

  it('makes access: read sessions read-only and refuses statements that would undo it', async () => {
    const c = await mysql2Connect(b, { user: 'alice@mdbro', password: PW });
    try {
      await expect(c.query("INSERT INTO t (id, name) VALUES (99, 'x')")).rejects.toMatchObject({ errno: 1792 });
      await expect(c.query('SET SESSION TRANSACTION READ WRITE')).rejects.toMatchObject({ errno: 1227 });
      await expect(c.query('SET @@SESSION.tx_read_only = 0')).rejects.toMatchObject({ errno: 1227 });
      await c.query('SELECT 1');
      // COM_RESET_CONNECTION drops session settings: wicket makes the session read-only again.
      await c.reset();
      await expect(c.query("INSERT INTO t (id, name) VALUES (98, 'x')")).rejects.toMatchObject({ errno: 1792 });
    } finally {
      await c.end();
    }
  });

  it('refuses COM_CHANGE_USER, LOAD DATA LOCAL and KILL of another connection', async () => {
    const c = await mysql2Connect(b, { user: 'alice@mdb', password: PW });
    try {
      await expect(c.query("LOAD DATA LOCAL INFILE '/etc/passwd' INTO TABLE t")).rejects.toMatchObject({ errno: 1227, message: expect.stringMatching(/local_infile/) });
      await expect(c.query('KILL 1')).rejects.toMatchObject({ errno: 1227 });
      await expect(c.changeUser({ user: 'root' })).rejects.toMatchObject({ errno: 1227 });
    } finally {
      c.destroy();
    }
  });

  it('checks COM_INIT_DB against the allow-list', async () => {
    const c = await mysql2Connect(b, { user: 'alice@mdbonly', password: PW, database: db.name });
    try {
      await expect(c.query('USE mysql')).rejects.toMatchObject({ errno: 1044, message: expect.stringMatching(/not allowed on mdbonly/) });
      await c.query(`USE \`${db.name}\``);
    } finally {
      c.destroy();
    }
    // The mariadb client's `use` is COM_INIT_DB.
    const r = await mariadbCli(b, { user: 'alice@mdbonly', password: PW, database: db.name }, ['-N', '-B'], 'use mysql\nSELECT 1;\n');
    expect(r.stderr).toMatch(/ERROR 1044 .*not allowed on mdbonly/);
  });
});

describe('mysql adapter: kill and bad input', () => {
  it('ends a session on wicket kill with an error that says why', async () => {
    const c = await mysql2Connect(b, { user: 'alice@mdb', password: PW });
    const id = b.running.broker.liveSessions().find((s) => s.user === 'alice' && s.target === 'mdb')!.id;
    const sleeping = c.query('SELECT SLEEP(20)');
    await new Promise((r) => setTimeout(r, 300));
    b.running.broker.terminate(id, 'killed by test');
    await expect(sleeping).rejects.toMatchObject({ message: expect.stringMatching(/terminated by wicket: killed by test/) });
    c.destroy();
  });

  it('revoking the token a session was opened with ends it with an error that says why', async () => {
    const { token, record } = await createToken(b.running.store, 'alice', { name: 'my-revoke', now: Date.now() });
    const c = await mysql2Connect(b, { user: 'alice@mdb', password: token });
    const [rows] = await c.query<RowDataPacket[]>('SELECT 1 AS ok');
    expect(rows[0]!.ok).toBe(1);
    const sleeping = c.query('SELECT SLEEP(20)');
    await new Promise((r) => setTimeout(r, 300));
    expect(await b.running.store.revokeToken(record.id, Date.now())).toBe(true);
    await expect(sleeping).rejects.toMatchObject({ message: expect.stringContaining(`terminated by wicket: the token it was opened with (${record.id}) was revoked`) });
    c.destroy();
    await expect(mysql2Connect(b, { user: 'alice@mdb', password: token })).rejects.toMatchObject({ errno: 1045 });
  });

  it('answers garbage and out-of-order packets with an ERR and keeps serving others', async () => {
    const healthy = await mysql2Connect(b, { user: 'alice@mdb', password: PW });
    const raw = net.connect(b.port, b.host);
    const replies: LogicalPacket[] = [];
    const split = new PacketSplitter({ maxBytes: 1 << 20 });
    raw.on('data', (d: Buffer) => split.push(d, (p) => replies.push(p)));
    await new Promise<void>((r) => raw.once('connect', () => r()));
    await new Promise((r) => setTimeout(r, 100));
    raw.write(encodePacket(5, Buffer.from('garbage')).bytes);
    await new Promise<void>((r) => raw.once('close', () => r()));
    const err = replies.find((p) => p.payload[0] === 0xff);
    expect(err?.payload.subarray(9).toString()).toMatch(/out of order/);
    const [rows] = await healthy.query<RowDataPacket[]>('SELECT 7 AS x');
    expect(rows[0]!.x).toBe(7);
    await healthy.end();
  });

  it('refuses an oversize handshake response and a response without PROTOCOL_41', async () => {
    const raw = net.connect(b.port, b.host);
    await new Promise<void>((r) => raw.once('data', () => r())); // the greeting
    raw.pause();
    raw.write(encodePacket(1, buildSslRequest(WICKET_CAPS, 45)).bytes);
    const sec = tls.connect({ socket: raw, rejectUnauthorized: false });
    await new Promise<void>((r) => sec.once('secureConnect', () => r()));
    const replies: LogicalPacket[] = [];
    const split = new PacketSplitter({ maxBytes: 1 << 20 });
    sec.on('data', (d: Buffer) => split.push(d, (p) => replies.push(p)));
    const resp = buildHandshakeResponse({ capabilities: (WICKET_CAPS & ~CLIENT.PROTOCOL_41 & ~CLIENT.SSL) >>> 0, charset: 45, user: 'alice@mdb', authResponse: Buffer.alloc(0), database: null, authPlugin: null, attributes: new Map() });
    sec.write(encodePacket(2, resp).bytes);
    await new Promise<void>((r) => sec.once('close', () => r()));
    expect(replies.find((p) => p.payload[0] === 0xff)?.payload.toString()).toMatch(/protocol 4\.1/);
  });
});

describe('mysql adapter: a 1,000,000-row result', () => {
  const SQL = "SELECT seq, MD5(seq) FROM seq_1_to_1000000";
  const MiB = 1024 * 1024;
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as () => void;
  const rss = (): number => process.memoryUsage().rss;

  it('streams to a reading client with every row delivered, recorded once, broker RSS growth under 64 MiB', async () => {
    const c = mysqlCb.createConnection({ host: b.host, port: b.port, user: 'alice@mdb', password: PW, ssl: { rejectUnauthorized: false } });
    gc();
    gc();
    const base = rss();
    let peak = base;
    const sampler = setInterval(() => (peak = Math.max(peak, rss())), 10);
    let rows = 0;
    let ordered = true;
    await new Promise<void>((resolve, reject) => {
      c.query({ sql: SQL, rowsAsArray: true }).on('result', (row: unknown) => {
        const r = row as [number, string];
        rows++;
        if (r[0] !== rows) ordered = false;
      }).on('end', () => resolve()).on('error', reject);
    });
    clearInterval(sampler);
    peak = Math.max(peak, rss());
    await new Promise<void>((r) => c.end(() => r()));
    expect(rows).toBe(1_000_000);
    expect(ordered).toBe(true);
    expect((peak - base) / MiB).toBeLessThan(64);
    const ev = (await queries()).filter((e) => e.sql === SQL);
    expect(ev.map((e) => [e.rows, e.tag])).toEqual([[1_000_000, '1000000 rows']]);
  }, 120_000);

  it('a client that stops reading makes wicket stop reading the upstream; memory stays bounded; nothing is lost', async () => {
    const c = mysqlCb.createConnection({ host: b.host, port: b.port, user: 'alice@mdb', password: PW, ssl: { rejectUnauthorized: false } });
    gc();
    gc();
    const base = rss();
    let rows = 0;
    let pausedAt = 0;
    const done = new Promise<void>((resolve, reject) => {
      c.query({ sql: SQL, rowsAsArray: true }).on('result', () => {
        rows++;
        if (rows === 1000) {
          c.pause();
          pausedAt = rows;
        }
      }).on('end', () => resolve()).on('error', reject);
    });
    await new Promise((r) => setTimeout(r, 2000));
    expect(pausedAt).toBe(1000);
    expect((rss() - base) / MiB).toBeLessThan(64);
    c.resume();
    await done;
    expect(rows).toBe(1_000_000);
    await new Promise<void>((r) => c.end(() => r()));
  }, 120_000);
});
