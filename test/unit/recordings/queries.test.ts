import { describe, expect, it } from 'vitest';
import {
  MAX_PARAMS,
  MAX_SQL_BYTES,
  formatQueryList,
  queryAudit,
  sessionEventToAudit,
  truncateText,
  type AuditContext,
} from '../../../recordings/queries.js';
import type { QueryEvent, SessionEvent } from '../../../src/session.js';
import type { AuditInput } from '../../../src/store/types.js';

const ctx: AuditContext = { actor: 'alice', sessionId: 'sess1', target: 'orders-db' };
const T0 = Date.UTC(2026, 10, 27, 12, 0, 1, 250);

const q = (over: Partial<QueryEvent>): QueryEvent => ({ type: 'query', step: 'query', startedAt: T0, durationMs: 12.34, sql: 'SELECT 1', ...over });

describe('session events to audit inputs', () => {
  it('maps every event type with its kind, time and context', () => {
    const events: SessionEvent[] = [
      q({ rows: 5, tag: 'SELECT 5' }),
      { type: 'command', at: T0 + 1, source: 'typed', command: 'ls -la', channel: 0 },
      { type: 'file', at: T0 + 2, op: 'rename', path: '/a', to: '/b', result: 'ok' },
      { type: 'forward', at: T0 + 3, kind: 'direct-tcpip', destination: '10.0.0.1:5432', bytesIn: 10, bytesOut: 20, durationMs: 5 },
      { type: 'refused', at: T0 + 4, what: 'DROP TABLE orders', rule: 'developer#2', message: 'ddl is denied' },
    ];
    const rows = events.map((e) => sessionEventToAudit(e, ctx));
    expect(rows.map((r) => [r.kind, r.ts])).toEqual([['query', T0], ['command', T0 + 1], ['file', T0 + 2], ['forward', T0 + 3], ['refused', T0 + 4]]);
    for (const r of rows) expect(r).toMatchObject({ actor: 'alice', sessionId: 'sess1', target: 'orders-db' });
    expect(rows[0]!.data).toEqual({ step: 'query', sql: 'SELECT 1', durationMs: 12.34, rows: 5, tag: 'SELECT 5' });
    expect(rows[1]!.data).toEqual({ source: 'typed', command: 'ls -la', channel: 0 });
    expect(rows[2]!.data).toEqual({ op: 'rename', path: '/a', to: '/b', result: 'ok' });
    expect(rows[3]!.data).toEqual({ kind: 'direct-tcpip', destination: '10.0.0.1:5432', bytesIn: 10, bytesOut: 20, durationMs: 5 });
    expect(rows[4]!.data).toEqual({ what: 'DROP TABLE orders', rule: 'developer#2', message: 'ddl is denied' });
    // Fits the store's contract, and is plain JSON (no undefined, no NaN) so the hash chain is stable.
    const asStore: AuditInput[] = rows;
    for (const r of asStore) expect(JSON.parse(JSON.stringify(r.data))).toEqual(r.data);
  });

  it('keeps no undefined members and turns non-finite numbers into null', () => {
    const r = queryAudit(q({ durationMs: Number.NaN, rows: null, error: null }), ctx, 7);
    expect(r.data).toEqual({ seq: 7, step: 'query', sql: 'SELECT 1', durationMs: null, rows: null });
    expect(Object.values(r.data)).not.toContain(undefined);
  });

  it('truncates absurdly large SQL with a marker and the original size', () => {
    const sql = `SELECT '${'é'.repeat(MAX_SQL_BYTES)}'`;
    const r = queryAudit(q({ sql }), ctx);
    const stored = r.data['sql'] as string;
    expect(Buffer.byteLength(stored)).toBeLessThan(MAX_SQL_BYTES + 100);
    expect(stored).toMatch(/…\[truncated by wicket: \d+ bytes total\]$/);
    expect(r.data['sqlBytes']).toBe(Buffer.byteLength(sql));
    expect(r.data['sqlTruncated']).toBe(true);
    expect(stored).not.toContain('\uFFFD'); // cut on a character boundary
  });

  it('bounds parameters in count and size', () => {
    const params = Array.from({ length: MAX_PARAMS + 10 }, (_, i) => ({ type: 25, format: 'text' as const, value: i === 0 ? 'x'.repeat(100_000) : String(i) }));
    const r = queryAudit(q({ step: 'bind', params }), ctx);
    const stored = r.data['params'] as { value: string }[];
    expect(stored).toHaveLength(MAX_PARAMS);
    expect(r.data['paramsTotal']).toBe(MAX_PARAMS + 10);
    expect(stored[0]!.value.length).toBeLessThan(5000);
    expect(stored[0]!.value).toMatch(/truncated by wicket: 100000 bytes total/);
  });

  it('truncateText never splits a character', () => {
    expect(truncateText('abc', 3)).toEqual({ text: 'abc', truncated: false, bytes: 3 });
    expect(truncateText('a😀', 3).text).toBe('a…[truncated by wicket: 5 bytes total]');
    expect(truncateText('日本', 4).text).toBe('日…[truncated by wicket: 6 bytes total]');
  });
});

