/**
 * connectUpstream / cancelUpstream against real PostgreSQL servers (private
 * instances started once for the file, plus the machine's trust server on
 * 127.0.0.1:5432) and against scripted fake servers for hostile cases.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TargetConfig } from '../../src/config/schema.js';
import { WicketError } from '../../src/errors.js';
import { ScramClient } from '../../protocols/postgres/scram-client.js';
import { cancelUpstream, connectUpstream, type Upstream } from '../../protocols/postgres/upstream.js';
import { freePort, makeSelfSignedCert, startPgServer, type PgServer } from '../support/pg-server.js';

const PW = 's3cret-Upstream-pw';
const target = (over: Partial<TargetConfig>): TargetConfig =>
  ({ name: 'orders-db', segment: 'payments-prod', protocol: 'postgres', user: 'app', password: PW, tls: 'disable', ...over });
const connect = (t: Partial<TargetConfig>, extra: Partial<Parameters<typeof connectUpstream>[0]> = {}) =>
  connectUpstream({ target: target(t), database: 'postgres', applicationName: 'wicket:alice', ...extra });

/** Test-side simple-query client (its own tiny codec): Query, then DataRow/CommandComplete/ErrorResponse up to ReadyForQuery. */
class Client {
  private buf: Buffer;
  private onMessage: ((type: string, body: Buffer) => void) | undefined;
  constructor(readonly up: Upstream) {
    this.buf = up.leftover;
    up.socket.on('data', (d: Buffer) => { this.buf = Buffer.concat([this.buf, d]); this.drain(); });
    up.socket.resume();
  }
  private drain(): void {
    while (this.buf.length >= 5 && this.buf.length >= 1 + this.buf.readInt32BE(1)) {
      const len = this.buf.readInt32BE(1);
      const [type, body] = [String.fromCharCode(this.buf[0]!), this.buf.subarray(5, 1 + len)];
      this.buf = this.buf.subarray(1 + len);
      this.onMessage?.(type, body);
    }
  }
  query(sql: string): Promise<{ rows: Array<Array<string | null>>; error?: { code: string; message: string } }> {
    return new Promise((resolve) => {
      const rows: Array<Array<string | null>> = [];
      let error: { code: string; message: string } | undefined;
      this.onMessage = (type, body) => {
        if (type === 'D') {
          const row: Array<string | null> = [];
          for (let i = 0, o = 2; i < body.readInt16BE(0); i++) {
            const l = body.readInt32BE(o);
            row.push(l < 0 ? null : body.toString('utf8', o + 4, o + 4 + l));
            o += 4 + Math.max(l, 0);
          }
          rows.push(row);
        } else if (type === 'E') {
          const f = new Map(body.toString('utf8').split('\0').filter((s) => s.length > 1).map((s) => [s[0]!, s.slice(1)]));
          error = { code: f.get('C') ?? '', message: f.get('M') ?? '' };
        } else if (type === 'Z') resolve({ rows, ...(error ? { error } : {}) });
      };
      const q = Buffer.from(`${sql}\0`, 'utf8');
      const head = Buffer.alloc(5);
      head.write('Q');
      head.writeInt32BE(q.length + 4, 1);
      this.up.socket.write(Buffer.concat([head, q]));
    });
  }
  close(): void { this.up.socket.end(Buffer.from([0x58, 0, 0, 0, 4])); } // Terminate
}

async function roundTrip(up: Upstream): Promise<void> {
  expect(up.parameters.get('server_version')).toMatch(/^\d+/);
  expect(up.processId).toBeGreaterThan(0);
  expect(up.secretKey.length).toBe(4);
  const c = new Client(up);
  expect(await c.query('SELECT 1')).toEqual({ rows: [['1']] });
  c.close();
}

async function failure(p: Promise<unknown>): Promise<WicketError> {
  const e = await p.then(() => undefined, (err: unknown) => err);
  expect(e).toBeInstanceOf(WicketError);
  return e as WicketError;
}

