/**
 * Completeness of the query recording: 5,000+ statements through the
 * simple, extended (unnamed statement) and prepared (named statement)
 * paths against a PRIVATE PostgreSQL that authenticates wicket with
 * SCRAM-SHA-256 and logs every statement (log_statement = 'all'). Every
 * statement must be in wicket's recording, and the recording must agree,
 * session by session and in order, with what the server itself logged.
 */
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import pg from 'pg';
import { Writer } from '../../protocols/postgres/framing.js';
import { encodeBind, encodeClose, encodeDescribe, encodeExecute, encodeFlush, encodeParse, encodeQuery, encodeSync, encodeTerminate, FRONTEND } from '../../protocols/postgres/frontend.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBroker, type Broker, type QueryData } from '../support/pg-broker.js';
import { startPgServer, type PgServer } from '../support/pg-server.js';

const APP_PW = `app-${process.pid}-Upstream-pw`;
const SIMPLE_SINGLE = 500; // Query messages with one statement
const SIMPLE_MULTI = 300; // Query messages with five statements each
const EXTENDED = 1500;
const PREPARED = 1500;
const TOTAL = SIMPLE_SINGLE + SIMPLE_MULTI * 5 + EXTENDED + PREPARED;
const PIPELINE_DEPTH = 100;

/** One statement as both sides should describe it: its SQL and its parameters in log notation. */
interface Stmt { readonly kind: 'statement' | 'execute <unnamed>' | 'execute prep'; readonly sql: string; readonly params: string | null }

let server: PgServer;
let b: Broker;

beforeAll(async () => {
  server = await startPgServer({ auth: 'scram-sha-256', logStatements: true, users: [{ name: 'app', password: APP_PW }] });
  // Name the client application in every log line: that is how the server's log ties back to wicket sessions.
  await server.sql(`ALTER SYSTEM SET log_line_prefix = '%m [%p] app=%a '`);
  await server.sql('SELECT pg_reload_conf()');
  for (let i = 0; (await server.sql('SHOW log_line_prefix')) !== '%m [%p] app=%a'; i++) { // sql() trims
    if (i > 100) throw new Error('log_line_prefix did not take effect');
    await new Promise((r) => setTimeout(r, 50));
  }
  b = await startBroker({
    env: { WICKET_IT_APP_PW: APP_PW },
    targets: `  - { name: private, segment: dev, protocol: postgres, address: 127.0.0.1:${server.port}, user: app, password: env:WICKET_IT_APP_PW, database: postgres, tls: disable }`,
  });
});

afterAll(async () => {
  await b?.stop();
  await server?.stop();
});

/** Runs `jobs` on a pipelined client, PIPELINE_DEPTH at a time; returns the session id. */
async function drive(name: string, jobs: ((c: pg.Client) => Promise<pg.QueryResult | pg.QueryResult[]>)[]): Promise<{ id: string; results: (pg.QueryResult | pg.QueryResult[])[] }> {
  const c = b.client('private', 'postgres', { application_name: name, pipeline: true } as pg.ClientConfig);
  await c.connect();
  try {
    const app = (await c.query<{ a: string }>("select current_setting('application_name') as a")).rows[0]!.a;
    const id = /^wicket:alice:([a-z0-9]+):/.exec(app)![1]!;
    const results: (pg.QueryResult | pg.QueryResult[])[] = [];
    for (let i = 0; i < jobs.length; i += PIPELINE_DEPTH) {
      results.push(...(await Promise.all(jobs.slice(i, i + PIPELINE_DEPTH).map((j) => j(c)))));
    }
    return { id, results };
  } finally {
    await c.end();
  }
}

/** Log lines of wicket sessions: `... app=wicket:alice:<id>:<app> LOG:  statement: ...`, `execute <name>: ...`, `DETAIL:  parameters: ...`. */
function serverLog(): Map<string, Stmt[]> {
  const bySession = new Map<string, Stmt[]>();
  const line = /^\S+ \S+ \S+ \[\d+\] app=wicket:alice:([a-z0-9]+):\S* (LOG|DETAIL):  (.*)$/;
  for (const l of readFileSync(server.logFile, 'utf8').split('\n')) {
    const m = line.exec(l);
    if (!m) continue;
    const [, id, level, text] = m as unknown as [string, string, string, string];
    const list = bySession.get(id) ?? [];
    bySession.set(id, list);
    if (level === 'DETAIL') {
      const p = /^parameters: (.*)$/.exec(text);
      const last = list.at(-1);
      if (p && last) list[list.length - 1] = { ...last, params: p[1]! };
      continue;
    }
    const s = /^statement: (.*)$/.exec(text);
    if (s) list.push({ kind: 'statement', sql: s[1]!, params: null });
    const e = /^(execute <unnamed>|execute prep): (.*)$/.exec(text);
    if (e) list.push({ kind: e[1] as Stmt['kind'], sql: e[2]!, params: null });
  }
  return bySession;
}

