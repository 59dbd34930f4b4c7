/**
 * Shared pieces of the postgres-policy integration tests: a broker started
 * in-process on a temp config, real clients (psql subprocesses, the `pg`
 * driver) pointed at it, raw sockets for hostile bytes, and audit lookups.
 *
 * psql always runs asynchronously: the broker lives in this process, so a
 * spawnSync would freeze it while psql waits for it.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { startWicket, type Running } from '../../src/runtime.js';
import { makePasswordCredential } from '../../src/auth/password.js';
import type { AuditEvent } from '../../src/store/types.js';
import { tmpDir } from './cli.js';

const run = promisify(execFile);

export interface Broker {
  readonly running: Running;
  readonly dir: string;
  readonly cfg: string;
  readonly dataDir: string;
  readonly host: string;
  readonly port: number;
  readonly logs: string[];
  stop(): Promise<void>;
}

/** Writes `yaml` as wicket.yaml in a fresh temp dir (plus `files`), starts the broker and sets passwords. */
export async function startBroker(yaml: string, passwords: Record<string, string>, files: Record<string, string> = {}): Promise<Broker> {
  const dir = tmpDir('wicket-pgpol-');
  const cfg = join(dir, 'wicket.yaml');
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  writeFileSync(cfg, yaml);
  const logs: string[] = [];
  const running = await startWicket(cfg, { log: (l) => logs.push(l), pollMs: 100 });
  for (const [user, pw] of Object.entries(passwords)) {
    await running.store.upsertUser(user, await makePasswordCredential(pw, Buffer.from(`salt-${user}`).toString('base64')), false, Date.now());
  }
  const addr = running.addresses.postgres!;
  const i = addr.lastIndexOf(':');
  return {
    running, dir, cfg, dataDir: join(dir, 'data'), host: addr.slice(0, i), port: Number(addr.slice(i + 1)), logs,
    stop: async () => {
      await running.stop('test over');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A throwaway database on the machine's PostgreSQL (127.0.0.1:5432, trust). */
export async function machineDb(prefix: string): Promise<{ name: string; sql(q: string): Promise<string>; drop(): Promise<void> }> {
  const name = `${prefix}_${process.pid}_${Date.now().toString(36)}`;
  const psqlAdmin = async (db: string, q: string): Promise<string> =>
    (await run('psql', ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-h', '127.0.0.1', '-p', '5432', '-U', 'postgres', '-d', db, '-c', q])).stdout.trim();
  await psqlAdmin('postgres', `create database ${name}`);
  return {
    name,
    sql: (q) => psqlAdmin(name, q),
    drop: async () => void (await psqlAdmin('postgres', `drop database if exists ${name} with (force)`).catch(() => undefined)),
  };
}

export interface PsqlResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly ms: number;
}

/** `key=value` conninfo from an object (values quoted when needed). */
export function conninfo(o: Record<string, string | number>): string {
  return Object.entries(o).map(([k, v]) => `${k}='${String(v).replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`).join(' ');
}

/** Starts psql; `done` resolves when it exits. `sql` runs with -c (one Query message per -c). */
export function psqlStart(b: Broker, o: { user: string; password: string; dbname?: string; sslmode?: string; extra?: Record<string, string> }, sql: string[]): { child: ChildProcess; done: Promise<PsqlResult> } {
  const info = conninfo({ host: b.host, port: b.port, user: o.user, ...(o.dbname ? { dbname: o.dbname } : {}), sslmode: o.sslmode ?? 'disable', connect_timeout: 10, ...o.extra });
  const args = ['-X', '-A', '-t', '-w', '-v', 'ON_ERROR_STOP=1', '-d', info, ...sql.flatMap((s) => ['-c', s])];
  const t0 = Date.now();
  const child = spawn('psql', args, { env: { ...process.env, PGPASSWORD: o.password, PGCONNECT_TIMEOUT: '10', PGAPPNAME: 'psql-test' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<PsqlResult>((resolve) => child.on('close', (code) => resolve({ code, stdout: stdout.trim(), stderr, ms: Date.now() - t0 })));
  return { child, done };
}

export const psql = (b: Broker, o: Parameters<typeof psqlStart>[1], ...sql: string[]): Promise<PsqlResult> => psqlStart(b, o, sql).done;

/** A connected `pg` client; 'error' events are collected (never thrown) in `errors`. */
export async function pgConnect(b: Broker, o: { user: string; password: string; database?: string; ssl?: pg.ClientConfig['ssl']; localAddress?: string }): Promise<pg.Client & { errors: Error[]; ended: Promise<void> }> {
  const client = new pg.Client({
    host: b.host, port: b.port, user: o.user, password: o.password, database: o.database, ssl: o.ssl ?? false, connectionTimeoutMillis: 10_000,
    ...(o.localAddress ? { stream: () => boundSocket(o.localAddress!) } : {}),
  }) as pg.Client & { errors: Error[]; ended: Promise<void> };
  client.errors = [];
  client.on('error', (e) => client.errors.push(e));
  client.ended = new Promise((r) => client.once('end', () => r()));
  await client.connect();
  return client;
}

/** A socket whose connect(port, host) binds to `localAddress` first (pg has no option for it). */
function boundSocket(localAddress: string): net.Socket {
  const s = new net.Socket();
  const connect = s.connect.bind(s) as (o: net.TcpNetConnectOpts) => net.Socket;
  (s as unknown as { connect: (port: number, host: string) => net.Socket }).connect = (port, host) => connect({ port, host, localAddress });
  return s;
}

export interface PgError extends Error {
  code?: string;
  severity?: string;
}

/** The rejection of `p` (fails the test if it resolves). */
export async function rejection(p: Promise<unknown>): Promise<PgError> {
  const r = await p.then((v) => ({ ok: true as const, v }), (e: unknown) => ({ ok: false as const, e }));
  if (r.ok) throw new Error(`expected a failure, got ${JSON.stringify(r.v, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v))?.slice(0, 300)}`);
  return r.e as PgError;
}

/** Connects a pg client expecting the login to fail; returns the error. */
export async function loginError(b: Broker, o: Parameters<typeof pgConnect>[1]): Promise<PgError> {
  return rejection(pgConnect(b, o).then(async (c) => { await c.end(); return 'connected'; }));
}

/** Audit events of `kind` (after flushing the writer). */
/** Every audit event of `kind` the broker has written (after flushing). Works for any in-process broker. */
export async function auditEvents(b: Pick<Broker, 'running'>, kind: string): Promise<AuditEvent[]> {
  await b.running.audit.flush();
  const out: AuditEvent[] = [];
  for (let after = 0; ;) {
    const page = await b.running.store.readAudit(after, 1000);
    if (page.length === 0) break;
    out.push(...page.filter((e) => e.kind === kind));
    after = page[page.length - 1]!.seq;
  }
  return out;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `f` until it returns a non-null value (or throws after `ms`). */
export async function waitFor<T>(f: () => T | null | undefined | Promise<T | null | undefined>, ms = 5000, what = 'condition'): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== null && v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

/** The live session of `user` on `target` in this broker (waits for it to appear). */
export function liveSession(b: Broker, user: string, target: string, exclude: ReadonlySet<string> = new Set()): Promise<string> {
  return waitFor(() => b.running.broker.liveSessions().find((s) => s.user === user && s.target === target && !exclude.has(s.id))?.id, 5000, `live session of ${user}@${target}`);
}

// ---- raw wire helpers ----

export const int32 = (n: number): Buffer => { const b = Buffer.alloc(4); b.writeInt32BE(n); return b; };

/** An untyped startup-phase packet with the given code and body. */
export function startupPacket(params: Record<string, string>, code = 196608): Buffer {
  const body = Buffer.concat([int32(code), ...Object.entries(params).flatMap(([k, v]) => [Buffer.from(`${k}\0${v}\0`)]), Buffer.from([0])]);
  return Buffer.concat([int32(body.length + 4), body]);
}
export const SSL_REQUEST = Buffer.concat([int32(8), int32(80877103)]);
export const GSSENC_REQUEST = Buffer.concat([int32(8), int32(80877104)]);
export const cancelRequest = (pid: number, key: Buffer): Buffer => Buffer.concat([int32(16), int32(80877102), int32(pid), key]);

export interface RawResult {
  readonly data: Buffer;
  /** true when the server closed the connection; false when we gave up waiting. */
  readonly closed: boolean;
}

/** A raw TCP connection to the broker that collects everything it receives. */
export class Raw {
  readonly sock: net.Socket;
  data = Buffer.alloc(0);
  closed = false;
  private readonly waiters = new Set<() => void>();
  private readonly ready: Promise<void>;

  constructor(b: Broker, localAddress?: string) {
    this.sock = net.connect({ host: b.host, port: b.port, localAddress });
    this.ready = new Promise((resolve, reject) => { this.sock.once('connect', resolve); this.sock.once('error', reject); });
    this.sock.on('data', (d: Buffer) => { this.data = Buffer.concat([this.data, d]); this.poke(); });
    this.sock.on('error', () => undefined);
    this.sock.on('close', () => { this.closed = true; this.poke(); });
  }

  private poke(): void { for (const w of [...this.waiters]) w(); }

  async send(...bufs: Buffer[]): Promise<void> {
    await this.ready;
    this.sock.write(Buffer.concat(bufs));
  }

  /** Waits until `pred` holds on what was received (or the socket closed / `ms` passed). */
  async until(pred: (r: Raw) => boolean, ms = 3000): Promise<RawResult> {
    const end = Date.now() + ms;
    while (!pred(this) && !this.closed && Date.now() < end) {
      await new Promise<void>((r) => { const w = (): void => { this.waiters.delete(w); r(); }; this.waiters.add(w); setTimeout(w, Math.max(1, end - Date.now())).unref(); });
    }
    return { data: this.data, closed: this.closed };
  }

  /** Waits for the server to close the connection. */
  closeWait(ms = 3000): Promise<RawResult> {
    return this.until(() => false, ms);
  }

  destroy(): void { this.sock.destroy(); }
}

/** Typed backend messages in `buf` (type char + body); stops at an incomplete one. */
export function backendMessages(buf: Buffer): Array<{ type: string; body: Buffer }> {
  const out: Array<{ type: string; body: Buffer }> = [];
  let o = 0;
  while (buf.length - o >= 5) {
    const len = buf.readInt32BE(o + 1);
    if (len < 4 || o + 1 + len > buf.length) break;
    out.push({ type: String.fromCharCode(buf[o]!), body: buf.subarray(o + 5, o + 1 + len) });
    o += 1 + len;
  }
  return out;
}

/** Fields of an ErrorResponse body: S, C, M ... */
export function errorFields(body: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of body.toString('utf8').split('\0')) if (f.length > 1) out[f[0]!] = f.slice(1);
  return out;
}

/** The ErrorResponse fields in what a raw socket received, if there is one. */
export function firstError(buf: Buffer): Record<string, string> | null {
  const e = backendMessages(buf).find((m) => m.type === 'E');
  return e ? errorFields(e.body) : null;
}

/**
 * Drives a raw connection through SCRAM up to (not including) the client's
 * final message, which it returns framed: the caller decides when to send it.
 */
export async function scramUpToFinal(raw: Raw, user: string, password: string, database: string): Promise<Buffer> {
  const { ScramClient } = await import('../../protocols/postgres/scram-client.js');
  const typed = (t: string, body: Buffer): Buffer => Buffer.concat([Buffer.from(t), int32(body.length + 4), body]);
  const authCode = (n: number) => (r: Raw): boolean => backendMessages(r.data).some((m) => m.type === 'R' && m.body.readInt32BE(0) === n);
  await raw.send(startupPacket({ user, database }));
  await raw.until(authCode(10));
  const scram = new ScramClient(password);
  const first = scram.clientFirst();
  await raw.send(typed('p', Buffer.concat([Buffer.from('SCRAM-SHA-256\0'), int32(first.length), first])));
  await raw.until(authCode(11));
  const serverFirst = backendMessages(raw.data).find((m) => m.type === 'R' && m.body.readInt32BE(0) === 11);
  if (!serverFirst) throw new Error(`no SASLContinue; got ${JSON.stringify(firstError(raw.data))}`);
  return typed('p', await scram.serverFirst(serverFirst.body.subarray(4)));
}