let md5: PgServer, scram: PgServer, cleartext: PgServer, tlsOnly: PgServer;
const addr = (s: PgServer): string => `127.0.0.1:${s.port}`;
const users = [{ name: 'app', password: PW }];

beforeAll(async () => {
  [md5, scram, cleartext, tlsOnly] = await Promise.all([
    startPgServer({ auth: 'md5', users }),
    startPgServer({ auth: 'scram-sha-256', users, logStatements: true }),
    startPgServer({ auth: 'password', users }),
    startPgServer({ auth: 'scram-sha-256', users, sslOnly: true }),
  ]);
}, 120_000);
afterAll(async () => { await Promise.all([md5, scram, cleartext, tlsOnly].map((s) => s?.stop())); });

describe('connectUpstream against real servers', () => {
  it('trust: the machine server on 127.0.0.1:5432, with application_name and filtered extra params', async () => {
    const up = await connect({ address: '127.0.0.1:5432', user: 'postgres', password: undefined, tls: 'prefer' },
      { extraParams: { TimeZone: 'UTC', user: 'mallory', options: '-c role=x' } });
    const c = new Client(up);
    expect(await c.query("SELECT current_user, current_setting('application_name'), current_setting('TimeZone')"))
      .toEqual({ rows: [['postgres', 'wicket:alice', 'UTC']] });
    c.close();
  });
  it('md5', async () => { const up = await connect({ address: addr(md5) }); expect(up.tls).toBe(false); await roundTrip(up); });
  it('tls: prefer falls back to plain when the server says N', async () => {
    const up = await connect({ address: addr(md5), tls: 'prefer' });
    expect(up.tls).toBe(false);
    await roundTrip(up);
  });
  it('scram-sha-256 (the statement reaches the server log)', async () => {
    await roundTrip(await connect({ address: addr(scram) }));
    await expect.poll(async () => (await import('node:fs')).readFileSync(scram.logFile, 'utf8')).toContain('statement: SELECT 1');
  });
  it('cleartext password', async () => { await roundTrip(await connect({ address: addr(cleartext) })); });
  it('tls: require on a hostssl-only server', async () => {
    const up = await connect({ address: addr(tlsOnly), tls: 'require' });
    expect(up.tls).toBe(true);
    await roundTrip(up);
  });
  it('tls: verify with the right CA (cert SAN IP:127.0.0.1)', async () => {
    const up = await connect({ address: addr(tlsOnly), tls: 'verify', ca: tlsOnly.certPem });
    expect(up.tls).toBe(true);
    await roundTrip(up);
  });
  it('tls: verify with the wrong CA fails clearly', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wicket-ca-'));
    const other = await makeSelfSignedCert(join(dir, 'c.pem'), join(dir, 'k.pem'));
    rmSync(dir, { recursive: true, force: true });
    const e = await failure(connect({ address: addr(tlsOnly), tls: 'verify', ca: other }));
    expect(e.code).toBe('WICKET_ERR_UPSTREAM');
    expect(e.message).toMatch(new RegExp(`^upstream orders-db: TLS handshake with ${addr(tlsOnly)} failed: .*(signature|self-signed|verify)`));
  });
  it('tls: require against a server without TLS fails clearly', async () => {
    const e = await failure(connect({ address: addr(md5), tls: 'require' }));
    expect(e.message).toBe(`upstream orders-db: server at ${addr(md5)} does not support TLS (tls: require)`);
  });
  it('tls: disable against a hostssl-only server surfaces the pg_hba error', async () => {
    const e = await failure(connect({ address: addr(tlsOnly) }));
    expect(e.message).toMatch(/^upstream orders-db: no pg_hba\.conf entry .*no encryption \(SQLSTATE 28000\)$/);
    expect(e.details?.sqlstate).toBe('28000');
  });
  for (const which of ['scram', 'md5', 'cleartext'] as const) {
    it(`wrong password (${which}) → WICKET_ERR_UPSTREAM 28P01 without the password`, async () => {
      const server = { scram, md5, cleartext }[which];
      const e = await failure(connect({ address: addr(server), password: 'Wrong-pw-9f3a' }));
      expect(e.code).toBe('WICKET_ERR_UPSTREAM');
      expect(e.message).toBe('upstream orders-db: password authentication failed for user "app" (SQLSTATE 28P01)');
      expect(e.details?.sqlstate).toBe('28P01');
      expect(JSON.stringify({ m: e.message, d: e.details, s: e.stack })).not.toContain('Wrong-pw-9f3a');
    });
  }
  it('connection refused', async () => {
    const port = await freePort();
    const e = await failure(connect({ address: `127.0.0.1:${port}` }));
    expect(e.message).toBe(`upstream orders-db: cannot connect to 127.0.0.1:${port}: ECONNREFUSED`);
  });
  for (const [label, tlsMode] of [['plain', 'disable'], ['TLS', 'require']] as const) {
    it(`cancelUpstream cancels a running pg_sleep (${label})`, async () => {
      const t = { address: addr(tlsMode === 'disable' ? scram : tlsOnly), tls: tlsMode };
      const up = await connect(t);
      const c = new Client(up);
      const running = c.query('SELECT pg_sleep(30)');
      await new Promise((r) => setTimeout(r, 300));
      const t0 = Date.now();
      await cancelUpstream(target(t), up.processId, up.secretKey);
      const res = await running;
      expect(Date.now() - t0).toBeLessThan(2000);
      expect(res.error?.code).toBe('57014');
      c.close();
    });
  }
});