describe('formatQueryList', () => {
  it('prints one line per statement: seq, UTC time, step, duration, rows, SQL, params, error', () => {
    const rows = [
      queryAudit(q({ sql: 'SELECT *\n  FROM orders\tWHERE id = $1', step: 'parse', durationMs: 0.2, statement: 's1' }), ctx, 1),
      queryAudit(q({ step: 'execute', startedAt: T0 + 5, durationMs: 12.34, rows: 5, sql: 'SELECT * FROM orders WHERE id = $1', params: [{ type: 23, format: 'text', value: "o'brien" }, { type: null, format: 'null', value: null }, { type: 17, format: 'binary', value: '0102ff' }] }), ctx, 2),
      queryAudit(q({ startedAt: T0 + 3_600_000, sql: 'SELECT nope', error: { code: '42703', message: 'column "nope" does not exist' } }), ctx, 3),
    ];
    expect(formatQueryList(rows).split('\n')).toEqual([
      '#1  12:00:01.250  parse  0.2ms  SELECT * FROM orders WHERE id = $1',
      "#2  12:00:01.255  execute  12.3ms  rows=5  SELECT * FROM orders WHERE id = $1  [params: $1='o''brien' $2=NULL $3=\\x0102ff]",
      '#3  13:00:01.250  query  12.3ms  SELECT nope  ERROR 42703: column "nope" does not exist',
    ]);
  });

  it('reads rows as stored (AuditEvent shape), numbers by position without seq, shows refusals, skips other kinds', () => {
    const stored = [
      { seq: 100, ts: T0, kind: 'session.start', actor: 'alice', data: {} },
      { seq: 101, ts: T0, kind: 'query', actor: 'alice', data: { step: 'query', sql: 'SELECT 1', durationMs: 1 } },
      { seq: 102, ts: T0 + 1, kind: 'refused', actor: 'alice', data: { what: 'DROP TABLE orders', rule: 'developer#1', message: 'ddl is denied' } },
      { seq: 103, ts: T0 + 2, kind: 'query', actor: 'alice', data: { sql: 42 } },
    ];
    expect(formatQueryList(stored).split('\n')).toEqual([
      '#1  12:00:01.250  query  1.0ms  SELECT 1',
      '#2  12:00:01.251  refused  rule=developer#1  DROP TABLE orders  DENIED: ddl is denied',
      '#3  12:00:01.252  query  ?ms  ',
    ]);
  });

  it('escapes control characters so recorded SQL cannot drive the reviewer\'s terminal', () => {
    const out = formatQueryList([queryAudit(q({ sql: 'SELECT 1 /* \u001b]0;pwned\u0007 \u009b2J */', params: [{ type: 25, format: 'text', value: '\u001b[31mred' }] }), ctx)]);
    expect(out).not.toMatch(/[\u0000-\u001f\u007f-\u009f]/);
    expect(out).toContain('\\x1b]0;pwned\\x07');
    expect(out).toContain("$1='\\x1b[31mred'");
  });

  it('shortens long SQL and parameter lists for display when asked', () => {
    const params = Array.from({ length: 25 }, (_, i) => ({ type: 23, format: 'text' as const, value: String(i) }));
    const line = formatQueryList([queryAudit(q({ sql: `SELECT ${'x, '.repeat(100)}1`, params }), ctx, 9)], { maxSqlChars: 20, maxParams: 3 });
    expect(line).toBe("#9  12:00:01.250  query  12.3ms  SELECT x, x, x, x, x…  [params: $1='0' $2='1' $3='2' …(+22 more)]");
  });
});

describe('paramText', () => {
  it('keeps small values whole and cuts big ones to the limit, naming the original size', async () => {
    const { paramText, MAX_PARAM_BYTES } = await import('../../../recordings/queries.js');
    expect(paramText(Buffer.from('héllo'), 'utf8')).toBe('héllo');
    expect(paramText(Buffer.from([0xde, 0xad]), 'hex')).toBe('dead');
    const big = Buffer.alloc(64 * 1024 * 1024, 0xab);
    const hex = paramText(big, 'hex');
    expect(Buffer.byteLength(hex)).toBeLessThanOrEqual(MAX_PARAM_BYTES);
    expect(hex).toMatch(/^(ab)+…\[truncated by wicket: 67108864 bytes total\]$/);
    const text = paramText(Buffer.from('é'.repeat(5000)), 'utf8');
    expect(Buffer.byteLength(text)).toBeLessThanOrEqual(MAX_PARAM_BYTES);
    expect(text).toMatch(/^é+…\[truncated by wicket: 10000 bytes total\]$/);
  });
});
