/**
 * Webhook delivery against real local HTTP receivers: signature, headers,
 * retries with backoff, give-up, timeouts, the bounded queue, shutdown, and
 * the Notifier's audit polling with kind filtering.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/load.js';
import type { Config } from '../../../src/config/schema.js';
import { buildPayload, type NotifyPayload } from '../../../src/notify/events.js';
import { Notifier } from '../../../src/notify/notifier.js';
import { sign, Webhook, type WebhookSpec } from '../../../src/notify/webhook.js';
import type { AuditEvent, AuditHead, AuditInput, Store } from '../../../src/store/types.js';

// ---- a local receiver ----

interface Received {
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
  readonly json: Record<string, unknown>;
  readonly at: number;
}

type Respond = (r: Received, n: number) => number | 'hang';

interface Receiver {
  readonly url: string;
  readonly got: Received[];
  respond: Respond;
  dropConnections(): void;
  close(): Promise<void>;
}

const open: Server[] = [];
afterEach(async () => {
  for (const s of open.splice(0)) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

async function receiver(respond: Respond = () => 200): Promise<Receiver> {
  const got: Received[] = [];
  const rec: Receiver = {
    url: '',
    got,
    respond,
    dropConnections: () => server.closeAllConnections(),
    close: async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const r: Received = { headers: req.headers, body, json: JSON.parse(body.toString('utf8')) as Record<string, unknown>, at: Date.now() };
      got.push(r);
      const status = rec.respond(r, got.length);
      if (status !== 'hang') res.writeHead(status).end('ok');
    });
  });
  open.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  (rec as { url: string }).url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  return rec;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until<T>(f: () => T | undefined | null | false, ms = 5000, what = 'condition'): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v !== undefined && v !== null && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** The receiver side of the documented scheme (README "Notifications"). */
function verify(secret: string, r: Received, maxSkewS = 300): boolean {
  const ts = String(r.headers['x-wicket-timestamp'] ?? '');
  const sig = String(r.headers['x-wicket-signature'] ?? '');
  const expected = `sha256=${createHmac('sha256', secret).update(`${ts}.`).update(r.body).digest('hex')}`;
  const fresh = Math.abs(Date.now() / 1000 - Number(ts)) <= maxSkewS;
  return fresh && sig.length === expected.length && timingSafeEqual(Buffer.from(sig), Buffer.from(expected));
}

function payload(seq: number, event: NotifyPayload['event'] = 'segment.locked', data: Record<string, unknown> = { segment: 'payments', reason: 'test' }): NotifyPayload {
  return { id: String(seq), event, at: new Date().toISOString(), actor: 'os:root', target: null, session: null, data, broker: 'b1' };
}

function spec(url: string, extra: Partial<WebhookSpec> = {}): WebhookSpec {
  return { label: 'test', url, events: ['*'], format: 'json', ...extra };
}

const FAST = [20, 40, 80, 160];

// ---- Webhook ----

