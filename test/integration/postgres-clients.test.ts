/**
 * Real libpq clients through wicket against the machine's PostgreSQL on
 * 127.0.0.1:5432: psql -c, psql driven interactively in a pty, and pgbench
 * in all three query modes. Each test checks what the client saw AND what
 * wicket recorded.
 */
import { readFileSync, rmSync, statSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { directSql, runTool, startBroker, type Broker, type QueryData } from '../support/pg-broker.js';
import { spawnPty } from '../support/pty.js';

const TAG = `${process.pid}`;
const BENCH_DB = `wicket_bench_${TAG}`;
const TABLE = `wicket_it_${TAG}`;
const COPY_FILE = `/tmp/wicket-it-copy-${TAG}.tsv`;

let b: Broker;
const conninfo = (extra = ''): string => `host=${b.host} port=${b.port} user=${b.user}@local dbname=postgres ${extra}`;
const pick = (q: QueryData): Partial<QueryData> => ({ step: q.step, sql: q.sql, rows: q.rows, tag: q.tag, error: q.error });

beforeAll(async () => {
  await directSql(`DROP DATABASE IF EXISTS ${BENCH_DB}`);
  await directSql(`CREATE DATABASE ${BENCH_DB}`);
  b = await startBroker({
    targets: `  - { name: local, segment: dev, protocol: postgres, address: 127.0.0.1:5432, user: postgres, database: postgres, databases: [postgres, ${BENCH_DB}], tls: disable }`,
  });
});

afterAll(async () => {
  await b?.stop();
  await directSql(`DROP TABLE IF EXISTS ${TABLE}, ${TABLE}_copy`).catch(() => undefined);
  await directSql(`DROP DATABASE IF EXISTS ${BENCH_DB} WITH (FORCE)`).catch(() => undefined);
  rmSync(COPY_FILE, { force: true });
});

describe('psql -c', () => {
  for (const sslmode of ['require', 'disable'] as const) {
    it(`sslmode=${sslmode}: one event per statement with text, rows, tag; errors with SQLSTATE; application_name upstream`, async () => {
      const since = Date.now();
      const r = await runTool('psql', [conninfo(`sslmode=${sslmode}`), '-X', '-A', '-t',
        '-c', "select 1 as a;\n  select g from generate_series(1,3) g;  select 'a;b' as semi",
        '-c', "select current_setting('application_name'), current_setting('ssl_library') is not null",
        '-c', 'select 1/0',
        '-c', 'select 42',
      ], b.env);
      // psql keeps going after an error without ON_ERROR_STOP; the exit code reports the last statement.
      expect(r.stderr).toBe('ERROR:  division by zero\n');
      const lines = r.stdout.trim().split('\n');
      expect(lines.slice(0, 5)).toEqual(['1', '1', '2', '3', 'a;b']);
      const app = /^wicket:alice:([a-z0-9]+):psql\|t$/.exec(lines[5]!);
      expect(app, lines[5]).not.toBeNull();
      expect(lines[6]).toBe('42');

      const [session] = await b.ended('local', since);
      expect(session!.id).toBe(app![1]);
      expect(session!.meta).toMatchObject({ tls: sslmode === 'require', applicationName: 'psql', database: 'postgres' });
      const queries = await b.queries(session!.id);
      expect(queries.map(pick)).toEqual([
        { step: 'query', sql: 'select 1 as a', rows: 1, tag: 'SELECT 1', error: undefined },
        { step: 'query', sql: 'select g from generate_series(1,3) g', rows: 3, tag: 'SELECT 3', error: undefined },
        { step: 'query', sql: "select 'a;b' as semi", rows: 1, tag: 'SELECT 1', error: undefined },
        { step: 'query', sql: "select current_setting('application_name'), current_setting('ssl_library') is not null", rows: 1, tag: 'SELECT 1', error: undefined },
        { step: 'query', sql: 'select 1/0', rows: null, tag: undefined, error: { code: '22012', message: 'division by zero' } },
        { step: 'query', sql: 'select 42', rows: 1, tag: 'SELECT 1', error: undefined },
      ]);
      for (const q of queries) expect(q.durationMs).toBeGreaterThanOrEqual(0);
    });
  }

  it('a multi-statement string that fails midway: the failed statement has its SQLSTATE, the rest are marked not executed', async () => {
    const since = Date.now();
    const r = await runTool('psql', [conninfo(), '-X', '-c', 'select 1; select * from wicket_no_such_table; select 3'], b.env);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('relation "wicket_no_such_table" does not exist');
    const [session] = await b.ended('local', since);
    const queries = await b.queries(session!.id);
    expect(queries.map((q) => [q.sql, q.error?.code ?? null])).toEqual([
      ['select 1', null],
      ['select * from wicket_no_such_table', '42P01'],
      ['select 3', ''],
    ]);
    expect(queries[1]!.error!.message).toBe('relation "wicket_no_such_table" does not exist');
    expect(queries[2]!.error!.message).toMatch(/not executed/);
  });
});

describe('psql interactive in a pty', () => {
  it('\\d, \\copy both ways, an error, Ctrl-C cancels pg_sleep through wicket, \\q', async () => {
    const since = Date.now();
    rmSync(COPY_FILE, { force: true });
    const p = spawnPty('psql', [conninfo('sslmode=require'), '-X', '-P', 'pager=off'], { env: { ...b.env, PAGER: '' } });
    try {
      const prompt = /postgres=# $/m;
      /** Types a line and waits for `expect` and then the next prompt; returns the screen since the line was typed. */
      const type = async (line: string, expectText: string | RegExp, timeoutMs = 10_000): Promise<string> => {
        const from = p.output().length;
        p.write(`${line}\r`);
        await p.waitFor(expectText, { from, timeoutMs });
        await p.waitFor(prompt, { from: from + line.length, timeoutMs });
        return p.output().slice(from);
      };
      await p.waitFor(prompt, { timeoutMs: 15_000 });
      expect(p.output()).toMatch(/SSL connection \(protocol: TLSv1\.[23]/);
      await type(`create table ${TABLE} (id int primary key, name text not null);`, 'CREATE TABLE');
      await type(`insert into ${TABLE} select g, 'name ' || g from generate_series(1, 500) g;`, 'INSERT 0 500');
      const described = await type(`\\d ${TABLE}`, /Indexes:/);
      expect(described).toContain(`Table "public.${TABLE}"`);
      expect(described).toMatch(/ id +\| integer +\| +\| not null/);
      expect(described).toContain(`"${TABLE}_pkey" PRIMARY KEY, btree (id)`);

      await type(`\\copy ${TABLE} to '${COPY_FILE}'`, 'COPY 500');
      const fileBytes = statSync(COPY_FILE).size;
      expect(readFileSync(COPY_FILE, 'utf8').split('\n')[0]).toBe('1\tname 1');
      await type(`create table ${TABLE}_copy (like ${TABLE});`, 'CREATE TABLE');
      await type(`\\copy ${TABLE}_copy from '${COPY_FILE}'`, 'COPY 500');
      expect(await directSql(`select count(*), sum(id), count(distinct name) from ${TABLE}_copy`)).toBe('500|125250|500');

      await type('select * from wicket_no_such_table;', 'ERROR:  relation "wicket_no_such_table" does not exist');

      // Ctrl-C: psql sends a CancelRequest with the key wicket gave it; wicket must map it to the upstream key.
      const from = p.output().length;
      p.write('select pg_sleep(30);\r');
      await expect.poll(() => directSql(`select count(*) from pg_stat_activity where state = 'active' and query like 'select pg_sleep(30)%' and application_name like 'wicket:alice:%'`),
        { timeout: 10_000, interval: 50 }).toBe('1');
      const sent = Date.now();
      p.write('\x03');
      await p.waitFor('canceling statement due to user request', { from, timeoutMs: 10_000 });
      expect(Date.now() - sent).toBeLessThan(10_000);
      await p.waitFor(prompt, { from, timeoutMs: 5_000 });
      // The session survives the cancel.
      await type('select 6 * 7 as answer;', /\n +42\r?\n/);
      p.write('\\q\r');
      expect(await p.exited).toBe(0);

      const [session] = await b.ended('local', since);
      const queries = await b.queries(session!.id);
      const copyOut = queries.find((q) => /^COPY +wicket_it_\d+ +TO STDOUT/i.test(q.sql));
      const copyIn = queries.find((q) => /^COPY +wicket_it_\d+_copy +FROM STDIN/i.test(q.sql));
      expect(copyOut, JSON.stringify(queries.map((q) => q.sql))).toMatchObject({ step: 'query', tag: 'COPY 500', rows: 500, bytes: fileBytes });
      expect(copyIn).toMatchObject({ step: 'query', tag: 'COPY 500', rows: 500, bytes: fileBytes });
      // \d runs psql's catalog queries; they are recorded like any other statement.
      expect(queries.some((q) => q.sql.includes('pg_catalog.pg_class') && q.sql.includes(TABLE))).toBe(true);
      expect(queries.find((q) => q.sql === 'select * from wicket_no_such_table')?.error?.code).toBe('42P01');
      expect(queries.find((q) => q.sql === 'select pg_sleep(30)')?.error).toEqual({ code: '57014', message: 'canceling statement due to user request' });
      expect(queries.at(-1)).toMatchObject({ sql: 'select 6 * 7 as answer', rows: 1, tag: 'SELECT 1' });
    } finally {
      p.kill();
    }
  });
});

describe('pgbench through wicket', () => {
  const pgbench = (args: string[]) =>
    runTool('pgbench', ['-h', b.host, '-p', String(b.port), '-U', `${b.user}@local`, ...args, BENCH_DB], b.env);

  it('-i -s 1, then -S -t 200 -c 2 in simple, extended and prepared modes; prepared executions carry SQL and parameter', async () => {
    const initSince = Date.now();
    const init = await pgbench(['-i', '-s', '1', '-q']);
    expect(init.code, init.stderr).toBe(0);
    expect(init.stderr).toMatch(/done in/);
    expect(await directSql('select count(*) from pgbench_accounts', BENCH_DB)).toBe('100000');
    // -i loads pgbench_accounts with COPY FROM STDIN: the recording has the statement, the rows and the bytes sent.
    const [initSession] = await b.ended('local', initSince);
    expect(initSession!.meta).toMatchObject({ database: BENCH_DB });
    const initQueries = await b.queries(initSession!.id);
    expect(initQueries.find((q) => q.sql.startsWith('copy pgbench_accounts from stdin'))).toMatchObject({ step: 'query', rows: 100000, tag: 'COPY 100000', bytes: expect.any(Number) });
    expect(initQueries.map((q) => q.sql)).toEqual(expect.arrayContaining(['vacuum analyze pgbench_accounts', 'alter table pgbench_accounts add primary key (aid)']));
    expect(initQueries.every((q) => !q.error)).toBe(true);

    for (const mode of ['simple', 'extended', 'prepared'] as const) {
      const since = Date.now();
      const r = await pgbench(['-S', '-t', '200', '-c', '2', '-M', mode, '-n']);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain(`query mode: ${mode}`);
      expect(r.stdout).toContain('number of transactions actually processed: 400/400');
      const sessions = await b.ended('local', since, 2);
      const all = (await Promise.all(sessions.map((s) => b.queries(s.id)))).flat();
      const selects = all.filter((q) => /^SELECT abalance FROM pgbench_accounts WHERE aid = /.test(q.sql));
      expect(selects.length).toBe(400);
      for (const q of selects) {
        expect(q.error).toBeUndefined();
        expect(q.rows).toBe(1);
        expect(q.tag).toBe('SELECT 1');
        if (mode === 'simple') {
          expect(q.step).toBe('query');
          expect(q.sql).toMatch(/^SELECT abalance FROM pgbench_accounts WHERE aid = \d+$/);
        } else {
          expect(q.step).toBe('execute');
          expect(q.sql).toMatch(/^SELECT abalance FROM pgbench_accounts WHERE aid = \$1;?$/);
          expect(q.params).toHaveLength(1);
          expect(q.params![0]).toMatchObject({ format: 'text' });
          expect(Number(q.params![0]!.value)).toBeGreaterThanOrEqual(1);
          expect(Number(q.params![0]!.value)).toBeLessThanOrEqual(100000);
          if (mode === 'prepared') expect(q.statement).toMatch(/^P\d*_\d+$/); // pgbench's own name for the prepared command
          else expect(q.statement).toBe('');
        }
      }
    }
  });
});
