import { describe, expect, it } from 'vitest';
import { MAX_CHUNK, PacketError, PacketSplitter, encodePacket, errPayload, lenencInt, lenencString, okPayload, parseErr, parseOk, type LogicalPacket } from '../../../protocols/mysql/packets.js';
import { ResponseTracker } from '../../../protocols/mysql/tracker.js';
import type { QueryEvent } from '../../../src/session.js';

function packets(...payloads: Buffer[]): Buffer {
  return Buffer.concat(payloads.map((p, i) => encodePacket(i, p).bytes));
}

function splitAll(stream: Buffer, cuts: number[], opts = { maxBytes: 1 << 20 }): LogicalPacket[] {
  const s = new PacketSplitter(opts);
  const out: LogicalPacket[] = [];
  let from = 0;
  for (const c of [...cuts, stream.length]) {
    s.push(stream.subarray(from, c), (p) => out.push({ ...p, payload: Buffer.from(p.payload), raw: p.raw && Buffer.from(p.raw) }));
    from = c;
  }
  return out;
}

/** A captured-style result set: column count, 2 column definitions, EOF, 3 rows (one starting 0xFE-looking bytes), EOF. */
const resultSet = (): Buffer[] => [
  Buffer.from([2]),
  Buffer.concat([lenencString('def'), lenencString('db'), lenencString('t'), lenencString('t'), lenencString('a'), lenencString('a'), Buffer.from([0x0c, 0x21, 0, 0xff, 0, 0, 0, 0xfd, 0, 0, 0, 0, 0])]),
  Buffer.concat([lenencString('def'), lenencString('db'), lenencString('t'), lenencString('t'), lenencString('b'), lenencString('b'), Buffer.from([0x0c, 0x21, 0, 0xff, 0, 0, 0, 0xfd, 0, 0, 0, 0, 0])]),
  Buffer.from([0xfe, 0, 0, 0x22, 0]),
  Buffer.concat([lenencString('1'), lenencString('x')]),
  Buffer.concat([lenencString('\u00fe'), Buffer.from([0xfb])]),
  Buffer.concat([lenencString('3'), lenencString('y'.repeat(300))]),
  Buffer.from([0xfe, 0, 0, 0x22, 0]),
];

describe('mysql packet splitter', () => {
  it('yields the same packets however the stream is cut (every offset, and every pair of offsets in a prefix)', () => {
    const stream = packets(...resultSet());
    const whole = splitAll(stream, []);
    expect(whole.map((p) => p.payload.length)).toEqual(resultSet().map((p) => p.length));
    for (let i = 0; i <= stream.length; i++) {
      const got = splitAll(stream, [i]);
      expect(got.map((p) => p.payload.toString('hex'))).toEqual(whole.map((p) => p.payload.toString('hex')));
      expect(got.map((p) => p.seq)).toEqual(whole.map((p) => p.seq));
      // raw, when given, is exactly the packet's wire bytes
      for (const p of got) if (p.raw) expect(p.raw.equals(encodePacket(p.seq, p.payload).bytes)).toBe(true);
    }
    for (let i = 0; i < 40; i++) for (let j = i; j < 40; j++) {
      expect(splitAll(stream, [i, j]).map((p) => p.payload.toString('hex'))).toEqual(whole.map((p) => p.payload.toString('hex')));
    }
  });

  it('joins a payload of 16 MiB and more from its wire packets and re-encodes it identically', () => {
    const big = Buffer.alloc(MAX_CHUNK + 10, 7);
    const exact = Buffer.alloc(MAX_CHUNK, 9); // needs an empty trailing packet
    const stream = Buffer.concat([encodePacket(0, big).bytes, encodePacket(0, exact).bytes]);
    const got = splitAll(stream, [5, MAX_CHUNK + 3, MAX_CHUNK + 30], { maxBytes: 64 << 20 });
    expect(got).toHaveLength(2);
    expect(got[0]!.length).toBe(big.length);
    expect(got[0]!.lastSeq).toBe(1);
    expect(got[0]!.raw).toBeNull();
    expect(got[1]!.length).toBe(exact.length);
    expect(got[1]!.lastSeq).toBe(1);
    expect(encodePacket(0, exact).bytes.length).toBe(exact.length + 8);
    expect(Buffer.compare(got[0]!.payload, big)).toBe(0);
  });

  it('refuses packets over the cap and continuations out of sequence', () => {
    expect(() => splitAll(encodePacket(0, Buffer.alloc(2000)).bytes, [], { maxBytes: 1000 })).toThrow(PacketError);
    const first = encodePacket(0, Buffer.alloc(MAX_CHUNK + 1)).bytes;
    first[4 + MAX_CHUNK + 3] = 9; // the continuation's sequence id
    expect(() => splitAll(first, [], { maxBytes: 64 << 20 })).toThrow(/out of sequence/);
  });

  it('keeps only keepBytes of a big payload but counts all of it', () => {
    const s = new PacketSplitter({ maxBytes: 1 << 20, keepBytes: 10 });
    const got: LogicalPacket[] = [];
    s.push(encodePacket(3, Buffer.alloc(500, 1)).bytes, (p) => got.push(p));
    expect(got[0]).toMatchObject({ length: 500, complete: false, seq: 3 });
    expect(got[0]!.payload.length).toBe(10);
  });

  it('encodes and parses OK and ERR', () => {
    expect(parseOk(okPayload({ affectedRows: 70000, lastInsertId: 5, status: 2, warnings: 1 }))).toMatchObject({ affectedRows: 70000, lastInsertId: 5, status: 2, warnings: 1 });
    expect(parseErr(errPayload(1227, '42000', 'wicket: no\nway'))).toEqual({ code: 1227, sqlState: '42000', message: 'wicket: no way' });
    expect(lenencInt(250)).toEqual(Buffer.from([250]));
    expect(lenencInt(251)[0]).toBe(0xfc);
    expect(lenencInt(1 << 16)[0]).toBe(0xfd);
    expect(lenencInt(1 << 24)[0]).toBe(0xfe);
  });
});

