/**
 * The private MariaDB the MySQL adapter's tests run against: its own port,
 * socket and data dir (never the shared server on 3306), mysql2 logs in over
 * TCP, the general log sees every statement, a REQUIRE SSL account gets in
 * only over TLS trusting the CA it hands out, the ed25519 plugin is loaded,
 * a bad start says why, and stop() leaves nothing behind.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { promisify } from 'node:util';
import mysql from 'mysql2/promise';
import { generate } from 'selfsigned';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mariadbUnavailable, startPrivateMariaDb, type PrivateMariaDb } from '../support/mariadb.js';

const run = promisify(execFile);
const unavailable = mariadbUnavailable({ tls: true, generalLog: true, ed25519: true });
if (unavailable) console.warn(`mariadb-support: skipped: ${unavailable}`);

const refused = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const c = net.connect(port, '127.0.0.1');
    c.once('connect', () => { c.destroy(); resolve(false); });
    c.once('error', () => resolve(true));
  });

const processGone = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return false;
  } catch {
    return true;
  }
};

describe.skipIf(unavailable !== null)(`private MariaDB${unavailable ? ` (skipped: ${unavailable})` : ''}`, () => {
  let db: PrivateMariaDb;
  const connect = (user: string, password: string, extra: Partial<mysql.ConnectionOptions> = {}): Promise<mysql.Connection> =>
    mysql.createConnection({ host: db.host, port: db.port, user, password, database: 'app', connectTimeout: 10_000, ...extra });

  beforeAll(async () => {
    db = await startPrivateMariaDb({ tls: true, generalLog: true, ed25519: true });
    await db.sql([
      'CREATE DATABASE app',
      `CREATE USER native@'%' IDENTIFIED VIA mysql_native_password USING PASSWORD('pw1')`,
      `CREATE USER ed@'%' IDENTIFIED VIA ed25519 USING PASSWORD('pw2')`,
      `CREATE USER tlsonly@'%' IDENTIFIED BY 'pw3' REQUIRE SSL`,
      `GRANT ALL ON app.* TO native@'%', ed@'%', tlsonly@'%'`,
      '',
    ].join(';\n'));
  });
  afterAll(async () => {
    await db?.stop();
  });

  it('is its own server: own port, socket and data dir, loopback only, TLS on', async () => {
    expect(db.port).not.toBe(3306);
    const row = (await db.sql('SELECT @@port, @@socket, @@datadir, @@bind_address, @@have_ssl, @@general_log, @@log_bin')).trim().split('\t');
    expect(row).toEqual([String(db.port), db.socket, `${db.dir}/data/`, '127.0.0.1', 'YES', '1', '0']);
    expect(db.caPem).toMatch(/^-----BEGIN CERTIFICATE-----/);
    expect(db.generalLog).toBe(`${db.dir}/general.log`);
  });

  it('lets a mysql_native_password user in over TCP with mysql2, and the general log records the query', async () => {
    const c = await connect('native', 'pw1');
    try {
      const [rows] = await c.query<mysql.RowDataPacket[]>("SELECT CURRENT_USER() AS u, 'marker-4711' AS m, @@port AS p");
      expect(rows).toEqual([{ u: 'native@%', m: 'marker-4711', p: db.port }]);
    } finally {
      await c.end();
    }
    const log = readFileSync(db.generalLog!, 'utf8');
    expect(log).toMatch(/Connect\s+native@localhost on app using TCP\/IP|Connect\s+native@127\.0\.0\.1 on app using TCP\/IP/);
    expect(log).toContain("SELECT CURRENT_USER() AS u, 'marker-4711' AS m, @@port AS p");
  });

  it('refuses a REQUIRE SSL user without TLS and lets it in with TLS trusting caPem', async () => {
    await expect(connect('tlsonly', 'pw3')).rejects.toMatchObject({ code: 'ER_ACCESS_DENIED_ERROR' });
    const c = await connect('tlsonly', 'pw3', { ssl: { ca: db.caPem! } });
    try {
      const [rows] = await c.query<mysql.RowDataPacket[]>("SELECT CURRENT_USER() AS u, VARIABLE_VALUE AS cipher FROM information_schema.SESSION_STATUS WHERE VARIABLE_NAME = 'Ssl_cipher'");
      expect(rows[0]?.u).toBe('tlsonly@%');
      expect(rows[0]?.cipher).not.toBe('');
    } finally {
      await c.end();
    }
    // The server certificate really is checked: a different CA is refused.
    const other = await otherCaPem();
    await expect(connect('tlsonly', 'pw3', { ssl: { ca: other } })).rejects.toThrow(/certificate/i);
  });

  it('has the ed25519 plugin loaded and the user on it (the mariadb CLI logs in with it)', async () => {
    expect((await db.sql("SELECT PLUGIN_STATUS FROM information_schema.PLUGINS WHERE PLUGIN_NAME = 'ed25519'")).trim()).toBe('ACTIVE');
    expect((await db.sql("SELECT JSON_VALUE(Priv, '$.plugin') FROM mysql.global_priv WHERE User = 'ed' AND Host = '%'")).trim()).toBe('ed25519');
    // mysql2 has no ed25519 client plugin; the mariadb client (libmariadb) has.
    const r = await run('mariadb', ['--no-defaults', '--protocol=TCP', '--host=127.0.0.1', `--port=${db.port}`, '--user=ed', '--password=pw2', '--batch', '--skip-column-names', '-e', 'SELECT CURRENT_USER()'], { env: { PATH: process.env.PATH } });
    expect(r.stdout.trim()).toBe('ed@%');
  });

  it('stop() ends the server, frees its port and removes its dir; a plain server has no TLS and no general log', async () => {
    const plain = await startPrivateMariaDb();
    expect(plain.caPem).toBeNull();
    expect(plain.generalLog).toBeNull();
    expect((await plain.sql('SELECT @@have_ssl, @@general_log')).trim()).toBe('DISABLED\t0');
    expect(plain.port).not.toBe(db.port);
    await plain.stop();
    expect(processGone(plain.pid)).toBe(true);
    expect(existsSync(plain.dir)).toBe(false);
    expect(await refused(plain.port)).toBe(true);
    await plain.stop(); // idempotent
    // The first server is untouched.
    expect((await db.sql('SELECT 1')).trim()).toBe('1');
  });

  it('a server that cannot start says why, with its error log', async () => {
    await expect(startPrivateMariaDb({ serverArgs: ['--no-such-option-here'] })).rejects.toThrow(/unknown (variable|option).*no-such-option-here/);
  });
});

/** A CA certificate that did not sign the server's (to prove verification is on). */
async function otherCaPem(): Promise<string> {
  const pems = await generate([{ name: 'commonName', value: 'some other CA' }], { keyType: 'ec', curve: 'P-256', algorithm: 'sha256', extensions: [{ name: 'basicConstraints', cA: true }] });
  return pems.cert;
}
