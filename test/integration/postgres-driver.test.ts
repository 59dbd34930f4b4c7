/**
 * The `pg` driver through wicket against the machine's PostgreSQL on
 * 127.0.0.1:5432: parameters (text and binary), binary results, pipelined
 * queries, LISTEN/NOTIFY between two sessions, COPY both ways over the raw
 * protocol, and a 1,000,000-row result with the broker's memory bounded.
 * The broker runs in this process, so process RSS is the broker's (plus
 * the test client's) memory.
 */
import { EventEmitter } from 'node:events';
import v8 from 'node:v8';
import vm from 'node:vm';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { directSql, startBroker, type Broker, type QueryData } from '../support/pg-broker.js';

let b: Broker;
const clients: pg.Client[] = [];
async function connect(extra: pg.ClientConfig = {}): Promise<pg.Client> {
  const c = b.client('local', 'postgres', extra);
  clients.push(c);
  await c.connect();
  return c;
}
/** The session id wicket put into application_name (wicket:<user>:<session id>:<app>). */
async function sessionId(c: pg.Client): Promise<string> {
  const r = await c.query<{ app: string }>("select current_setting('application_name') as app");
  const m = /^wicket:alice:([a-z0-9]+):/.exec(r.rows[0]!.app);
  expect(m, r.rows[0]!.app).not.toBeNull();
  return m![1]!;
}
/** Recorded statements of a session after its `select current_setting('application_name')`. */
async function recorded(id: string): Promise<QueryData[]> {
  const all = await b.queries(id);
  const i = all.findIndex((q) => q.sql.includes("current_setting('application_name')"));
  return all.slice(i + 1);
}

/**
 * A hand-driven exchange on pg's connection (pg calls submit() when it is
 * this query's turn, then routes the server's answers here until
 * ReadyForQuery): lets the tests send COPY data, CopyFail and Describe
 * Statement, which the driver alone does not.
 */
class Raw extends EventEmitter {
  readonly rows: (Buffer | null)[][] = [];
  readonly tags: string[] = [];
  readonly copyOut: Buffer[] = [];
  error: Error | undefined;
  readonly done: Promise<this>;
  private finish!: () => void;
  constructor(private readonly send: (c: RawConnection) => void, private readonly copyIn: readonly Buffer[] | { fail: string } = []) {
    super();
    this.done = new Promise((r) => (this.finish = () => r(this)));
  }
  submit(c: RawConnection): void { this.send(c); }
  handleRowDescription(): void {}
  handleDataRow(msg: { fields: (Buffer | string | null)[] }): void { this.rows.push(msg.fields.map((f) => (f === null ? null : Buffer.from(f)))); }
  handleCommandComplete(msg: { text: string }): void { this.tags.push(msg.text); }
  handleEmptyQuery(): void {}
  handlePortalSuspended(): void {}
  handleCopyInResponse(c: RawConnection): void {
    if ('fail' in this.copyIn) return c.sendCopyFail(this.copyIn.fail);
    for (const chunk of this.copyIn) c.sendCopyFromChunk(chunk);
    c.endCopyFrom();
  }
  handleCopyData(msg: { chunk: Buffer }): void { this.copyOut.push(Buffer.from(msg.chunk)); }
  // pg forgets the active query on ErrorResponse, so ReadyForQuery never reaches us after an error.
  handleError(err: Error): void { this.error = err; this.finish(); }
  handleReadyForQuery(): void { this.finish(); }
}
interface RawConnection {
  query(text: string): void;
  parse(m: { name: string; text: string; types: number[] }): void;
  bind(m: { portal: string; statement: string; values: unknown[]; binary?: boolean }): void;
  describe(m: { type: 'S' | 'P'; name: string }): void;
  execute(m: { portal: string; rows?: number }): void;
  sync(): void;
  sendCopyFromChunk(b: Buffer): void;
  endCopyFrom(): void;
  sendCopyFail(m: string): void;
}
const raw = (c: pg.Client, r: Raw): Promise<Raw> => {
  void c.query(r as unknown as pg.QueryConfig);
  return r.done;
};