describe('mysql response tracker', () => {
  const run = (deprecateEof: boolean, stream: Buffer[], statements: string[]): { events: QueryEvent[]; actions: string[] } => {
    const events: QueryEvent[] = [];
    const t = new ResponseTracker(deprecateEof, (e) => events.push(e));
    t.sent({ expect: 'results', step: 'query', statements });
    const actions = splitAll(packets(...stream), []).map((p) => t.packet(p));
    expect(t.pending).toBe(0);
    return { events, actions };
  };

  it('counts rows (also one that starts like a terminator) and ends at EOF', () => {
    const { events } = run(false, resultSet(), ['SELECT a, b FROM t']);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ sql: 'SELECT a, b FROM t', rows: 3, tag: '3 rows' });
  });

  it('follows CLIENT_DEPRECATE_EOF framing and multi-results to one event per statement', () => {
    const ok = (status: number, affected = 0): Buffer => okPayload({ affectedRows: affected, status });
    const rs = resultSet();
    const stream = [
      rs[0]!, rs[1]!, rs[2]!, rs[4]!, rs[5]!, okPayload({ header: 0xfe, status: 0x0a }), // result 1 (more results)
      ok(0x0a, 4), // UPDATE: 4 rows, more results
      Buffer.concat([Buffer.from([0xff]), Buffer.from([0x7a, 0x04]), Buffer.from('#42S02'), Buffer.from('no such table')]),
    ];
    const { events } = run(true, stream, ['SELECT a, b FROM t', 'UPDATE t SET a = 1', 'SELECT * FROM nope', 'SELECT never']);
    expect(events.map((e) => [e.sql, e.rows, e.error?.code ?? null])).toEqual([
      ['SELECT a, b FROM t', 2, null],
      ['UPDATE t SET a = 1', 4, null],
      ['SELECT * FROM nope', null, '1146/42S02'],
    ]);
  });

  it('tracks a COM_STMT_PREPARE response and reports the statement id and parameter count', () => {
    const events: QueryEvent[] = [];
    const t = new ResponseTracker(false, (e) => events.push(e));
    let prepared: [number, number] | null = null;
    t.sent({ expect: 'prepare', step: 'prepare', statements: ['SELECT ?, ?'], onPrepared: (id, n) => (prepared = [id, n]) });
    const head = Buffer.alloc(12);
    head.writeUInt32LE(7, 1);
    head.writeUInt16LE(1, 5);
    head.writeUInt16LE(2, 7);
    const rs = resultSet();
    for (const p of splitAll(packets(head, rs[1]!, rs[2]!, rs[3]!, rs[1]!, rs[3]!), [])) t.packet(p);
    expect(prepared).toEqual([7, 2]);
    expect(t.pending).toBe(0);
    expect(events[0]).toMatchObject({ step: 'prepare', sql: 'SELECT ?, ?' });
  });

  it('flags a LOCAL INFILE request and refuses unsolicited non-error packets', () => {
    const t = new ResponseTracker(true, () => undefined);
    t.sent({ expect: 'results', step: 'query', statements: ['LOAD DATA LOCAL INFILE ...'] });
    const [req] = splitAll(packets(Buffer.concat([Buffer.from([0xfb]), Buffer.from('/etc/passwd')])), []);
    expect(t.packet(req!)).toBe('infile');
    const [ok] = splitAll(packets(okPayload({ affectedRows: 0 })), []);
    expect(t.packet(ok!)).toBe('forward');
    expect(() => t.packet(ok!)).toThrow(/no command was pending/);
  });
});