// ---- scripted fake servers for what a real server will not do ----
const be = (tag: string, ...parts: Buffer[]): Buffer => {
  const body = Buffer.concat(parts);
  const head = Buffer.alloc(5);
  head.write(tag, 'latin1');
  head.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
};
const i32 = (n: number): Buffer => { const b = Buffer.alloc(4); b.writeInt32BE(n); return b; };
const auth = (code: number, ...rest: Buffer[]): Buffer => be('R', i32(code), ...rest);
const READY = Buffer.concat([auth(0), be('K', i32(42), i32(7)), be('Z', Buffer.from('I'))]);

type Next = () => Promise<Buffer>;
async function fake(script: (s: net.Socket, next: Next) => Promise<void> | void): Promise<{ port: number; close: () => void }> {
  const sockets = new Set<net.Socket>();
  const srv = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => undefined);
    let buf = Buffer.alloc(0);
    let wake: (() => void) | undefined;
    let first = true;
    s.on('data', (d: Buffer) => { buf = Buffer.concat([buf, d]); wake?.(); });
    const next: Next = async () => { // the first packet is untyped (startup), later ones carry a tag byte
      for (const off = first ? 0 : 1; ; await new Promise<void>((r) => (wake = r))) {
        if (buf.length >= off + 4 && buf.length >= off + buf.readInt32BE(off)) {
          const m = buf.subarray(0, off + buf.readInt32BE(off));
          buf = buf.subarray(m.length);
          first = false;
          return m;
        }
      }
    };
    void Promise.resolve(script(s, next)).catch(() => s.destroy());
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return { port: (srv.address() as net.AddressInfo).port, close: () => { sockets.forEach((s) => s.destroy()); srv.close(); } };
}
async function againstFake(script: Parameters<typeof fake>[0], t: Partial<TargetConfig> = {}, extra = {}): Promise<Upstream | WicketError> {
  const f = await fake(script);
  try {
    return await connect({ address: `127.0.0.1:${f.port}`, ...t }, extra);
  } catch (e) { return e as WicketError; } finally { f.close(); }
}
const mechanisms = (...m: string[]): Buffer => auth(10, ...m.map((x) => Buffer.from(`${x}\0`)), Buffer.from([0]));