beforeAll(async () => {
  b = await startBroker({ targets: '  - { name: local, segment: dev, protocol: postgres, address: 127.0.0.1:5432, user: postgres, database: postgres, tls: disable }' });
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
  await b?.stop();
});

describe('pg driver', () => {
  it('text parameters and NULL are recorded on the execute with the SQL', async () => {
    const c = await connect();
    const id = await sessionId(c);
    const r = await c.query('select $1::text as a, $2::int + 1 as b, $3::text as c', ['héllo wörld', 41, null]);
    expect(r.rows).toEqual([{ a: 'héllo wörld', b: 42, c: null }]);
    await c.query({ name: 'named_one', text: 'select $1::int * 2 as x', values: [21] });
    const again = await c.query({ name: 'named_one', text: 'select $1::int * 2 as x', values: [50] });
    expect(again.rows).toEqual([{ x: 100 }]);
    await c.end();
    await b.endedSession(id);
    expect((await recorded(id)).map((q) => ({ step: q.step, sql: q.sql, statement: q.statement, params: q.params, rows: q.rows, tag: q.tag }))).toEqual([
      { step: 'execute', sql: 'select $1::text as a, $2::int + 1 as b, $3::text as c', statement: '', rows: 1, tag: 'SELECT 1',
        params: [{ type: null, format: 'text', value: 'héllo wörld' }, { type: null, format: 'text', value: '41' }, { type: null, format: 'null', value: null }] },
      { step: 'execute', sql: 'select $1::int * 2 as x', statement: 'named_one', rows: 1, tag: 'SELECT 1', params: [{ type: null, format: 'text', value: '21' }] },
      { step: 'execute', sql: 'select $1::int * 2 as x', statement: 'named_one', rows: 1, tag: 'SELECT 1', params: [{ type: null, format: 'text', value: '50' }] },
    ]);
  });

  it('binary parameters are recorded as hex with the type OID (declared at Parse or learned from Describe Statement)', async () => {
    const c = await connect();
    const id = await sessionId(c);
    const bytes = Buffer.from([0x00, 0x01, 0x02, 0xfe, 0xff]);
    // Declared types: pg sends `types` in Parse (and uses it for result parsing, hence getTypeParser).
    const types = Object.assign([17], { getTypeParser: pg.types.getTypeParser });
    const r = await c.query({ text: 'select $1::bytea as b, length($1) as n', values: [bytes], types } as pg.QueryConfig);
    expect(r.rows).toEqual([{ b: bytes, n: 5 }]);
    // Undeclared types, Describe Statement first (what JDBC and others do): the server's ParameterDescription names them.
    const described = await raw(c, new Raw((k) => {
      k.parse({ name: 'with_describe', text: 'select length($1::bytea) + $2::int4 as n', types: [] });
      k.describe({ type: 'S', name: 'with_describe' });
      k.sync();
    }));
    expect(described.error).toBeUndefined();
    const run = await raw(c, new Raw((k) => {
      k.bind({ portal: '', statement: 'with_describe', values: [bytes, Buffer.from([0, 0, 0, 7])] });
      k.execute({ portal: '' });
      k.sync();
    }));
    expect(run.error).toBeUndefined();
    expect(run.rows.map((row) => row.map((f) => f?.toString()))).toEqual([['12']]);
    await c.end();
    await b.endedSession(id);
    const q = await recorded(id);
    expect(q.map((e) => [e.step, e.sql, e.params])).toEqual([
      ['execute', 'select $1::bytea as b, length($1) as n', [{ type: 17, format: 'binary', value: '000102feff' }]],
      ['execute', 'select length($1::bytea) + $2::int4 as n', [{ type: 17, format: 'binary', value: '000102feff' }, { type: 23, format: 'binary', value: '00000007' }]],
    ]);
  });

  it('binary results: the exact bytes of each binary column, and the driver sees what it sees directly', async () => {
    const c = await connect();
    const id = await sessionId(c);
    const text = "select 7::int4 as i, 'x'::text as t, '\\x0102'::bytea as b, 2.5::float8 as f, true as ok from generate_series(1, $1::int)";
    // Raw bytes: Bind with all result columns binary. (pg hands DataRow fields over as UTF-8 strings, so
    // the values are chosen to be valid UTF-8 in their binary form; 0xff would come back as U+FFFD.)
    const r = await raw(c, new Raw((k) => {
      k.parse({ name: '', text, types: [] });
      k.bind({ portal: '', statement: '', values: ['3'], binary: true });
      k.execute({ portal: '' });
      k.sync();
    }));
    expect(r.error).toBeUndefined();
    expect(r.rows.map((row) => row.map((f) => f!.toString('hex')))).toEqual(Array(3).fill(['00000007', '78', '0102', '4004000000000000', '01']));
    // The driver's own binary path (its decoding is its business): identical through wicket and direct.
    const viaDriver = await c.query({ text, values: [3], binary: true, rowMode: 'array' } as pg.QueryArrayConfig);
    expect(viaDriver.fields.map((f) => f.format)).toEqual(['binary', 'binary', 'binary', 'binary', 'binary']);
    const direct = new pg.Client({ host: '127.0.0.1', port: 5432, user: 'postgres', database: 'postgres' });
    await direct.connect();
    const expected = await direct.query({ text, values: [3], binary: true, rowMode: 'array' } as pg.QueryArrayConfig);
    await direct.end();
    expect(viaDriver.rows).toEqual(expected.rows);
    await c.end();
    await b.endedSession(id);
    expect((await recorded(id)).map((q) => [q.step, q.sql, q.rows, q.tag])).toEqual([['execute', text, 3, 'SELECT 3'], ['execute', text, 3, 'SELECT 3']]);
  });

  it('pipelined queries (several on the wire before the first answer, one failing) are each recorded in order', async () => {
    const c = await connect({ pipeline: true } as pg.ClientConfig);
    const id = await sessionId(c);
    const results = await Promise.allSettled([
      c.query('select 1 as n'),
      c.query('select $1::int as n', [2]),
      c.query({ name: 'pp', text: 'select $1::int + 100 as n', values: [3] }),
      c.query('select 1 / $1::int as n', [0]),
      c.query({ name: 'pp', text: 'select $1::int + 100 as n', values: [5] }),
      c.query('select 6 as n; select 7 as n'),
      c.query('select * from wicket_no_such_table'),
      c.query('select $1::text as n', ['eight']),
    ]);
    const seen = results.map((r) => (r.status === 'fulfilled' ? (Array.isArray(r.value) ? r.value.map((x: pg.QueryResult) => x.rows[0].n) : r.value.rows[0].n) : (r.reason as { code: string }).code));
    expect(seen).toEqual([1, 2, 103, '22012', 105, [6, 7], '42P01', 'eight']);
    await c.end();
    await b.endedSession(id);
    expect((await recorded(id)).map((q) => [q.step, q.sql, q.params?.map((p) => p.value) ?? null, q.rows, q.error?.code ?? null])).toEqual([
      ['query', 'select 1 as n', null, 1, null],
      ['execute', 'select $1::int as n', ['2'], 1, null],
      ['execute', 'select $1::int + 100 as n', ['3'], 1, null],
      // Planning an unnamed statement folds 1 / 0 at Bind: the server fails the Bind, and the event says so.
      ['bind', 'select 1 / $1::int as n', ['0'], null, '22012'],
      ['execute', 'select $1::int + 100 as n', ['5'], 1, null],
      ['query', 'select 6 as n', null, 1, null],
      ['query', 'select 7 as n', null, 1, null],
      ['query', 'select * from wicket_no_such_table', null, null, '42P01'],
      ['execute', 'select $1::text as n', ['eight'], 1, null],
    ]);
  });

  it('LISTEN/NOTIFY between two wicket sessions', async () => {
    const listener = await connect();
    const notifier = await connect();
    const [lid, nid] = [await sessionId(listener), await sessionId(notifier)];
    const got: { channel: string; payload?: string }[] = [];
    const both = new Promise<void>((resolve) => listener.on('notification', (n) => { got.push({ channel: n.channel, payload: n.payload }); if (got.length === 2) resolve(); }));
    await listener.query('LISTEN wicket_channel');
    await notifier.query("NOTIFY wicket_channel, 'first'");
    await notifier.query("select pg_notify('wicket_channel', $1)", ['second']);
    await both;
    expect(got).toEqual([{ channel: 'wicket_channel', payload: 'first' }, { channel: 'wicket_channel', payload: 'second' }]);
    // The listener keeps working after asynchronous NotificationResponses.
    expect((await listener.query('select 1 as one')).rows).toEqual([{ one: 1 }]);
    await listener.end();
    await notifier.end();
    await b.endedSession(lid);
    await b.endedSession(nid);
    expect((await recorded(lid)).map((q) => [q.sql, q.tag])).toEqual([['LISTEN wicket_channel', 'LISTEN'], ['select 1 as one', 'SELECT 1']]);
    expect((await recorded(nid)).map((q) => [q.sql, q.tag, q.params?.[0]?.value])).toEqual([
      ["NOTIFY wicket_channel, 'first'", 'NOTIFY', undefined],
      ["select pg_notify('wicket_channel', $1)", 'SELECT 1', 'second'],
    ]);
  });

  it('COPY FROM STDIN and COPY TO STDOUT over the protocol, and CopyFail', async () => {
    const c = await connect();
    const id = await sessionId(c);
    await c.query('create temp table copied (id int, name text)');
    const lines = Array.from({ length: 10_000 }, (_, i) => `${i + 1}\tname ${i + 1}\n`);
    const input = Buffer.from(lines.join(''));
    // Several CopyData messages, split at arbitrary points (not at line ends).
    const chunks = [input.subarray(0, 1000), input.subarray(1000, 70_001), input.subarray(70_001)];
    const copyIn = await raw(c, new Raw((k) => k.query('COPY copied FROM STDIN'), chunks));
    expect(copyIn.error).toBeUndefined();
    expect(copyIn.tags).toEqual(['COPY 10000']);
    expect((await c.query('select count(*)::int as n, sum(id)::int as s from copied')).rows).toEqual([{ n: 10_000, s: 50_005_000 }]);
    const copyOut = await raw(c, new Raw((k) => k.query('COPY (select * from copied order by id) TO STDOUT')));
    expect(copyOut.tags).toEqual(['COPY 10000']);
    expect(Buffer.concat(copyOut.copyOut).equals(input)).toBe(true);
    const failed = await raw(c, new Raw((k) => k.query('COPY copied FROM STDIN'), { fail: 'client gave up' }));
    expect(failed.error?.message).toBe('COPY from stdin failed: client gave up');
    expect((await c.query('select count(*)::int as n from copied')).rows).toEqual([{ n: 10_000 }]);
    await c.end();
    await b.endedSession(id);
    const q = await recorded(id);
    expect(q.map((e) => [e.sql, e.rows, e.tag ?? null, e.bytes ?? null, e.error?.code ?? null])).toEqual([
      ['create temp table copied (id int, name text)', 0, 'CREATE TABLE', null, null],
      ['COPY copied FROM STDIN', 10_000, 'COPY 10000', input.length, null],
      ['select count(*)::int as n, sum(id)::int as s from copied', 1, 'SELECT 1', null, null],
      ['COPY (select * from copied order by id) TO STDOUT', 10_000, 'COPY 10000', input.length, null],
      ['COPY copied FROM STDIN', null, null, null, '57014'],
      ['select count(*)::int as n from copied', 1, 'SELECT 1', null, null],
    ]);
  });
});