/** A recorded event in the server's log notation (parameters as `$1 = 'v', $2 = 'w'`). */
const fromRecording = (q: QueryData): Stmt => ({
  kind: q.step === 'query' ? 'statement' : q.statement === '' ? 'execute <unnamed>' : `execute ${q.statement}` as Stmt['kind'],
  sql: q.sql,
  params: q.params && q.params.length ? q.params.map((p, i) => `$${i + 1} = '${p.value}'`).join(', ') : null,
});

describe('completeness against a private PostgreSQL (scram-sha-256 upstream, log_statement = all)', () => {
  it(`${TOTAL} statements through simple, extended and prepared paths: all recorded, and the recording matches the server log`, async () => {
    const simpleQueries: string[] = [];
    for (let i = 0; i < SIMPLE_SINGLE; i++) simpleQueries.push(`select 'simple-${i}' as tag, ${i} as n`);
    for (let i = 0; i < SIMPLE_MULTI; i++) {
      simpleQueries.push(Array.from({ length: 5 }, (_, k) => `select 'multi-${i}-${k}' as tag, ${i * 5 + k} as n`).join('; '));
    }
    const EXT_SQL = 'select $1::text as tag, $2::int as n';
    const PREP_SQL = "select $1::text || '-prepared' as tag, $2::int as n";

    const [simple, extended, prepared] = await Promise.all([
      drive('simple', simpleQueries.map((q) => (c) => c.query(q) as Promise<pg.QueryResult | pg.QueryResult[]>)),
      drive('extended', Array.from({ length: EXTENDED }, (_, i) => (c: pg.Client) => c.query(EXT_SQL, [`ext-${i}`, i]))),
      drive('prepared', Array.from({ length: PREPARED }, (_, i) => (c: pg.Client) => c.query({ name: 'prep', text: PREP_SQL, values: [`prep-${i}`, i] }))),
    ]);
    // The clients got every answer.
    expect(simple.results.flatMap((r) => (Array.isArray(r) ? r : [r])).map((r) => r.rows[0].n)).toEqual(Array.from({ length: SIMPLE_SINGLE + SIMPLE_MULTI * 5 }, (_, i) => (i < SIMPLE_SINGLE ? i : i - SIMPLE_SINGLE)));
    expect(extended.results.map((r) => (r as pg.QueryResult).rows[0].tag)).toEqual(Array.from({ length: EXTENDED }, (_, i) => `ext-${i}`));
    expect(prepared.results.map((r) => (r as pg.QueryResult).rows[0].tag)).toEqual(Array.from({ length: PREPARED }, (_, i) => `prep-${i}-prepared`));

    for (const s of [simple, extended, prepared]) await b.endedSession(s.id);
    const rec = {
      simple: (await b.queries(simple.id)).slice(1),
      extended: (await b.queries(extended.id)).slice(1),
      prepared: (await b.queries(prepared.id)).slice(1),
    };
    // 1. Every statement is in the recording, with its SQL, parameters, rows and tag, in order.
    const expectedSimple = simpleQueries.flatMap((q) => q.split('; '));
    expect(rec.simple.length).toBe(SIMPLE_SINGLE + SIMPLE_MULTI * 5);
    expect(rec.simple.map((q) => q.sql)).toEqual(expectedSimple);
    expect(rec.extended.map((q) => [q.sql, q.statement, q.params?.map((p) => p.value)])).toEqual(
      Array.from({ length: EXTENDED }, (_, i) => [EXT_SQL, '', [`ext-${i}`, `${i}`]]));
    expect(rec.prepared.map((q) => [q.sql, q.statement, q.params?.map((p) => p.value)])).toEqual(
      Array.from({ length: PREPARED }, (_, i) => [PREP_SQL, 'prep', [`prep-${i}`, `${i}`]]));
    const all = [...rec.simple, ...rec.extended, ...rec.prepared];
    expect(all.length).toBe(TOTAL);
    for (const q of all) {
      expect(q.error).toBeUndefined();
      expect([q.rows, q.tag]).toEqual([1, 'SELECT 1']);
    }
    expect(rec.simple.every((q) => q.step === 'query')).toBe(true);
    expect([...rec.extended, ...rec.prepared].every((q) => q.step === 'execute')).toBe(true);

    // 2. The server's own log agrees, per session and in order. It logs a simple Query string once,
    //    however many statements it holds, so the recording's statements are regrouped per message.
    const log = serverLog();
    const logged = (id: string): Stmt[] => (log.get(id) ?? []).slice(1); // after the application_name probe
    expect(logged(simple.id).length).toBe(simpleQueries.length);
    expect(logged(simple.id)).toEqual(simpleQueries.map((sql) => ({ kind: 'statement', sql, params: null })));
    let at = 0;
    const regrouped = simpleQueries.map((q) => {
      const n = q.split('; ').length;
      const group = rec.simple.slice(at, at + n).map((e) => e.sql).join('; ');
      at += n;
      return { kind: 'statement', sql: group, params: null };
    });
    expect(regrouped).toEqual(logged(simple.id));
    expect(logged(extended.id).length).toBe(EXTENDED);
    expect(rec.extended.map(fromRecording)).toEqual(logged(extended.id));
    expect(logged(prepared.id).length).toBe(PREPARED);
    expect(rec.prepared.map(fromRecording)).toEqual(logged(prepared.id));
    // Nothing else ran under these sessions' names that the recording does not show.
    const loggedTotal = [simple.id, extended.id, prepared.id].reduce((n, id) => n + (log.get(id)?.length ?? 0), 0);
    expect(loggedTotal).toBe(simpleQueries.length + EXTENDED + PREPARED + 3);
  });
});

