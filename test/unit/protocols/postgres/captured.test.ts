/**
 * Real client/server byte streams captured by fixtures/capture.mjs (see
 * fixtures/README.md). Each stream must decode to the same message sequence
 * however it is chunked, and the frames must re-assemble the exact stream.
 */
import { describe, expect, it } from 'vitest';
import { type BackendMessage, commandTagRows } from '../../../../protocols/postgres/backend.js';
import { encodeStartup } from '../../../../protocols/postgres/frontend.js';
import { bytewise, captureNames, decodeClient, decodeServer, fixture, twoPieceSplits } from './helpers.js';

const names = captureNames();

it('has the expected captures', () => {
  expect(names).toEqual(['pg-1', 'pgbench-1', 'pgbench-2', 'psql-1']);
});

describe.each(names)('%s', (name) => {
  const client = fixture(name, 'client');
  const server = fixture(name, 'server');
  const clientWhole = decodeClient([client]);
  const serverWhole = decodeServer([server]);

  it('decodes whole, and the frames cover the stream exactly', () => {
    const startup = clientWhole.startup[0];
    expect(startup?.type).toBe('startup');
    if (startup?.type !== 'startup') return;
    expect(startup.params.user).toBe('postgres');
    const startupBytes = encodeStartup(startup.params).length; // same params in the same order => same bytes
    expect(Buffer.concat([encodeStartup(startup.params), ...clientWhole.frames.map((f) => f.frame)])).toEqual(client);
    expect(startupBytes).toBeLessThan(client.length);
    expect(Buffer.concat(serverWhole.map((f) => f.frame))).toEqual(server);
    expect(clientWhole.frames.at(-1)?.msg).toEqual({ type: 'terminate' });
    expect(serverWhole[0]?.msg).toEqual({ type: 'authentication', code: 0, data: Buffer.alloc(0) });
    expect(serverWhole.some((f) => f.msg.type === 'unknown')).toBe(false);
    expect(clientWhole.frames.some((f) => f.msg.type === 'unknown')).toBe(false);
  });

  // Compared as JSON (Buffers become byte arrays) for speed; toEqual only to report a mismatch.
  it('client stream: same messages at every two-piece split', () => {
    const want = JSON.stringify(clientWhole);
    for (const pieces of twoPieceSplits(client)) {
      const got = decodeClient(pieces);
      if (JSON.stringify(got) !== want) expect({ split: pieces[0]!.length, got }).toEqual({ split: pieces[0]!.length, got: clientWhole });
    }
  });

  it('client stream: same messages in 1-byte pieces', () => {
    expect(decodeClient(bytewise(client))).toEqual(clientWhole);
  });

  it('server stream: same messages at every two-piece split', () => {
    const want = JSON.stringify(serverWhole);
    for (const pieces of twoPieceSplits(server)) {
      const got = decodeServer(pieces);
      if (JSON.stringify(got) !== want) expect({ split: pieces[0]!.length, got }).toEqual({ split: pieces[0]!.length, got: serverWhole });
    }
  });

  it('server stream: same messages in 1-byte pieces', () => {
    expect(decodeServer(bytewise(server))).toEqual(serverWhole);
  });
});

const types = (msgs: { msg: { type: string } }[]): string[] => msgs.map((m) => m.msg.type);
const tags = (msgs: { msg: BackendMessage }[]): string[] =>
  msgs.flatMap((m) => (m.msg.type === 'command_complete' ? [m.msg.tag] : []));