describe('Webhook delivery', () => {
  it('POSTs the payload with headers and an HMAC signature the receiver can verify', async () => {
    const rx = await receiver();
    const hook = new Webhook(spec(rx.url, { secret: 'k3y' }), { retryDelaysMs: FAST });
    hook.enqueue(payload(1));
    hook.enqueue(payload(2, 'segment.unlocked', { segment: 'payments' }));
    await hook.idle();
    expect(rx.got).toHaveLength(2);
    const [a, b] = rx.got as [Received, Received];
    expect(a.json).toEqual({ ...payload(1), at: a.json.at });
    expect(b.json.event).toBe('segment.unlocked');
    expect(a.headers['content-type']).toBe('application/json');
    expect(a.headers['user-agent']).toBe('wicket');
    expect(a.headers['x-wicket-event']).toBe('segment.locked');
    expect(b.headers['x-wicket-event']).toBe('segment.unlocked');
    expect(a.headers['x-wicket-delivery']).toMatch(/^[0-9a-f-]{36}$/);
    expect(a.headers['x-wicket-delivery']).not.toBe(b.headers['x-wicket-delivery']);
    expect(Number(a.headers['x-wicket-timestamp'])).toBeCloseTo(Date.now() / 1000, -1);
    expect(a.headers['x-wicket-signature']).toMatch(/^sha256=[0-9a-f]{64}$/);
    expect(verify('k3y', a)).toBe(true);
    expect(verify('k3y', b)).toBe(true);
    expect(verify('wrong', a)).toBe(false);
    // The signature covers the exact bytes: any change breaks it.
    expect(verify('k3y', { ...a, body: Buffer.from(a.body.toString().replace('payments', 'paymentz')) })).toBe(false);
    // ... and the timestamp: replaying the body under a new timestamp fails.
    expect(verify('k3y', { ...a, headers: { ...a.headers, 'x-wicket-timestamp': String(Number(a.headers['x-wicket-timestamp']) + 1) } })).toBe(false);
    expect(hook.stats).toEqual({ delivered: 2, failed: 0, dropped: 0, attempts: 2 });
  });

  it('sign() is HMAC-SHA256 over "<timestamp>.<body>"', () => {
    const body = Buffer.from('{"a":1}');
    expect(sign('s', '1700000000', body)).toBe(`sha256=${createHmac('sha256', 's').update('1700000000.{"a":1}').digest('hex')}`);
  });

  it('sends no signature without a secret', async () => {
    const rx = await receiver();
    const hook = new Webhook(spec(rx.url));
    hook.enqueue(payload(1));
    await hook.idle();
    expect(rx.got[0]!.headers['x-wicket-signature']).toBeUndefined();
    expect(rx.got[0]!.headers['x-wicket-timestamp']).toBeDefined();
  });

  it('slack format: { text, wicket: payload }', async () => {
    const rx = await receiver();
    const hook = new Webhook(spec(rx.url, { format: 'slack', secret: 'k' }));
    hook.enqueue(payload(5));
    await hook.idle();
    const r = rx.got[0]!;
    expect(r.json.text).toBe('[wicket] os:root locked segment payments: test');
    expect(r.json.wicket).toEqual({ ...payload(5), at: (r.json.wicket as NotifyPayload).at });
    expect(verify('k', r)).toBe(true);
  });

  it('retries after a 500 with backoff, then succeeds: same delivery id, fresh signature each time', async () => {
    const rx = await receiver((_r, n) => (n === 1 ? 500 : n === 2 ? 503 : 200));
    const logs: string[] = [];
    const hook = new Webhook(spec(rx.url, { secret: 'k' }), { retryDelaysMs: [100, 200, 400], log: (l) => logs.push(l) });
    hook.enqueue(payload(1));
    await hook.idle();
    expect(rx.got).toHaveLength(3);
    expect(new Set(rx.got.map((r) => r.headers['x-wicket-delivery'])).size).toBe(1);
    for (const r of rx.got) expect(verify('k', r)).toBe(true);
    const gap1 = rx.got[1]!.at - rx.got[0]!.at;
    const gap2 = rx.got[2]!.at - rx.got[1]!.at;
    expect(gap1).toBeGreaterThanOrEqual(90);
    expect(gap2).toBeGreaterThanOrEqual(190);
    expect(hook.stats).toMatchObject({ delivered: 1, failed: 0, attempts: 3 });
    expect(logs).toEqual([]);
  });

  it('gives up after N attempts without blocking another webhook', async () => {
    const down = await receiver(() => 500);
    const up = await receiver();
    const logs: string[] = [];
    const bad = new Webhook(spec(down.url, { label: 'down' }), { retryDelaysMs: [400, 400], log: (l) => logs.push(l) });
    const good = new Webhook(spec(up.url, { label: 'up' }), { retryDelaysMs: [400, 400], log: (l) => logs.push(l) });
    const t0 = Date.now();
    for (const h of [bad, good]) {
      h.enqueue(payload(1));
      h.enqueue(payload(2));
    }
    await good.idle();
    expect(up.got).toHaveLength(2);
    expect(Date.now() - t0).toBeLessThan(400); // did not wait for the failing one's backoff
    await bad.idle();
    expect(down.got).toHaveLength(6); // 2 deliveries x 3 attempts, in order
    expect(down.got.map((r) => r.json.id)).toEqual(['1', '1', '1', '2', '2', '2']);
    expect(bad.stats).toMatchObject({ delivered: 0, failed: 2, attempts: 6 });
    expect(logs).toEqual([
      'warning: notify: down: segment.locked #1 not delivered (gave up after 3 attempt(s)): HTTP 500',
      'warning: notify: down: segment.locked #2 not delivered (gave up after 3 attempt(s)): HTTP 500',
    ]);
  });

  it('does not retry a 4xx other than 408/429, and retries a refused connection', async () => {
    const rx = await receiver(() => 404);
    const logs: string[] = [];
    const hook = new Webhook(spec(rx.url), { retryDelaysMs: FAST, log: (l) => logs.push(l) });
    hook.enqueue(payload(1));
    await hook.idle();
    expect(rx.got).toHaveLength(1);
    expect(logs).toEqual(['warning: notify: test: segment.locked #1 not delivered (not retried): HTTP 404']);

    const gone = await receiver();
    await gone.close();
    const logs2: string[] = [];
    const dead = new Webhook(spec(gone.url), { retryDelaysMs: [10, 10], log: (l) => logs2.push(l) });
    dead.enqueue(payload(1));
    await dead.idle();
    expect(dead.stats).toMatchObject({ failed: 1, attempts: 3 });
    expect(logs2[0]).toBe('warning: notify: test: segment.locked #1 not delivered (gave up after 3 attempt(s)): ECONNREFUSED');
  });

  it('times out a request that hangs and retries it', async () => {
    const rx = await receiver((_r, n) => (n === 1 ? 'hang' : 200));
    const hook = new Webhook(spec(rx.url), { retryDelaysMs: [10], timeoutMs: 200 });
    const t0 = Date.now();
    hook.enqueue(payload(1));
    await hook.idle();
    expect(Date.now() - t0).toBeGreaterThanOrEqual(190);
    expect(rx.got).toHaveLength(2);
    expect(hook.stats).toMatchObject({ delivered: 1, attempts: 2 });
  });

  it('bounds its queue: the oldest waiting deliveries are dropped with a warning', async () => {
    const rx = await receiver(() => 'hang');
    const logs: string[] = [];
    const hook = new Webhook(spec(rx.url), { maxQueue: 3, retryDelaysMs: [], timeoutMs: 10_000, log: (l) => logs.push(l) });
    hook.enqueue(payload(1)); // in flight, hangs
    await until(() => rx.got.length === 1, 2000, 'first request');
    for (let i = 2; i <= 7; i++) hook.enqueue(payload(i)); // 6 for 3 places: 2, 3, 4 dropped
    expect(hook.queued).toBe(3);
    expect(hook.stats.dropped).toBe(3);
    expect(logs).toEqual(['warning: notify: test: queue full (3); dropped the 1 oldest undelivered notification(s)']);
    rx.respond = () => 200;
    rx.dropConnections(); // the hung request fails (no retries configured here)
    await hook.idle();
    expect(rx.got.map((r) => r.json.id)).toEqual(['1', '5', '6', '7']);
    expect(hook.stats).toMatchObject({ delivered: 3, failed: 1, dropped: 3 });
  });

  it('close(): queued work gets one attempt within the grace, then the rest is dropped and logged', async () => {
    const rx = await receiver(() => 500);
    const logs: string[] = [];
    const hook = new Webhook(spec(rx.url), { retryDelaysMs: [60_000], log: (l) => logs.push(l) });
    hook.enqueue(payload(1));
    hook.enqueue(payload(2));
    await until(() => rx.got.length === 1, 2000, 'first attempt');
    const t0 = Date.now();
    await hook.close(1000);
    expect(Date.now() - t0).toBeLessThan(1000); // the 60 s backoff was cut short
    expect(rx.got.map((r) => r.json.id)).toEqual(['1', '1', '2']);
    expect(hook.stats).toMatchObject({ delivered: 0, failed: 2 });
    hook.enqueue(payload(3)); // ignored after close
    await hook.idle();
    expect(rx.got).toHaveLength(3);
    expect(logs.every((l) => l.includes('not delivered'))).toBe(true);
  });

  it('close() with a hung endpoint stops at the grace', async () => {
    const rx = await receiver(() => 'hang');
    const logs: string[] = [];
    const hook = new Webhook(spec(rx.url), { timeoutMs: 60_000, log: (l) => logs.push(l) });
    hook.enqueue(payload(1));
    hook.enqueue(payload(2));
    await until(() => rx.got.length === 1, 2000, 'first attempt');
    const t0 = Date.now();
    await hook.close(200);
    expect(Date.now() - t0).toBeLessThan(1500);
    expect(hook.stats.failed).toBe(2);
    expect(logs).toContain('warning: notify: test: 1 notification(s) not delivered at shutdown');
  });
});