/**
 * The raw protocol through wicket: pg authenticates (SCRAM with wicket),
 * then the test takes the socket over and writes messages byte for byte.
 */
class Wire {
  private buf = Buffer.alloc(0);
  private readonly got: { type: string; body: Buffer }[] = [];
  private wake: (() => void) | null = null;
  private constructor(readonly id: string, private readonly sock: Socket) {
    sock.removeAllListeners('data');
    sock.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      while (this.buf.length >= 5 && this.buf.length >= 1 + this.buf.readInt32BE(1)) {
        const len = this.buf.readInt32BE(1);
        this.got.push({ type: String.fromCharCode(this.buf[0]!), body: Buffer.from(this.buf.subarray(5, 1 + len)) });
        this.buf = this.buf.subarray(1 + len);
      }
      this.wake?.();
    });
  }
  static async open(): Promise<Wire> {
    const c = b.client('private', 'postgres', { application_name: 'wire' });
    c.on('error', () => undefined);
    await c.connect();
    const app = (await c.query<{ a: string }>("select current_setting('application_name') as a")).rows[0]!.a;
    return new Wire(/^wicket:alice:([a-z0-9]+):/.exec(app)![1]!, (c as unknown as { connection: { stream: Socket } }).connection.stream);
  }
  /**
   * Sends the messages in one write; resolves with the answers up to the
   * `count`-th message of type `until` (ReadyForQuery by default), as `type` or `type:detail`.
   */
  async exchange(msgs: Buffer[], count = 1, until = 'Z'): Promise<string[]> {
    this.got.length = 0;
    this.sock.write(Buffer.concat(msgs));
    while (this.got.filter((m) => m.type === until).length < count) await new Promise<void>((r) => (this.wake = r));
    return this.got.map(({ type, body }) => {
      if (type === 'E') return `E:${/C([0-9A-Z]{5})\0/.exec(body.toString('latin1'))![1]}`;
      if (type === 'C') return `C:${body.toString('utf8', 0, body.length - 1)}`;
      if (type === 'D') return `D:${body.subarray(2).toString('latin1').replace(/[\0-\x1f]/g, '')}`;
      if (type === 'V') return `V:${body.subarray(4).toString('hex')}`;
      return type;
    });
  }
  async close(): Promise<QueryData[]> {
    this.sock.end(encodeTerminate());
    await b.endedSession(this.id);
    return (await b.queries(this.id)).slice(1);
  }
}
const int4 = (n: number): Buffer => { const x = Buffer.alloc(4); x.writeInt32BE(n); return x; };
const functionCall = (oid: number, args: Buffer[]): Buffer =>
  new Writer(FRONTEND.FunctionCall).u32(oid).i16s([1]).values(args).i16(1).finish();

