/**
 * The MySQL relay driven command by command with hand-built packets over a
 * real, authenticated TLS connection (wicket's own upstream client logs in
 * to wicket as a person would): the prepared-statement commands no common
 * driver sends (SEND_LONG_DATA, cursors and FETCH, RESET), COM_FIELD_LIST,
 * COM_STATISTICS, COM_PROCESS_KILL, COM_CHANGE_USER, forbidden and unknown
 * commands, and malformed ones. Against the machine's MariaDB.
 */
import type { Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLIENT, WICKET_CAPS } from '../../protocols/mysql/handshake.js';
import { PacketSplitter, encodePacket, parseErr, type LogicalPacket } from '../../protocols/mysql/packets.js';
import { connectMysqlUpstream } from '../../protocols/mysql/upstream.js';
import type { TargetConfig } from '../../src/config/schema.js';
import { auditOf, machineMysqlDb, startMysqlBroker, type MyBroker } from '../support/wicket-mysql.js';

const PW = 'raw client pw';
let b: MyBroker;
let db: Awaited<ReturnType<typeof machineMysqlDb>>;

/** An authenticated connection to wicket that sends commands and collects the response packets. */
class RawClient {
  private readonly split = new PacketSplitter({ maxBytes: 64 << 20 });
  private inbox: LogicalPacket[] = [];
  private wake: (() => void) | null = null;
  closed = false;
  constructor(readonly sock: Socket, readonly deprecateEof: boolean) {
    sock.on('data', (d: Buffer) => {
      this.split.push(d, (p) => this.inbox.push({ ...p, payload: Buffer.from(p.payload) }));
      this.wake?.();
    });
    sock.on('close', () => {
      this.closed = true;
      this.wake?.();
    });
    sock.resume();
  }

  static async open(user: string, caps = WICKET_CAPS): Promise<RawClient> {
    const target = { name: 'wicket', segment: 's', protocol: 'mysql', address: `${b.host}:${b.port}`, user, password: PW, tls: 'require' } as TargetConfig;
    const up = await connectMysqlUpstream({ target, database: db.name, clientCapabilities: caps, attributes: new Map() });
    return new RawClient(up.socket as Socket, (up.capabilities & CLIENT.DEPRECATE_EOF) !== 0);
  }

  send(payload: Buffer): void {
    this.sock.write(encodePacket(0, payload).bytes);
  }

  /** Packets until `done` says the response is complete (or the connection closed). */
  async read(done: (got: LogicalPacket[]) => boolean, ms = 10_000): Promise<LogicalPacket[]> {
    const end = Date.now() + ms;
    while (!done(this.inbox) && !this.closed) {
      if (Date.now() > end) throw new Error(`timed out; got ${this.inbox.map((p) => p.payload[0]).join(',')}`);
      await new Promise<void>((r) => {
        this.wake = r;
        setTimeout(r, 50);
      });
    }
    const got = this.inbox;
    this.inbox = [];
    return got;
  }

  async one(payload: Buffer): Promise<LogicalPacket> {
    this.send(payload);
    return (await this.read((g) => g.length >= 1))[0]!;
  }
}

const cmd = (code: number, ...rest: Buffer[]): Buffer => Buffer.concat([Buffer.from([code]), ...rest]);
const u32 = (n: number): Buffer => {
  const x = Buffer.alloc(4);
  x.writeUInt32LE(n);
  return x;
};
const u16 = (n: number): Buffer => {
  const x = Buffer.alloc(2);
  x.writeUInt16LE(n);
  return x;
};
const errOf = (p: LogicalPacket): { code: number; message: string } => {
  expect(p.payload[0]).toBe(0xff);
  return parseErr(p.payload);
};
/** A terminator: EOF (0xFE) or, with DEPRECATE_EOF, the 0xFE OK. */
const isEnd = (p: LogicalPacket): boolean => p.payload[0] === 0xfe && p.length < 0xffffff;

