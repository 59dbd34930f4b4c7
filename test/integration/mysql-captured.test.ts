/**
 * Parser robustness on real traffic: a mysql2 session against the machine's
 * MariaDB is captured through a TCP tap (both directions, byte-exact), then
 * the server's stream is fed to PacketSplitter + ResponseTracker cut at
 * every offset. Every cut must give the same packets and the same recorded
 * events as the uncut stream.
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import mysql from 'mysql2/promise';
import { CLIENT, parseGreeting, parseHandshakeResponse } from '../../protocols/mysql/handshake.js';
import { PacketSplitter, type LogicalPacket } from '../../protocols/mysql/packets.js';
import { ResponseTracker, type PendingCommand } from '../../protocols/mysql/tracker.js';
import type { QueryEvent } from '../../src/session.js';
import { splitMysqlStatements } from '../../src/sql/mysql.js';

interface Capture {
  readonly client: Buffer;
  readonly server: Buffer;
}

let capture: Capture;

/** A tap on 127.0.0.1 that forwards to MariaDB and keeps every byte each way. */
async function tapped(run: (port: number) => Promise<void>): Promise<Capture> {
  const c: Buffer[] = [];
  const s: Buffer[] = [];
  const server = net.createServer((down) => {
    const up = net.connect(3306, '127.0.0.1');
    down.on('data', (d: Buffer) => { c.push(Buffer.from(d)); up.write(d); });
    up.on('data', (d: Buffer) => { s.push(Buffer.from(d)); down.write(d); });
    down.on('close', () => up.destroy());
    up.on('close', () => down.destroy());
    down.on('error', () => up.destroy());
    up.on('error', () => down.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  try {
    await run((server.address() as net.AddressInfo).port);
  } finally {
    await new Promise<void>((r) => server.close(() => r()));
  }
  return { client: Buffer.concat(c), server: Buffer.concat(s) };
}

function packetsOf(stream: Buffer, cuts: number[] = []): LogicalPacket[] {
  const sp = new PacketSplitter({ maxBytes: 64 << 20 });
  const out: LogicalPacket[] = [];
  let from = 0;
  for (const cut of [...cuts, stream.length]) {
    sp.push(stream.subarray(from, cut), (p) => out.push({ ...p, payload: Buffer.from(p.payload), raw: null }));
    from = cut;
  }
  return out;
}

/** What the relay would register for each command the client sent after login. */
function commandsOf(client: LogicalPacket[]): PendingCommand[] {
  const out: PendingCommand[] = [];
  for (const p of client) {
    const cmd = p.payload[0];
    const text = p.payload.subarray(1).toString('utf8');
    if (cmd === 0x03) out.push({ expect: 'results', step: 'query', statements: splitMysqlStatements(text) });
    else if (cmd === 0x16) out.push({ expect: 'prepare', step: 'prepare', statements: [text] });
    else if (cmd === 0x17) out.push({ expect: 'results', step: 'stmt_execute', statements: [`execute ${p.payload.readUInt32LE(1)}`] });
    else if (cmd === 0x19 || cmd === 0x01) out.push({ expect: 'none', step: 'other', statements: [], quiet: true });
    else if (cmd === 0x0e) out.push({ expect: 'single', step: 'other', statements: [], quiet: true });
    else throw new Error(`command 0x${(cmd ?? 0).toString(16)} not expected in the capture`);
  }
  return out;
}

/** Runs the tracker over the server's post-login packets cut at `cuts`; returns events and actions. */
function track(cap: Capture, cuts: number[]): { events: QueryEvent[]; actions: string[]; packets: number } {
  const client = packetsOf(cap.client);
  const greeting = parseGreeting(packetsOf(cap.server)[0]!.payload);
  const hello = parseHandshakeResponse(client[0]!.payload);
  const deprecateEof = (greeting.capabilities & hello.capabilities & CLIENT.DEPRECATE_EOF) !== 0;
  const events: QueryEvent[] = [];
  const t = new ResponseTracker(deprecateEof, (e) => events.push({ ...e, durationMs: 0, startedAt: 0 }));
  // Login: greeting, then the client's response and the server's OK (mysql_native_password, root without a password).
  const serverPackets = packetsOf(cap.server, cuts);
  const loginEnd = serverPackets.findIndex((p, i) => i > 0 && p.payload[0] === 0x00) + 1;
  // Each auth switch / more-data packet in the login got one more client packet.
  const clientLogin = 1 + serverPackets.slice(1, loginEnd - 1).length;
  for (const c of commandsOf(client.slice(clientLogin))) t.sent(c);
  const actions = serverPackets.slice(loginEnd).map((p) => t.packet(p));
  expect(t.pending).toBe(0);
  return { events, actions, packets: serverPackets.length };
}

describe('mysql parser on a captured mysql2 session', () => {
  beforeAll(async () => {
    const admin = await mysql.createConnection({ host: '127.0.0.1', port: 3306, user: 'root', database: 'test' });
    await admin.query('CREATE TABLE IF NOT EXISTS wicket_capture (id INT PRIMARY KEY, v VARCHAR(20), b BLOB)');
    await admin.query('DELETE FROM wicket_capture');
    await admin.end();
    capture = await tapped(async (port) => {
      const c = await mysql.createConnection({ host: '127.0.0.1', port, user: 'root', database: 'test', multipleStatements: true });
      await c.query("INSERT INTO wicket_capture VALUES (1, 'a', NULL), (2, NULL, 0xfefffb00), (3, 'ccc', '')");
      await c.query('SELECT * FROM wicket_capture ORDER BY id; SELECT 1 AS one; UPDATE wicket_capture SET v = v WHERE id = 9');
      await c.execute('SELECT id, v, b FROM wicket_capture WHERE id >= ?', [2]);
      await c.execute('SELECT id FROM wicket_capture WHERE v = ?', ['zzz']);
      await c.query('SELECT * FROM no_such_table_here').catch(() => undefined);
      await c.ping();
      await c.end();
    });
  }, 30_000);

  afterAll(async () => {
    const admin = await mysql.createConnection({ host: '127.0.0.1', port: 3306, user: 'root', database: 'test' });
    await admin.query('DROP TABLE IF EXISTS wicket_capture');
    await admin.end();
  });

  it('records what the session did', () => {
    const { events, actions } = track(capture, []);
    expect(actions.every((a) => a === 'forward')).toBe(true);
    expect(events.map((e) => [e.step, e.rows ?? null, e.error?.code ?? null])).toEqual([
      ['query', 3, null], // INSERT: 3 affected
      ['query', 3, null], // multi-statement string: the SELECT (3 rows) ...
      ['query', 1, null], // ... SELECT 1 (1 row) ...
      ['query', 0, null], // ... and the UPDATE (0 affected)
      ['prepare', null, null],
      ['stmt_execute', 2, null],
      ['prepare', null, null],
      ['stmt_execute', 0, null],
      ['query', null, '1146/42S02'],
    ]);
  });

  it('gives the same packets and events however the server stream is cut', () => {
    const whole = track(capture, []);
    const wholePackets = packetsOf(capture.server).map((p) => p.payload.toString('hex'));
    for (let i = 1; i < capture.server.length; i++) {
      const got = track(capture, [i]);
      expect(got.events).toEqual(whole.events);
      expect(packetsOf(capture.server, [i]).map((p) => p.payload.toString('hex'))).toEqual(wholePackets);
    }
  });

  it('reads the client stream the same way at every cut', () => {
    const whole = packetsOf(capture.client).map((p) => p.payload.toString('hex'));
    for (let i = 1; i < capture.client.length; i++) {
      expect(packetsOf(capture.client, [i]).map((p) => p.payload.toString('hex'))).toEqual(whole);
    }
  });
});