describe('the recording follows the server, not the client, on the extended protocol', () => {
  it('a failed re-Parse of a named statement does not change what later executions are recorded as', async () => {
    const w = await Wire.open();
    expect(await w.exchange([encodeParse('s1', "select 'real' as v"), encodeSync()])).toEqual(['1', 'Z']);
    // The name is taken: the server refuses this Parse and keeps the first statement.
    expect(await w.exchange([encodeParse('s1', "select 'decoy' as v"), encodeSync()])).toEqual(['E:42P05', 'Z']);
    expect(await w.exchange([encodeBind('', 's1', [], []), encodeExecute(''), encodeSync()])).toEqual(['2', 'D:real', 'C:SELECT 1', 'Z']);
    const q = await w.close();
    expect(q.map((e) => [e.step, e.sql, e.error?.code ?? null])).toEqual([
      ['parse', "select 'decoy' as v", '42P05'],
      ['execute', "select 'real' as v", null],
    ]);
  });

  it('Close and Parse skipped after an error (up to Sync) do not change the recorded statement', async () => {
    const w = await Wire.open();
    expect(await w.exchange([encodeParse('s2', "select 'first' as v"), encodeSync()])).toEqual(['1', 'Z']);
    expect(await w.exchange([encodeBind('', 'no_such_statement', [], []), encodeClose('S', 's2'), encodeParse('s2', "select 'second' as v"), encodeSync()]))
      .toEqual(['E:26000', 'Z']);
    expect(await w.exchange([encodeBind('', 's2', [], []), encodeExecute(''), encodeSync()])).toEqual(['2', 'D:first', 'C:SELECT 1', 'Z']);
    // And once Close really happens, a new definition is used.
    expect(await w.exchange([encodeClose('S', 's2'), encodeParse('s2', "select 'third' as v"), encodeBind('', 's2', [], []), encodeExecute(''), encodeSync()]))
      .toEqual(['3', '1', '2', 'D:third', 'C:SELECT 1', 'Z']);
    const q = await w.close();
    expect(q.map((e) => [e.step, e.sql, e.statement, e.error?.code ?? null])).toEqual([
      ['bind', '', 'no_such_statement', '26000'],
      ['execute', "select 'first' as v", 's2', null],
      ['execute', "select 'third' as v", 's2', null],
    ]);
  });

  it('SQL-level PREPARE / DEALLOCATE share the namespace: a Bind runs what PREPARE defined, and is recorded so', async () => {
    const w = await Wire.open();
    expect(await w.exchange([encodeParse('s3', "select 'protocol' as v"), encodeSync()])).toEqual(['1', 'Z']);
    expect(await w.exchange([encodeQuery("DEALLOCATE s3; PREPARE s3 AS select 'sql-level' as v")])).toEqual(['C:DEALLOCATE', 'C:PREPARE', 'Z']);
    expect(await w.exchange([encodeBind('', 's3', [], []), encodeExecute(''), encodeSync()])).toEqual(['2', 'D:sql-level', 'C:SELECT 1', 'Z']);
    expect(await w.exchange([encodeQuery('DEALLOCATE ALL')])).toEqual(['C:DEALLOCATE ALL', 'Z']);
    expect(await w.exchange([encodeBind('', 's3', [], []), encodeExecute(''), encodeSync()])).toEqual(['E:26000', 'Z']);
    const q = await w.close();
    expect(q.map((e) => [e.step, e.sql, e.error?.code ?? null])).toEqual([
      ['query', 'DEALLOCATE s3', null],
      ['query', "PREPARE s3 AS select 'sql-level' as v", null],
      ['execute', "PREPARE s3 AS select 'sql-level' as v", null],
      ['query', 'DEALLOCATE ALL', null],
      ['bind', '', '26000'],
    ]);
  });

  it('a COMMIT that fails at Sync (deferred constraint) is recorded, not lost; in a simple Query it fails the statement', async () => {
    const w = await Wire.open();
    expect(await w.exchange([encodeQuery('create temp table p (id int primary key); create temp table c (pid int references p deferrable initially deferred)')]))
      .toEqual(['C:CREATE TABLE', 'C:CREATE TABLE', 'Z']);
    expect(await w.exchange([encodeParse('', 'insert into c values (1)'), encodeBind('', '', [], []), encodeExecute(''), encodeSync()]))
      .toEqual(['1', '2', 'C:INSERT 0 1', 'E:23503', 'Z']);
    // A simple Query commits before CommandComplete of its last statement, so the error is that statement's.
    expect(await w.exchange([encodeQuery('insert into c values (2)')])).toEqual(['E:23503', 'Z']);
    const q = await w.close();
    expect(q.slice(2).map((e) => [e.step, e.sql, e.tag ?? null, e.error?.code ?? null])).toEqual([
      ['execute', 'insert into c values (1)', 'INSERT 0 1', null],
      ['other', 'COMMIT (implicit transaction)', null, '23503'],
      ['query', 'insert into c values (2)', null, '23503'],
    ]);
  });

  it('messages the server ignores while it skips to Sync (even a Query) do not shift later statements', async () => {
    const w = await Wire.open();
    // No Sync yet: the error arrives and the server starts discarding everything up to the next Sync.
    expect(await w.exchange([encodeParse('', 'select 1 / 0'), encodeBind('', '', [], []), encodeExecute(''), encodeFlush()], 1, 'E'))
      .toEqual(['1', 'E:22012']);
    // This Query is discarded by the server (it never runs), then Sync ends the skipping.
    expect(await w.exchange([encodeQuery("select 'discarded' as v"), encodeSync()])).toEqual(['Z']);
    expect(await w.exchange([encodeQuery("select 'after' as v")])).toEqual(['T', 'D:after', 'C:SELECT 1', 'Z']);
    expect(await w.exchange([encodeQuery("select 'next' as v")])).toEqual(['T', 'D:next', 'C:SELECT 1', 'Z']);
    const q = await w.close();
    expect(q.map((e) => [e.sql, e.error?.code ?? null])).toEqual([
      ['select 1 / 0', '22012'],
      ["select 'after' as v", null],
      ["select 'next' as v", null],
    ]);
  });

  it('pipelined Parse, Describe, Bind, Execute with an error midway; types from ParameterDescription; PortalSuspended chunks', async () => {
    const w = await Wire.open();
    const answers = await w.exchange([
      encodeParse('t', 'select $1::int4 + 1 as n'), encodeDescribe('S', 't'), encodeBind('', 't', [], ['41']), encodeExecute(''), encodeSync(),
      encodeParse('', 'select 1 / ($1::int4 - 1) as n'), encodeBind('', '', [], ['1']), encodeExecute(''), // fails at Execute (generic plan) or Bind
      encodeParse('', "select 'skipped' as v"), encodeBind('', '', [], []), encodeExecute(''), encodeSync(),
      encodeQuery('begin'),
      encodeParse('', 'select g from generate_series(1, 5) g'), encodeBind('cur', '', [], []),
      encodeExecute('cur', 2), encodeExecute('cur', 2), encodeExecute('cur', 2), encodeSync(),
      encodeQuery('commit'),
    ], 5);
    expect(answers.filter((a) => a !== 't' && a !== 'T' && a !== 'n')).toEqual([
      '1', '2', 'D:42', 'C:SELECT 1', 'Z',
      '1', 'E:22012', 'Z',
      'C:BEGIN', 'Z',
      '1', '2', 'D:1', 'D:2', 's', 'D:3', 'D:4', 's', 'D:5', 'C:SELECT 1', 'Z',
      'C:COMMIT', 'Z',
    ]);
    const q = await w.close();
    expect(q.map((e) => [e.step, e.sql, e.params?.map((p) => `${p.type}:${p.value}`) ?? null, e.rows, e.tag ?? null, e.error?.code ?? null])).toEqual([
      ['execute', 'select $1::int4 + 1 as n', ['23:41'], 1, 'SELECT 1', null],
      [expect.stringMatching(/^(bind|execute)$/), 'select 1 / ($1::int4 - 1) as n', ['null:1'], null, null, '22012'],
      ['query', 'begin', null, 0, 'BEGIN', null],
      ['execute', 'select g from generate_series(1, 5) g', [], 2, 'SUSPENDED', null],
      ['execute', 'select g from generate_series(1, 5) g', [], 2, 'SUSPENDED', null],
      ['execute', 'select g from generate_series(1, 5) g', [], 1, 'SELECT 1', null],
      ['query', 'commit', null, 0, 'COMMIT', null],
    ]);
  });

  it('FunctionCall: the function OID and binary arguments, the result, and an error', async () => {
    const w = await Wire.open();
    const INT4PL = 177; // pg_catalog.int4pl(int4, int4), a fixed OID
    expect(await w.exchange([functionCall(INT4PL, [int4(2), int4(40)])])).toEqual(['V:0000002a', 'Z']);
    expect(await w.exchange([functionCall(INT4PL, [int4(2147483647), int4(1)])])).toEqual(['E:22003', 'Z']);
    const q = await w.close();
    expect(q.map((e) => [e.step, e.sql, e.params?.map((p) => `${p.format}:${p.value}`), e.error?.code ?? null])).toEqual([
      ['function_call', 'function oid 177', ['binary:00000002', 'binary:00000028'], null],
      ['function_call', 'function oid 177', ['binary:7fffffff', 'binary:00000001'], '22003'],
    ]);
  });
});
