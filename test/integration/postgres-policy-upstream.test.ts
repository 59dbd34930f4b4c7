/**
 * Postgres adapter end to end against private upstream servers with each
 * auth method and TLS mode wicket supports: psql -> wicket (SCRAM, wicket's
 * password) -> upstream (md5, scram-sha-256, cleartext password, TLS-only
 * with tls: require and tls: verify), plus a wrong upstream password.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPgServer, type PgServer } from '../support/pg-server.js';
import { auditEvents, psql, startBroker, waitFor, type Broker } from '../support/wicket-pg.js';

const PW = 'alice-correct-horse-1';
const UPSTREAM_PW = 'Upstream-s3cret-9f2c';
const WRONG_UPSTREAM_PW = 'Wrong-upstream-pw-77aa';

describe('postgres adapter: upstream auth methods and TLS', () => {
  let b: Broker;
  const servers: Record<'md5' | 'scram' | 'password' | 'tls', PgServer> = {} as never;

  beforeAll(async () => {
    const users = [{ name: 'app', password: UPSTREAM_PW }];
    const [md5, scram, password, tls] = await Promise.all([
      startPgServer({ auth: 'md5', users }),
      startPgServer({ auth: 'scram-sha-256', users }),
      startPgServer({ auth: 'password', users }),
      startPgServer({ auth: 'scram-sha-256', sslOnly: true, users }),
    ]);
    Object.assign(servers, { md5, scram, password, tls });
    const t = (name: string, s: PgServer, extra = ''): string =>
      `  - { name: ${name}, segment: dev, protocol: postgres, address: 127.0.0.1:${s.port}, user: app, password: "file:upstream.pw", database: postgres${extra} }`;
    b = await startBroker([
      'data_dir: ./data',
      'listen: { postgres: 127.0.0.1:0 }',
      'segments: [{ name: dev }]',
      'targets:',
      t('md5-db', md5, ', tls: disable'),
      t('scram-db', scram, ', tls: disable'),
      t('cleartext-db', password, ', tls: disable'),
      t('tls-require-db', tls, ', tls: require'),
      t('tls-verify-db', tls, ', tls: verify, ca: "file:upstream-ca.pem"'),
      t('plain-to-tls-only-db', tls, ', tls: disable'),
      `  - { name: wrong-pw-db, segment: dev, protocol: postgres, address: 127.0.0.1:${scram.port}, user: app, password: "file:wrong.pw", database: postgres, tls: disable }`,
      'roles:',
      '  - { name: developer, allow: [{ segments: [dev], protocols: [postgres], access: write }] }',
      'users:',
      '  - { name: alice, roles: [developer] }',
      '',
    ].join('\n'), { alice: PW }, { 'upstream.pw': `${UPSTREAM_PW}\n`, 'wrong.pw': `${WRONG_UPSTREAM_PW}\n`, 'upstream-ca.pem': tls.certPem! });
  });

  afterAll(async () => {
    await b?.stop();
    await Promise.all(Object.values(servers).map((s) => s.stop()));
  });

  const via = (target: string, sql: string) => psql(b, { user: `alice@${target}`, password: PW, dbname: 'postgres' }, sql);
  /** What the upstream sees of the wicket connection: its role, whether it is TLS, and the application_name. */
  const WHO = "select current_user, coalesce((select ssl::text from pg_stat_ssl where pid = pg_backend_pid()), 'f'), current_setting('application_name'), 1";

  it.each([
    ['md5-db', 'false'],
    ['scram-db', 'false'],
    ['cleartext-db', 'false'],
    ['tls-require-db', 'true'],
    ['tls-verify-db', 'true'],
  ])('psql through wicket to %s runs select 1 (upstream TLS: %s)', async (target, ssl) => {
    const r = await via(target, 'select 1');
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('1');
    const who = await via(target, WHO);
    const [user, tls, app, one] = who.stdout.split('|');
    expect({ user, tls, one }).toEqual({ user: 'app', tls: ssl === 'true' ? 'true' : 'false', one: '1' });
    expect(app).toMatch(/^wicket:alice:/);
  });

  it('tls: verify with the wrong CA is refused and the session recorded as failed', async () => {
    // Same server, but a CA that did not sign its certificate (wicket's own): written next to the config, then reloaded.
    writeFileSync(join(b.dir, 'upstream-ca.pem'), readFileSync(join(b.dataDir, 'tls', 'cert.pem'), 'utf8'));
    const reload = b.running.reload();
    expect(reload.ok).toBe(true);
    try {
      const r = await via('tls-verify-db', 'select 1');
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/FATAL: {2}upstream tls-verify-db:.*(certificate|verify|self.signed)/i);
      const s = await waitFor(async () => (await b.running.store.listSessions({ target: 'tls-verify-db' })).find((x) => x.status !== 'live' && x.status !== 'ended'));
      expect(s.status).toBe('failed');
    } finally {
      writeFileSync(join(b.dir, 'upstream-ca.pem'), servers.tls.certPem!);
      expect(b.running.reload().ok).toBe(true);
    }
    expect((await via('tls-verify-db', 'select 2')).stdout).toBe('2');
  });

  it('a TLS-only upstream reached with tls: disable is refused by the server, not bypassed', async () => {
    const r = await via('plain-to-tls-only-db', 'select 1');
    expect(r.code).not.toBe(0);
    // The person learns that the upstream refused, not the server's pg_hba text; the operator gets it in the session's end reason.
    expect(r.stderr).toMatch(/FATAL: {2}upstream plain-to-tls-only-db refused wicket's login; the reason is in wicket's log and audit/);
    expect(r.stderr).not.toMatch(/pg_hba|no encryption/);
    const s = await waitFor(async () => (await b.running.store.listSessions({ target: 'plain-to-tls-only-db' })).find((x) => x.status !== 'live'));
    expect(s.endReason).toMatch(/pg_hba|no encryption/);
  });

  it('a wrong upstream password: the client gets an error without the password, the session is recorded as failed', async () => {
    const r = await via('wrong-pw-db', 'select 1');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/FATAL: {2}/);
    expect(r.stderr).toContain('wrong-pw-db');
    expect(r.stderr).not.toContain('password authentication failed for user');
    for (const secret of [WRONG_UPSTREAM_PW, UPSTREAM_PW]) expect(r.stderr).not.toContain(secret);
    const s = await waitFor(async () => (await b.running.store.listSessions({ target: 'wrong-pw-db' })).find((x) => x.status !== 'live'));
    expect(s.status).toBe('failed');
    expect(s.endReason).toBeTruthy();
    expect(s.endReason).not.toContain(WRONG_UPSTREAM_PW);
    const ends = (await auditEvents(b, 'session.end')).filter((e) => e.sessionId === s.id);
    expect(ends).toHaveLength(1);
    expect(ends[0]!.data.status).toBe('failed');
    expect(JSON.stringify(await auditEvents(b, 'session.end'))).not.toContain(WRONG_UPSTREAM_PW);
  });
});