describe('what the captures contain', () => {
  it('psql: one multi-statement Query; rows, a NOTICE, tags, then 42P01', () => {
    const c = decodeClient([fixture('psql-1', 'client')]);
    expect(types(c.frames)).toEqual(['query', 'terminate']);
    expect(c.frames[0]!.msg).toMatchObject({ type: 'query', sql: expect.stringContaining('SELECT * FROM no_such_table') });
    const s = decodeServer([fixture('psql-1', 'server')]);
    expect(tags(s)).toEqual(['SELECT 1', 'DO', 'CREATE TABLE', 'INSERT 0 3', 'UPDATE 2', 'SELECT 3']);
    expect(tags(s).map(commandTagRows)).toEqual([1, null, null, 3, 2, 3]);
    const notice = s.find((m) => m.msg.type === 'notice_response')!.msg;
    expect(notice.type === 'notice_response' && notice.fields.message).toBe('hello from wicket');
    const err = s.find((m) => m.msg.type === 'error_response')!.msg;
    expect(err.type === 'error_response' && err.fields).toMatchObject({
      severity: 'ERROR', code: '42P01', message: 'relation "no_such_table" does not exist',
    });
    expect(s.at(-1)!.msg).toEqual({ type: 'ready_for_query', status: 'I' });
    expect(s.filter((m) => m.msg.type === 'backend_key_data')).toHaveLength(1);
  });

  it('pgbench -M prepared: one named Parse, 20 Bind/Describe/Execute/Sync rounds', () => {
    const c = decodeClient([fixture('pgbench-2', 'client')]);
    expect(c.frames[0]!.msg).toEqual({
      type: 'parse', statement: 'P_0', sql: 'SELECT abalance FROM pgbench_accounts WHERE aid = $1;', paramTypes: [],
    });
    const binds = c.frames.filter((f) => f.msg.type === 'bind').map((f) => f.msg);
    expect(binds).toHaveLength(20);
    for (const b of binds) {
      expect(b).toMatchObject({ statement: 'P_0', portal: '', paramFormats: [], resultFormats: [0] });
      if (b.type === 'bind') expect(b.params[0]!.toString()).toMatch(/^\d+$/);
    }
    expect(c.frames.filter((f) => f.msg.type === 'execute')).toHaveLength(20);
    const s = decodeServer([fixture('pgbench-2', 'server')]);
    expect(s.filter((m) => m.msg.type === 'data_row')).toHaveLength(20);
    expect(s.filter((m) => m.msg.type === 'bind_complete')).toHaveLength(20);
    expect(types(s)).not.toContain('error_response');
  });

  it('pg driver: binary params and results, NULL, named statement, error, NOTIFY, COPY in/out', () => {
    const c = decodeClient([fixture('pg-1', 'client')]).frames.map((f) => f.msg);
    expect(c).toContainEqual({
      type: 'bind', portal: '', statement: '', paramFormats: [0, 0, 0], params: [Buffer.from('41'), Buffer.from('héllo'), null], resultFormats: [0],
    });
    expect(c).toContainEqual({
      type: 'bind', portal: '', statement: '', paramFormats: [1], params: [Buffer.from([0, 1, 2, 0xff, 0])], resultFormats: [0],
    });
    expect(c).toContainEqual(expect.objectContaining({ type: 'bind', resultFormats: [1] }));
    expect(c.filter((m) => m.type === 'parse' && m.statement === 'by_n')).toHaveLength(1);
    expect(c.filter((m) => m.type === 'bind' && m.statement === 'by_n')).toHaveLength(2);
    expect(c.filter((m) => m.type === 'copy_data').map((m) => m.type === 'copy_data' && m.bytes)).toEqual([16, 10, 9]);
    expect(c).toContainEqual({ type: 'copy_done' });

    const s = decodeServer([fixture('pg-1', 'server')]).map((f) => f.msg);
    const rd = s.find((m) => m.type === 'row_description' && m.fields.some((f) => f.format === 1));
    expect(rd?.type === 'row_description' && rd.fields[0]).toMatchObject({ name: 'x', typeOid: 23, typeSize: 4, format: 1 });
    expect(s).toContainEqual(expect.objectContaining({ type: 'error_response', fields: expect.objectContaining({ code: '22012' }) }));
    expect(s).toContainEqual(expect.objectContaining({ type: 'notification_response', channel: 'wicket_ch', payload: 'ping' }));
    expect(s).toContainEqual({ type: 'copy_in_response', format: 0, columnFormats: [0, 0, 0] });
    expect(s).toContainEqual({ type: 'copy_out_response', format: 0, columnFormats: [0, 0, 0] });
    expect(s).toContainEqual({ type: 'copy_out_response', format: 1, columnFormats: [1, 1] });
    expect(s.filter((m) => m.type === 'command_complete').map((m) => m.type === 'command_complete' && m.tag)).toContain('COPY 20');
  });
});
