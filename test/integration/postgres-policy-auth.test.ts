/**
 * Postgres adapter, authentication and TLS, with real clients (psql, pg) and
 * raw sockets against a broker started in-process. Upstream: the machine's
 * PostgreSQL on 127.0.0.1:5432 (trust), in a database made for this file.
 *
 * Throttling counts failures per user AND per source host, so the failing
 * logins here are spread out: the throttle test runs from its own loopback
 * address (127.0.0.7) and last.
 */
import { join } from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createToken } from '../../src/auth/tokens.js';
import { makeSelfSignedCert } from '../support/pg-server.js';
import {
  GSSENC_REQUEST, Raw, SSL_REQUEST, auditEvents, backendMessages, firstError, loginError, machineDb, pgConnect, psql, startBroker, startupPacket,
  type Broker,
} from '../support/wicket-pg.js';

const ALICE_PW = 'alice-correct-horse-1';
const MALLORY_PW = 'mallory-battery-staple';

describe('postgres adapter: authentication and TLS', () => {
  let b: Broker;
  let db: Awaited<ReturnType<typeof machineDb>>;
  const alice = (over: { password?: string; user?: string; dbname?: string; sslmode?: string; extra?: Record<string, string> } = {}) =>
    ({ user: 'alice@app-db', password: ALICE_PW, dbname: db.name, ...over });

  beforeAll(async () => {
    db = await machineDb('wicket_auth');
    const t = (name: string, segment: string, extra = ''): string =>
      `  - { name: ${name}, segment: ${segment}, protocol: postgres, address: 127.0.0.1:5432, user: postgres, database: ${db.name}, tls: disable${extra} }`;
    b = await startBroker([
      'data_dir: ./data',
      'listen: { postgres: 127.0.0.1:0 }',
      'segments: [{ name: dev }, { name: prod }, { name: vault }]',
      'targets:',
      t('app-db', 'dev', `, databases: [${db.name}, postgres]`),
      t('prod-db', 'prod'),
      t('vault-db', 'vault'),
      'roles:',
      '  - { name: developer, allow: [{ segments: [dev, prod], protocols: [postgres], access: write }] }',
      'users:',
      '  - { name: alice, roles: [developer] }',
      '  - { name: mallory, roles: [developer] }',
      '',
    ].join('\n'), { alice: ALICE_PW, mallory: MALLORY_PW });
  });

  afterAll(async () => {
    await b?.stop();
    await db?.drop();
  });

  describe('authentication', () => {
    it('the right password works over SCRAM (psql and pg), and the upstream session carries the identity', async () => {
      const r = await psql(b, alice(), 'select current_database(), current_setting(\'application_name\')');
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      const [dbName, app] = r.stdout.split('|');
      expect(dbName).toBe(db.name);
      expect(app).toMatch(/^wicket:alice:[0-9a-z]+:psql-test$/);
      const c = await pgConnect(b, { user: 'alice@app-db', password: ALICE_PW, database: db.name });
      expect((await c.query('select 40 + 2 as n')).rows).toEqual([{ n: 42 }]);
      await c.end();
      const ok = (await auditEvents(b, 'auth.ok')).filter((e) => e.actor === 'alice');
      expect(ok.length).toBeGreaterThanOrEqual(2);
      expect(ok.every((e) => e.data.method === 'password')).toBe(true);
    });

    it('a personal access token works as the password (SCRAM)', async () => {
      const { token } = await createToken(b.running.store, 'alice', { name: 'laptop', now: Date.now() });
      const r = await psql(b, alice({ password: token }), 'select 1');
      expect(r.stderr).toBe('');
      expect(r.stdout).toBe('1');
      const c = await pgConnect(b, { user: 'alice@app-db', password: token, database: db.name });
      expect((await c.query('select 1 as one')).rows).toEqual([{ one: 1 }]);
      await c.end();
      const last = (await auditEvents(b, 'auth.ok')).at(-1)!;
      expect(last.data.method).toBe('token');
      // The password keeps working next to the token (they share the SCRAM salt).
      expect((await psql(b, alice(), 'select 2')).stdout).toBe('2');
    });

    it('a wrong password is 28P01 "password authentication failed" and writes auth.fail', async () => {
      const r = await psql(b, alice({ password: 'not-the-password' }), 'select 1');
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain('FATAL:  password authentication failed for user "alice"');
      const e = await loginError(b, { user: 'alice@app-db', password: 'also-wrong-123', database: db.name });
      expect(e.code).toBe('28P01');
      expect(e.message).toBe('password authentication failed for user "alice"');
      const fails = (await auditEvents(b, 'auth.fail')).filter((ev) => ev.actor === 'alice');
      expect(fails.length).toBe(2);
      expect(fails[0]!.data).toMatchObject({ protocol: 'postgres', reason: 'bad password', clientAddr: expect.stringMatching(/^127\.0\.0\.1:\d+$/) });
      expect(fails[0]!.target).toBe('app-db');
    });

    it('an unknown user is refused with 28000 and the reason', async () => {
      const e = await loginError(b, { user: 'zed@app-db', password: 'whatever-pw', database: db.name });
      expect(e.code).toBe('28000');
      expect(e.message).toContain('unknown user "zed"');
      const r = await psql(b, alice({ user: 'no-target-given' }), 'select 1');
      expect(r.stderr).toContain('user must be <wicket user>@<target>');
    });

    it('an unknown target, or one the roles do not allow, is 28000 with the reason', async () => {
      const unknown = await loginError(b, { user: 'alice@nope-db', password: ALICE_PW, database: db.name });
      expect(unknown.code).toBe('28000');
      expect(unknown.message).toMatch(/nope-db/);
      const vault = await loginError(b, { user: 'alice@vault-db', password: ALICE_PW, database: db.name });
      expect(vault.code).toBe('28000');
      expect(vault.message).toMatch(/vault/);
      const r = await psql(b, alice({ user: 'alice@vault-db' }), 'select 1');
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/FATAL: {2}.*vault/);
      const denies = (await auditEvents(b, 'policy.deny')).map((e) => e.data.reason);
      expect(denies).toEqual(expect.arrayContaining(['unknown_target', 'no_rule']));
    });

    it('a locked segment refuses logins with 28000 and the lock reason, and only that segment', async () => {
      await b.running.store.lockSegment({ segment: 'prod', reason: 'incident 4711', lockedBy: 'sec-team', lockedAt: Date.now() });
      try {
        const e = await loginError(b, { user: 'alice@prod-db', password: ALICE_PW, database: db.name });
        expect(e.code).toBe('28000');
        expect(e.message).toContain('incident 4711');
        expect(e.message).toContain('locked');
        expect((await psql(b, alice(), 'select 3')).stdout).toBe('3');
      } finally {
        await b.running.store.unlockSegment('prod');
      }
      expect((await psql(b, alice({ user: 'alice@prod-db' }), 'select 4')).stdout).toBe('4');
    });

    it('a database outside the target\'s allow-list is 28000; listed ones work', async () => {
      const e = await loginError(b, { user: 'alice@app-db', password: ALICE_PW, database: 'template1' });
      expect(e.code).toBe('28000');
      expect(e.message).toContain('database "template1" is not allowed on app-db');
      expect((await psql(b, alice({ dbname: 'postgres' }), 'select current_database()')).stdout).toBe('postgres');
      // prod-db lists only its default database.
      const r = await psql(b, alice({ user: 'alice@prod-db', dbname: 'postgres' }), 'select 1');
      expect(r.stderr).toContain('database "postgres" is not allowed on prod-db');
    });

    it('startup options=-c ... and replication=database are refused with a clear message', async () => {
      const opt = await psql(b, alice({ extra: { options: '-c default_transaction_read_only=off' } }), 'select 1');
      expect(opt.code).not.toBe(0);
      expect(opt.stderr).toContain('FATAL:  startup parameter "options" is not allowed through wicket');
      const repl = await psql(b, alice({ extra: { replication: 'database' } }), 'select 1');
      expect(repl.code).not.toBe(0);
      expect(repl.stderr).toContain('FATAL:  replication connections are not allowed through wicket');
      // refused before any password was asked for: no auth event for these two
      const raw = new Raw(b);
      await raw.send(startupPacket({ user: 'alice@app-db', database: db.name, options: '-c role=postgres' }));
      const res = await raw.closeWait();
      expect(res.closed).toBe(true);
      expect(firstError(res.data)).toMatchObject({ S: 'FATAL', C: '28000', M: 'startup parameter "options" is not allowed through wicket' });
    });
  });

  describe('TLS', () => {
    it('sslmode=require works, and the session is recorded as TLS', async () => {
      const r = await psql(b, alice({ sslmode: 'require' }), 'select 5');
      expect(r.stderr).toBe('');
      expect(r.stdout).toBe('5');
      const c = await pgConnect(b, { user: 'alice@app-db', password: ALICE_PW, database: db.name, ssl: { rejectUnauthorized: false } });
      expect((c as unknown as { connection: { stream: unknown } }).connection.stream).toBeInstanceOf(tls.TLSSocket);
      expect((await c.query('select 6 as n')).rows[0].n).toBe(6);
      await c.end();
      const ok = (await auditEvents(b, 'auth.ok')).slice(-2);
      expect(ok.map((e) => e.data.tls)).toEqual([true, true]);
    });

    it('sslmode=verify-ca trusts data_dir/tls/cert.pem, and fails against another CA', async () => {
      const r = await psql(b, alice({ sslmode: 'verify-ca', extra: { sslrootcert: join(b.dataDir, 'tls', 'cert.pem') } }), 'select 7');
      expect(r.stderr).toBe('');
      expect(r.stdout).toBe('7');
      const other = join(b.dir, 'other-ca.pem');
      await makeSelfSignedCert(other, join(b.dir, 'other-ca.key'));
      const bad = await psql(b, alice({ sslmode: 'verify-ca', extra: { sslrootcert: other } }), 'select 7');
      expect(bad.code).not.toBe(0);
      expect(bad.stderr).toMatch(/certificate verify failed/);
    });

    it('SSLRequest followed in the same write by a clear StartupMessage is refused (no S, connection closed)', async () => {
      const raw = new Raw(b);
      await raw.send(SSL_REQUEST, startupPacket({ user: 'alice@app-db', database: db.name }));
      const res = await raw.closeWait();
      expect(res.closed).toBe(true);
      expect(res.data[0]).not.toBe('S'.charCodeAt(0));
      // Either nothing or one clear ErrorResponse; never an authentication request for the injected startup.
      expect(backendMessages(res.data).map((m) => m.type)).not.toContain('R');
      const err = firstError(res.data);
      if (res.data.length) expect(err).toMatchObject({ C: '08P01', M: expect.stringContaining('after SSLRequest') });
    });

    it('GSSENCRequest gets N and the client can go on with SSLRequest and a TLS startup', async () => {
      const raw = new Raw(b);
      await raw.send(GSSENC_REQUEST);
      await raw.until((r) => r.data.length >= 1);
      expect(raw.data.toString('latin1')).toBe('N');
      await raw.send(SSL_REQUEST);
      await raw.until((r) => r.data.length >= 2);
      expect(raw.data.toString('latin1')).toBe('NS');
      const secure = tls.connect({ socket: raw.sock, rejectUnauthorized: false });
      await new Promise<void>((resolve, reject) => { secure.once('secureConnect', resolve); secure.once('error', reject); });
      let got = Buffer.alloc(0);
      secure.on('data', (d: Buffer) => (got = Buffer.concat([got, d])));
      secure.write(startupPacket({ user: 'alice@app-db', database: db.name }));
      for (let i = 0; i < 100 && backendMessages(got).length === 0; i++) await new Promise((r) => setTimeout(r, 20));
      const [auth] = backendMessages(got);
      expect(auth?.type).toBe('R');
      expect(auth!.body.readInt32BE(0)).toBe(10); // AuthenticationSASL
      expect(auth!.body.subarray(4).toString('utf8')).toContain('SCRAM-SHA-256');
      secure.destroy();
    });
  });

  describe('throttling', () => {
    it('after 5 failed logins the next attempt is refused ("too many failed login attempts"), per user and per source host', async () => {
      const from = '127.0.0.7';
      const errors: Array<{ code?: string; message: string }> = [];
      for (let i = 0; i < 5; i++) errors.push(await loginError(b, { user: 'mallory@app-db', password: `wrong-guess-${i}`, database: db.name, localAddress: from }));
      expect(errors.map((e) => e.code)).toEqual(['28P01', '28P01', '28P01', '28P01', '28P01']);
      const fails = (await auditEvents(b, 'auth.fail')).filter((e) => e.actor === 'mallory');
      expect(fails.length).toBe(5);
      expect(fails.every((e) => e.data.reason === 'bad password' && String(e.data.clientAddr).startsWith(`${from}:`))).toBe(true);
      // The 6th attempt is refused before any password check, even with the right password.
      const sixth = await pgConnect(b, { user: 'mallory@app-db', password: MALLORY_PW, database: db.name, localAddress: from })
        .then(async (c) => { await c.end(); return { code: 'connected', message: 'the 6th attempt logged in' }; }, (e: { code?: string; message: string }) => e);
      expect(sixth.message, 'the 6th attempt after 5 failures').toMatch(/^too many failed login attempts; try again in \d+ s$/);
      // Keep failing until the throttle answers, to check what it covers (a login above resets the counts).
      let blocked = sixth;
      for (let i = 0; i < 7 && !/too many/.test(blocked.message); i++) {
        blocked = await loginError(b, { user: 'mallory@app-db', password: `wrong-again-${i}`, database: db.name, localAddress: from });
      }
      expect(blocked.code).toBe('28000');
      expect(blocked.message).toMatch(/^too many failed login attempts; try again in \d+ s$/);
      // The block covers the source host (another user from 127.0.0.7) and the user (mallory from 127.0.0.1) ...
      expect((await loginError(b, { user: 'alice@app-db', password: ALICE_PW, database: db.name, localAddress: from })).message).toMatch(/too many failed login attempts/);
      expect((await loginError(b, { user: 'mallory@app-db', password: MALLORY_PW, database: db.name })).message).toMatch(/too many failed login attempts/);
      // ... but not other people on other hosts.
      expect((await psql(b, alice(), 'select 8')).stdout).toBe('8');
    });
  });
});