// ---- Notifier over a store's audit log ----

/** Just the two Store calls the Notifier makes, over an in-memory log. */
class FakeAudit {
  readonly events: AuditEvent[] = [];
  failReads = false;
  append(e: Omit<AuditInput, 'ts'> & { ts?: number }): void {
    const seq = this.events.length + 1;
    this.events.push({ ts: Date.now(), sessionId: null, target: null, ...e, seq, prevHash: '', hash: '' } as AuditEvent);
  }
  asStore(): Store {
    const store: Pick<Store, 'readAudit' | 'auditHead'> = {
      readAudit: async (after, limit) => {
        if (this.failReads) throw new Error('database is locked');
        return this.events.filter((e) => e.seq > after).slice(0, limit);
      },
      auditHead: async (): Promise<AuditHead> => ({ count: this.events.length, lastSeq: this.events.length, lastHash: '' }),
    };
    return store as Store;
  }
}

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function config(notifyYaml: string): Config {
  const dir = mkdtempSync(join(tmpdir(), 'wicket-notifier-'));
  dirs.push(dir);
  writeFileSync(join(dir, 'wicket.yaml'), `segments: [{ name: payments }]\n${notifyYaml}`);
  return loadConfig(join(dir, 'wicket.yaml'), {});
}

describe('Notifier', () => {
  it('delivers from the end of the log, maps kinds, and filters per webhook (a list, or *)', async () => {
    const locks = await receiver();
    const all = await receiver();
    const log = new FakeAudit();
    log.append({ kind: 'segment.lock', actor: 'old', data: { segment: 'payments', reason: 'before start' } });
    const cfg = config(`notify:
  - { name: locks, url: "${locks.url}", events: [segment.locked, segment.unlocked] }
  - { name: all, url: "${all.url}", events: ['*'], secret: literal-k }
`);
    const lines: string[] = [];
    const n = new Notifier({ config: () => cfg, env: {}, pollMs: 50, log: (l) => lines.push(l) });
    expect(lines).toEqual(['warning: wicket.yaml:4: notify[1].secret: literal secret in config file; use env:NAME or file:PATH']);
    await n.start(log.asStore(), 'broker-1');
    log.append({ kind: 'auth.ok', actor: 'alice', data: {} });
    log.append({ kind: 'segment.lock', actor: 'os:root', data: { segment: 'payments', reason: 'breach' } });
    log.append({ kind: 'policy.deny', actor: 'alice', target: 'orders-db', data: { reason: 'segment_locked', message: 'payments is locked' } });
    log.append({ kind: 'session.end', actor: 'bob', target: 'orders-db', sessionId: 's1', data: { status: 'ended' } });
    log.append({ kind: 'session.end', actor: 'bob', target: 'orders-db', sessionId: 's2', data: { status: 'terminated', reason: 'segment payments locked: breach' } });
    log.append({ kind: 'segment.unlock', actor: 'os:root', data: { segment: 'payments' } });
    await until(() => all.got.length === 4 && locks.got.length === 2, 5000, 'deliveries');
    expect(locks.got.map((r) => [r.json.id, r.json.event])).toEqual([['3', 'segment.locked'], ['7', 'segment.unlocked']]);
    expect(all.got.map((r) => [r.json.id, r.json.event])).toEqual([
      ['3', 'segment.locked'], ['4', 'session.denied'], ['6', 'session.terminated'], ['7', 'segment.unlocked'],
    ]);
    expect(all.got[2]!.json).toMatchObject({ actor: 'bob', target: 'orders-db', session: 's2', broker: 'broker-1', data: { reason: 'segment payments locked: breach' } });
    expect(verify('literal-k', all.got[0]!)).toBe(true);
    expect(locks.got[0]!.headers['x-wicket-signature']).toBeUndefined();
    await n.stop();
  });

  it('stop() makes a last read and delivers what the shutdown itself logged', async () => {
    const rx = await receiver();
    const log = new FakeAudit();
    const cfg = config(`notify: [{ url: "${rx.url}", events: [session.terminated] }]\n`);
    const n = new Notifier({ config: () => cfg, env: {}, pollMs: 60_000 });
    await n.start(log.asStore(), 'b');
    log.append({ kind: 'session.end', actor: 'bob', sessionId: 's1', data: { status: 'terminated', reason: 'broker shutting down' } });
    await n.stop();
    expect(rx.got.map((r) => r.json.session)).toEqual(['s1']);
  });

  it('a failing audit read is logged once and retried from the same place', async () => {
    const rx = await receiver();
    const log = new FakeAudit();
    const cfg = config(`notify: [{ url: "${rx.url}", events: ['*'] }]\n`);
    const lines: string[] = [];
    const n = new Notifier({ config: () => cfg, env: {}, pollMs: 20, log: (l) => lines.push(l) });
    await n.start(log.asStore(), 'b');
    log.failReads = true;
    log.append({ kind: 'segment.lock', actor: 'x', data: { segment: 'payments' } });
    await sleep(150);
    expect(lines).toEqual(['notify: cannot read the audit log (will retry): database is locked']);
    log.failReads = false;
    await until(() => rx.got.length === 1, 2000, 'delivery after recovery');
    expect(lines[1]).toBe('notify: reading the audit log works again');
    await n.stop();
  });

  it('follows a reload: new webhooks start at the current end; a bad secret keeps the old set', async () => {
    const a = await receiver();
    const b = await receiver();
    const log = new FakeAudit();
    let cfg = config('');
    const lines: string[] = [];
    const n = new Notifier({ config: () => cfg, env: { B_SECRET: 'bk' }, pollMs: 20, log: (l) => lines.push(l) });
    await n.start(log.asStore(), 'b');
    expect(n.webhooks).toHaveLength(0);
    log.append({ kind: 'segment.lock', actor: 'x', data: { segment: 'payments' } }); // before any webhook: never sent
    cfg = config(`notify: [{ name: a, url: "${a.url}", events: ['*'] }]\n`);
    await until(() => n.webhooks.length === 1, 2000, 'reconfigure');
    await n.tick();
    log.append({ kind: 'segment.unlock', actor: 'x', data: { segment: 'payments' } });
    await until(() => a.got.length === 1, 2000, 'a');
    expect(a.got[0]!.json.event).toBe('segment.unlocked');

    cfg = config(`notify: [{ name: b, url: "${b.url}", events: ['*'], secret: env:NOPE }]\n`);
    await until(() => lines.some((l) => l.includes('keeping the previous ones')), 2000, 'reload refusal');
    expect(lines.find((l) => l.includes('keeping'))).toContain('notify[0].secret: environment variable NOPE is not set');
    expect(n.webhooks[0]!.spec.label).toBe('a');

    const hookA = n.webhooks[0];
    cfg = config(`notify:\n  - { name: a, url: "${a.url}", events: ['*'] }\n  - { name: b, url: "${b.url}", events: ['*'], secret: env:B_SECRET }\n`);
    await until(() => n.webhooks.length === 2, 2000, 'second reconfigure');
    expect(n.webhooks[0]).toBe(hookA); // unchanged webhook kept, with its queue
    log.append({ kind: 'segment.lock', actor: 'y', data: { segment: 'payments', reason: 'again' } });
    await until(() => a.got.length === 2 && b.got.length === 1, 2000, 'both');
    expect(verify('bk', b.got[0]!)).toBe(true);
    await n.stop();
  });

  it('with no notify entries it never reads the audit log', async () => {
    const log = new FakeAudit();
    let reads = 0;
    const store = log.asStore();
    const counting = { ...store, readAudit: (...a: Parameters<Store['readAudit']>) => (reads++, store.readAudit(...a)), auditHead: () => (reads++, store.auditHead()) } as Store;
    const cfg = config('');
    const n = new Notifier({ config: () => cfg, pollMs: 10 });
    await n.start(counting, 'b');
    await sleep(80);
    await n.stop();
    expect(reads).toBe(0);
  });
});

describe('payload helper', () => {
  it('buildPayload is what the Notifier sends', () => {
    const ev: AuditEvent = { seq: 9, ts: 0, kind: 'segment.lock', actor: 'a', sessionId: null, target: null, data: { segment: 's' }, prevHash: '', hash: '' };
    expect(buildPayload(ev, 'segment.locked', 'b').id).toBe('9');
  });
});