describe('the server ends the session', () => {
  it('pg_terminate_backend upstream: the client gets the FATAL, the recording keeps it, the session ends', async () => {
    const c = await connect();
    const errors: string[] = [];
    c.on('error', (e) => errors.push(e.message));
    const id = await sessionId(c);
    const pid = (await c.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]!.pid;
    expect(await directSql(`select pg_terminate_backend(${pid})`)).toBe('t');
    await b.endedSession(id);
    await expect.poll(() => errors[0]).toBe('terminating connection due to administrator command');
    expect((await recorded(id)).map((q) => [q.step, q.sql, q.error?.code ?? null])).toEqual([
      ['query', 'select pg_backend_pid() as pid', null],
      ['other', '(outside any statement)', '57P01'],
    ]);
  });
});

describe('a 1,000,000-row result', () => {
  const SQL = 'select g, md5(g::text) from generate_series(1,1000000) g';
  const MiB = 1024 * 1024;
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as () => void;
  const rss = (): number => process.memoryUsage().rss;
  const baseline = (): number => {
    gc();
    gc();
    return rss();
  };

  it('streams to a reading client with all rows delivered and broker RSS growth under 64 MiB', async () => {
    const c = await connect();
    const id = await sessionId(c);
    const base = baseline();
    let peak = base;
    const sampler = setInterval(() => (peak = Math.max(peak, rss())), 10);
    let rows = 0;
    let last = 0;
    let ordered = true;
    const q = new pg.Query({ text: SQL, rowMode: 'array' } as pg.QueryConfig);
    await new Promise<void>((resolve, reject) => {
      q.on('row', (row: [number, string]) => {
        rows++;
        if (row[0] !== last + 1) ordered = false;
        last = row[0];
        if (rows % 10_000 === 0) peak = Math.max(peak, rss());
      });
      q.on('end', () => resolve());
      q.on('error', reject);
      void c.query(q);
    });
    clearInterval(sampler);
    peak = Math.max(peak, rss());
    expect(rows).toBe(1_000_000);
    expect(ordered).toBe(true);
    expect((peak - base) / MiB).toBeLessThan(64);
    await c.end();
    await b.endedSession(id);
    expect((await recorded(id)).map((e) => [e.sql, e.rows, e.tag])).toEqual([[SQL, 1_000_000, 'SELECT 1000000']]);
  });

  it('a client that stops reading holds the upstream in ClientWrite (backpressure); memory stays bounded; nothing is lost', async () => {
    const c = await connect();
    const id = await sessionId(c);
    const stream = (c as unknown as { connection: { stream: NodeJS.ReadableStream } }).connection.stream;
    const base = baseline();
    let rows = 0;
    let paused = false;
    const q = new pg.Query({ text: SQL, rowMode: 'array' } as pg.QueryConfig);
    const done = new Promise<void>((resolve, reject) => {
      q.on('row', () => {
        rows++;
        if (rows === 1000 && !paused) {
          paused = true;
          stream.pause();
        }
      });
      q.on('end', () => resolve());
      q.on('error', reject);
    });
    void c.query(q);
    // The server can only be stuck writing to wicket if wicket stopped reading from it.
    const waitEvent = `select wait_event from pg_stat_activity where application_name like 'wicket:alice:${id}:%' and state = 'active'`;
    await expect.poll(() => directSql(waitEvent), { timeout: 15_000, interval: 50 }).toBe('ClientWrite');
    await new Promise((r) => setTimeout(r, 1500));
    expect(await directSql(waitEvent)).toBe('ClientWrite');
    expect((rss() - base) / MiB).toBeLessThan(64);
    expect(paused).toBe(true);
    stream.resume();
    await done;
    expect(rows).toBe(1_000_000);
    await c.end();
    await b.endedSession(id);
    expect((await recorded(id)).map((e) => [e.rows, e.tag])).toEqual([[1_000_000, 'SELECT 1000000']]);
  });
});