describe('connectUpstream against hostile or odd servers', () => {
  it('hands over bytes that arrived after ReadyForQuery as leftover', async () => {
    const up = await againstFake(async (s, next) => { await next(); s.write(Buffer.concat([READY, Buffer.from('extra')])); });
    expect(up).not.toBeInstanceOf(Error);
    expect((up as Upstream).leftover.toString()).toBe('extra');
    expect((up as Upstream).secretKey).toEqual(i32(7));
    (up as Upstream).socket.destroy();
  });
  it('refuses SCRAM-SHA-256-PLUS-only servers and GSSAPI', async () => {
    const plus = await againstFake(async (s, next) => { await next(); s.write(mechanisms('SCRAM-SHA-256-PLUS')); });
    expect((plus as Error).message).toBe('upstream orders-db: server requires SCRAM-SHA-256-PLUS (channel binding), which wicket does not support');
    const gss = await againstFake(async (s, next) => { await next(); s.write(auth(7)); });
    expect((gss as Error).message).toBe('upstream orders-db: server requested unsupported authentication (GSSAPI)');
  });
  it('rejects a server that fails SCRAM verification, or skips it', async () => {
    const scramFake = (final: (first: string) => Buffer) => async (s: net.Socket, next: Next) => {
      await next();
      s.write(mechanisms('SCRAM-SHA-256'));
      const init = (await next()).toString('latin1');
      const nonce = /r=([^,\0]+)/.exec(init)![1]!;
      s.write(auth(11, Buffer.from(`r=${nonce}srv,s=${Buffer.from('salt').toString('base64')},i=4096`)));
      await next();
      s.write(final(nonce));
    };
    const bad = await againstFake(scramFake(() => Buffer.concat([auth(12, Buffer.from(`v=${Buffer.alloc(32, 1).toString('base64')}`)), READY])));
    expect((bad as WicketError).message).toBe('upstream orders-db: upstream server failed SCRAM verification');
    const skipped = await againstFake(scramFake(() => READY));
    expect((skipped as WicketError).message).toBe('upstream orders-db: upstream server skipped SCRAM verification');
  });
  it('bounds startup messages at 1 MiB and rejects plaintext injected after accepting TLS', async () => {
    const big = await againstFake(async (s, next) => { await next(); s.write(Buffer.concat([Buffer.from('S'), i32(2 * 1024 * 1024)])); });
    expect((big as WicketError).code).toBe('WICKET_ERR_PROTOCOL');
    expect((big as WicketError).message).toMatch(/out of bounds/);
    const injected = await againstFake(async (s, next) => { await next(); s.write(Buffer.concat([Buffer.from('S'), READY])); }, { tls: 'require' });
    expect((injected as WicketError).message).toMatch(/sent unencrypted data after accepting TLS/);
  });
  it('times out a silent server and honours an abort signal', async () => {
    const slow = await againstFake(() => undefined, {}, { connectTimeoutMs: 200 });
    expect((slow as WicketError).message).toMatch(/^upstream orders-db: 127\.0\.0\.1:\d+ did not finish startup within 200 ms$/);
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 100);
    const aborted = await againstFake(() => undefined, {}, { signal: ac.signal });
    expect((aborted as WicketError).message).toBe('upstream orders-db: connection attempt aborted');
  });
});

describe('ScramClient', () => {
  it('matches the RFC 7677 SCRAM-SHA-256 test vector', async () => {
    const c = new ScramClient('pencil', { username: 'user', nonce: 'rOprNGfwEbeRWgbNEkqO' });
    expect(c.clientFirst().toString()).toBe('n,,n=user,r=rOprNGfwEbeRWgbNEkqO');
    const final = await c.serverFirst(Buffer.from('r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096'));
    expect(final.toString()).toBe('c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=');
    c.serverFinal(Buffer.from('v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4='));
    expect(c.verified).toBe(true);
  });
  it('rejects a foreign nonce and an unbounded iteration count', async () => {
    const c = new ScramClient('pw', { nonce: 'abc' });
    c.clientFirst();
    await expect(c.serverFirst(Buffer.from('r=xyz123,s=c2FsdA==,i=4096'))).rejects.toThrow(/nonce/);
    const d = new ScramClient('pw', { nonce: 'abc' });
    d.clientFirst();
    await expect(d.serverFirst(Buffer.from('r=abcdef,s=c2FsdA==,i=20000000'))).rejects.toThrow(/iteration count/);
  });
});
