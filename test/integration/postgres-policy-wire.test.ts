/**
 * Postgres adapter under hostile or broken input, over raw sockets: bad
 * startup packets, bad frames after a real login, idle connections, and a
 * burst of parallel logins. All the while one healthy pg session keeps
 * running queries, and it must not notice any of it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Raw, backendMessages, firstError, int32, machineDb, pgConnect, psql, scramUpToFinal, sleep, startBroker, startupPacket, waitFor,
  type Broker,
} from '../support/wicket-pg.js';

const PW = 'alice-correct-horse-1';
type Client = Awaited<ReturnType<typeof pgConnect>>;

describe('postgres adapter: bad input and load', () => {
  let b: Broker;
  let db: Awaited<ReturnType<typeof machineDb>>;
  const login = (): Promise<Client> => pgConnect(b, { user: 'alice@app-db', password: PW, database: db.name });

  /** The healthy session: one query after another until told to stop. */
  const healthy = { done: 0, errors: [] as unknown[], stop: false, loop: Promise.resolve() };

  beforeAll(async () => {
    db = await machineDb('wicket_wire');
    b = await startBroker([
      'data_dir: ./data',
      'listen: { postgres: 127.0.0.1:0 }',
      'limits: { max_message_bytes: 1048576 }',
      'segments: [{ name: dev }]',
      'targets:',
      `  - { name: app-db, segment: dev, protocol: postgres, address: 127.0.0.1:5432, user: postgres, database: ${db.name}, tls: disable }`,
      'roles:',
      '  - { name: developer, allow: [{ segments: [dev], protocols: [postgres], access: write }] }',
      'users:',
      '  - { name: alice, roles: [developer] }',
      '',
    ].join('\n'), { alice: PW });
    const c = await login();
    healthy.loop = (async () => {
      for (let i = 0; !healthy.stop; i++) {
        try {
          const r = await c.query('select $1::int + 1 as n, repeat(\'x\', 1000) as pad', [i]);
          if (r.rows[0].n !== i + 1 || r.rows[0].pad.length !== 1000) healthy.errors.push(new Error(`wrong answer at ${i}`));
          else healthy.done++;
        } catch (err) {
          healthy.errors.push(err);
          return;
        }
        await sleep(5);
      }
      await c.end();
    })();
  });

  afterAll(async () => {
    healthy.stop = true;
    await healthy.loop;
    await b?.stop();
    await db?.drop();
  });

  /** Sends `bytes` on a fresh connection; expects a FATAL 08P01 ErrorResponse (or nothing) and a close. */
  async function refusedBeforeLogin(...bytes: Buffer[]): Promise<Record<string, string> | null> {
    const raw = new Raw(b);
    await raw.send(...bytes);
    const res = await raw.closeWait();
    expect(res.closed, 'the broker closes the connection').toBe(true);
    const err = firstError(res.data);
    if (res.data.length) {
      expect(backendMessages(res.data).map((m) => m.type)).toEqual(['E']);
      expect(err).toMatchObject({ S: 'FATAL', C: '08P01' });
    }
    return err;
  }

  describe('before login', () => {
    it('HTTP garbage gets 08P01 saying it is not the PostgreSQL protocol', async () => {
      const err = await refusedBeforeLogin(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
      expect(err?.M).toMatch(/not the PostgreSQL protocol/);
    });

    it('startup lengths that are negative, below 8 or above 10000 are refused', async () => {
      for (const len of [-1, -100000, 0, 4, 7, 10001, 0x7fffffff]) {
        const err = await refusedBeforeLogin(int32(len), int32(196608), Buffer.from('user\0alice@app-db\0\0'));
        expect(err?.M, `length ${len}`).toMatch(/invalid startup packet length/);
      }
    });

    it('a truncated startup packet followed by a close is dropped quietly', async () => {
      const full = startupPacket({ user: 'alice@app-db', database: db.name });
      for (const cut of [2, 6, full.length - 1]) {
        const raw = new Raw(b);
        await raw.send(full.subarray(0, cut));
        await sleep(20);
        raw.sock.end();
        const res = await raw.closeWait();
        expect(res.closed).toBe(true);
        expect(backendMessages(res.data).map((m) => m.type)).not.toContain('R');
      }
    });

    it('a client that leaves right after proving its password leaves no live session behind', async () => {
      const before = b.running.broker.liveSessions().length;
      for (let i = 0; i < 5; i++) {
        const raw = new Raw(b);
        const final = await scramUpToFinal(raw, 'alice@app-db', PW, db.name);
        raw.sock.end(final);
        raw.sock.destroy();
      }
      await sleep(500);
      await waitFor(() => (b.running.broker.liveSessions().length === before ? true : null), 3000, 'the abandoned logins to end');
      const rows = await b.running.store.listSessions({ live: true, limit: 100 });
      expect(rows.length).toBe(before);
    });

    it('a client that connects and sends nothing (or half a packet) does not hold up others', async () => {
      const idle = [new Raw(b), new Raw(b)];
      await idle[0]!.send(Buffer.alloc(0));
      await idle[1]!.send(startupPacket({ user: 'alice@app-db' }).subarray(0, 7));
      const t0 = Date.now();
      const r = await psql(b, { user: 'alice@app-db', password: PW, dbname: db.name }, 'select 11');
      expect(r.stdout).toBe('11');
      expect(Date.now() - t0).toBeLessThan(3000);
      expect(idle.every((s) => !s.closed)).toBe(true);
      for (const s of idle) s.destroy();
    });
  });

  describe('after login', () => {
    /** Logs in with pg, writes `bytes` under it, and returns what pg saw: the error event and the end. */
    async function badFrame(bytes: Buffer): Promise<{ error: (Error & { code?: string; severity?: string }) | undefined }> {
      const c = await login();
      expect((await c.query('select 1 as ok')).rows).toEqual([{ ok: 1 }]);
      const stream = (c as unknown as { connection: { stream: NodeJS.WritableStream } }).connection.stream;
      stream.write(bytes);
      await Promise.race([c.ended, sleep(3000).then(() => { throw new Error('the broker did not close the connection'); })]);
      const error = c.errors[0] as (Error & { code?: string; severity?: string }) | undefined;
      if (error && error.code !== undefined) expect(error).toMatchObject({ code: '08P01', severity: 'FATAL' });
      return { error };
    }

    it('a negative message length ends the session with FATAL 08P01', async () => {
      const { error } = await badFrame(Buffer.concat([Buffer.from('Q'), int32(-1), Buffer.from('select 1\0')]));
      expect(error?.message).toMatch(/protocol violation/);
    });

    it('a message length below 4 ends the session with FATAL 08P01', async () => {
      for (const len of [0, 3]) {
        const { error } = await badFrame(Buffer.concat([Buffer.from('Q'), int32(len)]));
        expect(error?.message, `length ${len}`).toMatch(/protocol violation/);
      }
    });

    it('a length over limits.max_message_bytes ends the session with FATAL 08P01 at the header', async () => {
      const { error } = await badFrame(Buffer.concat([Buffer.from('Q'), int32(2 * 1024 * 1024), Buffer.from('select ')]));
      expect(error?.message).toMatch(/protocol violation/);
    });

    it('an unknown message type ends the session with FATAL 08P01', async () => {
      const { error } = await badFrame(Buffer.concat([Buffer.from('z'), int32(4)]));
      expect(error?.message).toMatch(/unknown message type/);
    });

    it('a message just under the cap still goes through', async () => {
      const c = await login();
      const big = 'y'.repeat(1024 * 1024 - 100);
      expect((await c.query('select length($1::text) as n', [big])).rows).toEqual([{ n: big.length }]);
      await c.end();
    });
  });

  describe('load', () => {
    it('50 parallel logins all succeed', async () => {
      const results = await Promise.all(Array.from({ length: 50 }, async (_, i) => {
        const c = await login();
        const r = await c.query('select $1::int as i', [i]);
        await c.end();
        return r.rows[0].i as number;
      }));
      expect(results).toEqual(Array.from({ length: 50 }, (_, i) => i));
    });

    it('the healthy session ran undisturbed the whole time, and the broker still takes logins', async () => {
      healthy.stop = true;
      await healthy.loop;
      expect(healthy.errors).toEqual([]);
      expect(healthy.done).toBeGreaterThanOrEqual(50);
      expect((await psql(b, { user: 'alice@app-db', password: PW, dbname: db.name }, 'select 12')).stdout).toBe('12');
      // every session above, the broken ones included, ends and is recorded as ended
      await waitFor(() => (b.running.broker.liveSessions().length === 0 ? true : null), 3000, 'all sessions to end');
      const rows = await b.running.store.listSessions({ target: 'app-db', limit: 1000 });
      expect(rows.length).toBeGreaterThanOrEqual(50 + 8);
      expect(rows.filter((s) => s.status === 'live')).toEqual([]);
    });
  });
});