beforeAll(async () => {
  db = await machineMysqlDb('wmyraw');
  await db.sql("CREATE TABLE r (id INT PRIMARY KEY, note TEXT); INSERT INTO r VALUES (1, 'a'), (2, 'b'), (3, 'c'), (4, 'd')");
  b = await startMysqlBroker([
    'data_dir: ./data',
    'listen: { mysql: "127.0.0.1:0" }',
    'segments: [{ name: s }]',
    'targets:',
    `  - { name: raw, segment: s, protocol: mysql, address: "127.0.0.1:3306", user: root, database: ${db.name}, tls: disable }`,
    'roles: [{ name: r, allow: [{ segments: [s] }] }]',
    'users: [{ name: alice, roles: [r] }]',
    '',
  ].join('\n'), { alice: PW });
}, 60_000);

afterAll(async () => {
  await b?.stop();
  await db?.drop();
});

describe('mysql relay, command by command', () => {
  it('prepare, long data, execute with a cursor, fetch, reset and close: all relayed, the execute recorded with its long-data parameter', async () => {
    const c = await RawClient.open('alice@raw');
    try {
      // COM_STMT_PREPARE
      c.send(cmd(0x16, Buffer.from('SELECT id FROM r WHERE id >= ? AND note <> ?')));
      const prep = await c.read((g) => g.length > 0 && (g[0]!.payload[0] === 0xff || g.filter(isEnd).length >= (c.deprecateEof ? 0 : 2) && g.length >= (c.deprecateEof ? 4 : 6)));
      expect(prep[0]!.payload[0]).toBe(0x00);
      const stmt = prep[0]!.payload.readUInt32LE(1);
      // COM_STMT_SEND_LONG_DATA for parameter 1 (no response), in two pieces
      c.send(cmd(0x18, u32(stmt), u16(1), Buffer.from('zz')));
      c.send(cmd(0x18, u32(stmt), u16(1), Buffer.from('top')));
      // COM_STMT_EXECUTE with CURSOR_TYPE_READ_ONLY: param 0 = LONGLONG 2, param 1 from long data (VAR_STRING)
      const exec = Buffer.concat([u32(stmt), Buffer.from([0x01]), u32(1), Buffer.from([0x00, 0x01, 0x08, 0x00, 0xfd, 0x00]), Buffer.from([2, 0, 0, 0, 0, 0, 0, 0])]);
      c.send(cmd(0x17, exec));
      const meta = await c.read((g) => g.some(isEnd));
      expect(meta[0]!.payload[0]).toBe(1); // one column
      // COM_STMT_FETCH 2 rows, then the rest
      c.send(cmd(0x1c, u32(stmt), u32(2)));
      const f1 = await c.read((g) => g.some(isEnd) || g.some((p) => p.payload[0] === 0xff));
      expect(f1.filter((p) => p.payload[0] === 0x00)).toHaveLength(2);
      c.send(cmd(0x1c, u32(stmt), u32(10)));
      const f2 = await c.read((g) => g.some(isEnd) || g.some((p) => p.payload[0] === 0xff));
      expect(f2.filter((p) => p.payload[0] === 0x00)).toHaveLength(1);
      // COM_STMT_RESET, COM_STMT_CLOSE (no response), then the connection still works
      expect((await c.one(cmd(0x1a, u32(stmt)))).payload[0]).toBe(0x00);
      c.send(cmd(0x19, u32(stmt)));
      expect((await c.one(cmd(0x0e))).payload[0]).toBe(0x00); // COM_PING
      const q = (await auditOf(b, 'query')).map((e) => e.data as { step: string; sql: string; params?: { value: string | null }[] });
      const ex = q.find((e) => e.step === 'stmt_execute' && e.sql.startsWith('SELECT id FROM r WHERE id >= ?'));
      expect(ex?.params?.map((p) => p.value)).toEqual(['2', 'zztop']);
    } finally {
      c.sock.destroy();
    }
  });

  it('relays COM_FIELD_LIST and COM_STATISTICS, and allows COM_PROCESS_KILL only for its own connection', async () => {
    const c = await RawClient.open('alice@raw');
    try {
      c.send(cmd(0x04, Buffer.from('r\0')));
      const fields = await c.read((g) => g.some(isEnd) || g.some((p) => p.payload[0] === 0xff));
      expect(fields.length).toBeGreaterThanOrEqual(3); // id, note, end
      const stats = await c.one(cmd(0x09));
      expect(stats.payload.toString()).toMatch(/Uptime/);
      expect(errOf(await c.one(cmd(0x0c, u32(1)))).code).toBe(1227);
      expect((await c.one(cmd(0x0e))).payload[0]).toBe(0x00);
    } finally {
      c.sock.destroy();
    }
  });

  it('refuses COM_CHANGE_USER, shutdown and replication commands, and answers unknown ones, without ending the session', async () => {
    const c = await RawClient.open('alice@raw');
    try {
      expect(errOf(await c.one(cmd(0x11, Buffer.from('root\0\0'))))).toMatchObject({ code: 1227, message: expect.stringMatching(/COM_CHANGE_USER is not supported/) });
      expect(errOf(await c.one(cmd(0x08, Buffer.from([0]))))).toMatchObject({ code: 1227, message: expect.stringMatching(/COM_SHUTDOWN/) });
      expect(errOf(await c.one(cmd(0x12, u32(4), u16(0), u32(1))))).toMatchObject({ code: 1227 });
      expect(errOf(await c.one(cmd(0x99)))).toMatchObject({ code: 1047, message: expect.stringMatching(/unknown command 0x99/) });
      expect(errOf(await c.one(cmd(0x17, Buffer.from([1, 2]))))).toMatchObject({ code: 1105, message: expect.stringMatching(/malformed COM_STMT_EXECUTE/) });
      expect((await c.one(cmd(0x0e))).payload[0]).toBe(0x00);
      const refused = await auditOf(b, 'refused');
      expect(refused.some((e) => (e.data as { what: string }).what === 'COM_CHANGE_USER')).toBe(true);
    } finally {
      c.sock.destroy();
    }
  });

  it('ends the session with a clear ERR on a command packet out of sequence; other sessions go on', async () => {
    const c = await RawClient.open('alice@raw');
    c.sock.write(encodePacket(3, cmd(0x0e)).bytes);
    const got = await c.read(() => false, 5000);
    expect(c.closed).toBe(true);
    expect(errOf(got[0]!)).toMatchObject({ code: 1156, message: expect.stringMatching(/out of order/) });
    const c2 = await RawClient.open('alice@raw');
    const ok = await c2.one(cmd(0x03, Buffer.from('SELECT 1')));
    expect(ok.payload[0]).toBe(1);
    c2.sock.destroy();
  });

  it('ends the session with ERR 1153 on a packet over limits.max_message_bytes', async () => {
    const small = await startMysqlBroker([
      'data_dir: ./data',
      'listen: { mysql: "127.0.0.1:0" }',
      'limits: { max_message_bytes: 4096 }',
      'segments: [{ name: s }]',
      'targets:',
      `  - { name: raw, segment: s, protocol: mysql, address: "127.0.0.1:3306", user: root, database: ${db.name}, tls: disable }`,
      'roles: [{ name: r, allow: [{ segments: [s] }] }]',
      'users: [{ name: alice, roles: [r] }]',
      '',
    ].join('\n'), { alice: PW });
    const saved = b;
    b = small;
    try {
      const c = await RawClient.open('alice@raw');
      c.send(cmd(0x03, Buffer.from(`SELECT '${'x'.repeat(10_000)}'`)));
      const got = await c.read(() => false, 5000);
      expect(c.closed).toBe(true);
      expect(errOf(got[0]!)).toMatchObject({ code: 1153, message: expect.stringMatching(/more than 4096 bytes.*max_message_bytes/) });
    } finally {
      b = saved;
      await small.stop();
    }
  });
});
