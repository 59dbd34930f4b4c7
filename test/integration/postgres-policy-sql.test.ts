/**
 * Postgres adapter, SQL policy and session control, with real clients:
 * `access: read` and its bypass attempts, `deny_sql` classes over the simple
 * and the extended protocol (the refused-Parse injection in relay.ts), query
 * cancel through wicket's own BackendKeyData, and `wicket kill` /
 * `wicket segment lock` run as CLI subprocesses against the live broker.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { wicketAsync } from '../support/cli.js';
import { createToken } from '../../src/auth/tokens.js';
import {
  Raw, auditEvents, cancelRequest, liveSession, loginError, machineDb, pgConnect, psql, psqlStart, rejection, sleep, startBroker, waitFor,
  type Broker,
} from '../support/wicket-pg.js';

const PW = 'alice-correct-horse-1';
type Client = Awaited<ReturnType<typeof pgConnect>>;
/** pg's extended-protocol switch and backend key are not in @types/pg. */
type Extended = pg.QueryConfig & { queryMode?: 'extended' };
const keyOf = (c: Client): { pid: number; secret: number } => {
  const k = c as unknown as { processID: number; secretKey: number };
  return { pid: k.processID, secret: k.secretKey };
};

describe('postgres adapter: SQL policy, cancel, kill and lock', () => {
  let b: Broker;
  let db: Awaited<ReturnType<typeof machineDb>>;
  const open: Client[] = [];
  const connect = async (target: 'ro-db' | 'rw-db'): Promise<Client> => {
    const c = await pgConnect(b, { user: `alice@${target}`, password: PW, database: db.name });
    open.push(c);
    return c;
  };
  const count = async (): Promise<number> => Number(await db.sql('select count(*) from t'));

  beforeAll(async () => {
    db = await machineDb('wicket_sql');
    await db.sql('create table t (id int primary key, note text); insert into t select g, \'row \' || g from generate_series(1, 5) g');
    const t = (name: string, segment: string): string =>
      `  - { name: ${name}, segment: ${segment}, protocol: postgres, address: 127.0.0.1:5432, user: postgres, database: ${db.name}, tls: disable }`;
    b = await startBroker([
      'data_dir: ./data',
      'listen: { postgres: 127.0.0.1:0 }',
      'segments: [{ name: reports }, { name: ops }]',
      'targets:',
      t('ro-db', 'reports'),
      t('rw-db', 'ops'),
      'roles:',
      '  - { name: reader, allow: [{ segments: [reports], protocols: [postgres], access: read }] }',
      '  - { name: writer, allow: [{ segments: [ops], protocols: [postgres], access: write, deny_sql: [ddl, delete_without_where] }] }',
      'users:',
      '  - { name: alice, roles: [reader, writer] }',
      '',
    ].join('\n'), { alice: PW });
  });

  afterAll(async () => {
    for (const c of open) await c.end().catch(() => undefined);
    await b?.stop();
    await db?.drop();
  });

  describe('access: read', () => {
    it('reads work; create table fails (read-only upstream session or the guard)', async () => {
      const c = await connect('ro-db');
      expect((await c.query('select count(*)::int as n from t')).rows).toEqual([{ n: 5 }]);
      expect((await c.query('show default_transaction_read_only')).rows[0].default_transaction_read_only).toBe('on');
      const e = await rejection(c.query('create table evil (i int)'));
      expect(['25006', '42501']).toContain(e.code);
      expect((await c.query('select 1 as ok')).rows).toEqual([{ ok: 1 }]);
      const w = await rejection(c.query('insert into t values (99, \'x\')'));
      expect(w.code).toBe('25006');
      expect(await count()).toBe(5);
    });

    it('statements that would turn the session read-write are refused with 42501 naming the rule; the session goes on', async () => {
      const before = new Set(b.running.broker.liveSessions().map((s) => s.id));
      const c = await connect('ro-db');
      const id = await liveSession(b, 'alice', 'ro-db', before);
      const bypasses = [
        'SET default_transaction_read_only = off',
        'SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE',
        'BEGIN READ WRITE',
        "select set_config('default_transaction_read_only','off',false)",
      ];
      for (const sql of bypasses) {
        const e = await rejection(c.query(sql));
        expect(e.code, sql).toBe('42501');
        expect(e.message, sql).toMatch(/^wicket: statement refused by rule reader\.allow\[0\]/);
        expect((e as { where?: string }).where, sql).toBeUndefined();
        expect((await c.query('select 1 as ok')).rows, `after ${sql}`).toEqual([{ ok: 1 }]);
      }
      // Nothing got through: still read-only, and no transaction was left open.
      expect((await c.query('show default_transaction_read_only')).rows[0].default_transaction_read_only).toBe('on');
      expect((await rejection(c.query('insert into t values (98, \'x\')'))).code).toBe('25006');
      const refused = (await auditEvents(b, 'refused')).filter((e) => e.sessionId === id);
      expect(refused.map((e) => e.data.what)).toEqual(bypasses);
      expect(refused.every((e) => e.data.rule === 'reader.allow[0]')).toBe(true);
    });

    it('psql shows the refusal as an ERROR and keeps going', async () => {
      const r = await psql(b, { user: 'alice@ro-db', password: PW, dbname: db.name }, 'SET default_transaction_read_only = off');
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain('ERROR:  wicket: statement refused by rule reader.allow[0] (access: read)');
      expect(r.stderr).not.toContain('CONTEXT');
    });
  });

  describe('deny_sql: [ddl, delete_without_where] on a write rule', () => {
    let c: Client;
    beforeAll(async () => {
      c = await connect('rw-db');
    });

    it('drop table and a delete without WHERE inside a CTE are refused with 42501', async () => {
      const drop = await rejection(c.query('drop table t'));
      expect(drop.code).toBe('42501');
      expect(drop.message).toBe('wicket: statement refused by rule writer.allow[0] (deny_sql: ddl)');
      const cte = await rejection(c.query('with d as (delete from t returning *) select count(*) from d'));
      expect(cte.code).toBe('42501');
      expect(cte.message).toContain('deny_sql: delete_without_where');
      expect(await count()).toBe(5);
      const r = await psql(b, { user: 'alice@rw-db', password: PW, dbname: db.name }, 'drop table t');
      expect(r.stderr).toContain('ERROR:  wicket: statement refused by rule writer.allow[0] (deny_sql: ddl)');
      expect(await count()).toBe(5);
    });

    it('a delete with WHERE and a dollar-quoted "drop table" string are allowed', async () => {
      const del = await c.query('delete from t where id = 1');
      expect(del.rowCount).toBe(1);
      expect((await c.query('select $$drop table t$$ as s')).rows).toEqual([{ s: 'drop table t' }]);
      expect(await count()).toBe(4);
    });

    it('a refused statement in the extended protocol (unnamed and named) is 42501 and the connection stays usable', async () => {
      const unnamed = await rejection(c.query({ text: 'delete from t', values: [], queryMode: 'extended' } as Extended));
      expect(unnamed.code).toBe('42501');
      expect(unnamed.message).toContain('deny_sql: delete_without_where');
      expect((await c.query('select count(*)::int as n from t')).rows).toEqual([{ n: 4 }]);
      const named = await rejection(c.query({ name: 'wipe', text: 'delete from t' }));
      expect(named.code).toBe('42501');
      expect((await c.query({ name: 'pick', text: 'select note from t where id = $1', values: [2] })).rows).toEqual([{ note: 'row 2' }]);
      expect((await c.query({ name: 'pick', text: 'select note from t where id = $1', values: [3] })).rows).toEqual([{ note: 'row 3' }]);
      const dropX = await rejection(c.query({ text: 'drop table t', values: [], queryMode: 'extended' } as Extended));
      expect(dropX.code).toBe('42501');
      // an allowed parameterised delete over the extended protocol
      expect((await c.query('delete from t where id = $1', [5])).rowCount).toBe(1);
      expect(await count()).toBe(3);
      const refused = (await auditEvents(b, 'refused')).map((e) => e.data.what);
      expect(refused).toEqual(expect.arrayContaining(['delete from t', 'drop table t']));
    });
    it("a refused Parse leaves the client's unnamed statement intact, and two refusals in a row both say 42501", async () => {
      const { encodeBind, encodeExecute, encodeParse, encodeSync } = await import('../../protocols/postgres/frontend.js');
      const { backendMessages, errorFields, scramUpToFinal } = await import('../support/wicket-pg.js');
      const raw = new Raw(b);
      const rfq = (n: number) => (r: Raw): boolean => backendMessages(r.data).filter((m) => m.type === 'Z').length >= n;
      await raw.send(await scramUpToFinal(raw, 'alice@rw-db', PW, db.name));
      await raw.until(rfq(1));
      await raw.send(encodeParse('', 'select 41+1', []), encodeSync());
      await raw.until(rfq(2));
      await raw.send(encodeParse('wipe', 'delete from t', []), encodeSync());
      await raw.until(rfq(3));
      await raw.send(encodeParse('wipe2', 'drop table t', []), encodeSync());
      await raw.until(rfq(4));
      await raw.send(encodeBind('', '', [], [], []), encodeExecute('', 0), encodeSync());
      const r = await raw.until(rfq(5));
      raw.destroy();
      const msgs = backendMessages(r.data);
      const errors = msgs.filter((m) => m.type === 'E').map((m) => errorFields(m.body));
      expect(errors.map((e) => e.C)).toEqual(['42501', '42501']);
      const row = msgs.find((m) => m.type === 'D');
      expect(row?.body.subarray(6).toString()).toBe('42');
      // wicket's own Close/Parse/Bind answers never reach the client
      expect(msgs.filter((m) => m.type === '3')).toEqual([]);
    });
  });

  describe('cancel', () => {
    it('a CancelRequest with an unknown key does nothing; the right key cancels pg_sleep with 57014', async () => {
      const c = await connect('rw-db');
      const { pid, secret } = keyOf(c);
      expect(pid).toBeGreaterThan(0);
      const sendCancel = async (p: number, key: Buffer): Promise<void> => {
        const raw = new Raw(b);
        await raw.send(cancelRequest(p, key));
        expect((await raw.closeWait()).closed).toBe(true);
      };
      const t0 = Date.now();
      const slow = c.query('select pg_sleep(1.2), \'finished\' as s');
      await sleep(300);
      const wrong = randomBytes(4);
      if (wrong.readInt32BE(0) === secret) wrong[0]! ^= 0xff;
      await sendCancel(pid, wrong); // right pid, wrong secret
      await sendCancel(pid ^ 0x5a5a5a, randomBytes(4)); // unknown pid
      expect((await slow).rows[0].s).toBe('finished');
      expect(Date.now() - t0).toBeGreaterThanOrEqual(1200);

      const key = Buffer.alloc(4);
      key.writeInt32BE(secret);
      const t1 = Date.now();
      const long = rejection(c.query('select pg_sleep(30)'));
      await sleep(300);
      await sendCancel(pid, key);
      const e = await long;
      expect(e.code).toBe('57014');
      expect(Date.now() - t1).toBeLessThan(5000);
      expect((await c.query('select 1 as ok')).rows).toEqual([{ ok: 1 }]);
    });
  });

  describe('kill and lock', () => {
    it('wicket kill ends a running psql within ~1 s with FATAL 57P01 "terminated by wicket: <reason>"', async () => {
      const before = new Set(b.running.broker.liveSessions().map((s) => s.id));
      const p = psqlStart(b, { user: 'alice@rw-db', password: PW, dbname: db.name }, ['select pg_sleep(30)']);
      const id = await liveSession(b, 'alice', 'rw-db', before);
      await sleep(200);
      const k = await wicketAsync(['kill', id, '--reason', 'drill 7', '--config', b.cfg]);
      expect(k.stderr).toBe('');
      expect(k.code).toBe(0);
      const killedAt = Date.now();
      const r = await p.done;
      expect(Date.now() - killedAt).toBeLessThan(1500);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain('FATAL:  terminated by wicket: drill 7');
      const rec = await waitFor(async () => {
        const s = await b.running.store.getSession(id);
        return s && s.status !== 'live' ? s : null;
      });
      expect(rec).toMatchObject({ status: 'terminated', endReason: 'drill 7' });
    });

    it('wicket kill on an idle pg client reaches it as an error event with code 57P01', async () => {
      const before = new Set(b.running.broker.liveSessions().map((s) => s.id));
      const c = await connect('rw-db');
      const id = await liveSession(b, 'alice', 'rw-db', before);
      const k = await wicketAsync(['kill', id, '--reason', 'idle too long', '--config', b.cfg]);
      expect(k.code).toBe(0);
      const t0 = Date.now();
      await waitFor(() => (c.errors.length ? true : null), 3000, 'the error event');
      expect(Date.now() - t0).toBeLessThan(1500);
      expect(c.errors[0]).toMatchObject({ code: '57P01', severity: 'FATAL', message: 'terminated by wicket: idle too long' });
      await c.ended;
    });

    it('wicket token revoke ends the sessions opened with that token within ~1 s; a session opened with the password goes on', async () => {
      const { token, record } = await createToken(b.running.store, 'alice', { name: 'leaked', now: Date.now() });
      const before = new Set(b.running.broker.liveSessions().map((s) => s.id));
      const byToken = await pgConnect(b, { user: 'alice@rw-db', password: token, database: db.name });
      open.push(byToken);
      const id = await liveSession(b, 'alice', 'rw-db', before);
      const byPassword = await connect('rw-db');
      const start = (await auditEvents(b, 'session.start')).find((e) => e.sessionId === id)!;
      expect(start.data).toMatchObject({ authMethod: 'token', tokenId: record.id });
      const r = await wicketAsync(['token', 'revoke', record.id, '--config', b.cfg]);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      const t0 = Date.now();
      await waitFor(() => (byToken.errors.length ? true : null), 5000, 'the token session to end');
      expect(Date.now() - t0).toBeLessThan(2500);
      expect(byToken.errors[0]).toMatchObject({ code: '57P01', severity: 'FATAL', message: `terminated by wicket: the token it was opened with (${record.id}) was revoked` });
      await byToken.ended;
      await sleep(1200); // another token check has passed
      expect(byPassword.errors).toEqual([]);
      expect((await byPassword.query('select 1 as ok')).rows).toEqual([{ ok: 1 }]);
      expect((await loginError(b, { user: 'alice@rw-db', password: token, database: db.name })).code).toBe('28P01');
    });

    it('wicket segment lock ends the sessions of that segment only, and refuses new ones until unlocked', async () => {
      const ro = await connect('ro-db');
      const rw = await connect('rw-db');
      const roPsql = psqlStart(b, { user: 'alice@ro-db', password: PW, dbname: db.name }, ['select pg_sleep(30)']);
      await waitFor(() => (b.running.broker.liveSessions().filter((s) => s.target === 'ro-db').length >= 2 ? true : null));
      const lock = await wicketAsync(['segment', 'lock', 'reports', '--reason', 'breach drill', '--config', b.cfg]);
      expect(lock.stderr).toBe('');
      expect(lock.code).toBe(0);
      await waitFor(() => (ro.errors.length ? true : null), 2000, 'the ro-db session to end');
      expect(ro.errors[0]).toMatchObject({ code: '57P01', message: expect.stringMatching(/^terminated by wicket: segment reports locked: breach drill/) });
      const r = await roPsql.done;
      expect(r.stderr).toContain('FATAL:  terminated by wicket: segment reports locked: breach drill');
      // The other segment is untouched.
      await sleep(300);
      expect(rw.errors).toEqual([]);
      expect((await rw.query('select count(*)::int as n from t')).rows).toEqual([{ n: 3 }]);
      expect(b.running.broker.liveSessions().filter((s) => s.target === 'ro-db')).toEqual([]);
      const refused = await loginError(b, { user: 'alice@ro-db', password: PW, database: db.name });
      expect(refused.code).toBe('28000');
      expect(refused.message).toContain('breach drill');
      const unlock = await wicketAsync(['segment', 'unlock', 'reports', '--config', b.cfg]);
      expect(unlock.code).toBe(0);
      expect((await psql(b, { user: 'alice@ro-db', password: PW, dbname: db.name }, 'select 9')).stdout).toBe('9');
    });
  });
});
