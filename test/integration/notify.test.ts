/**
 * Webhook notifications end to end: a broker runs in this process with a
 * `notify:` webhook pointing at a local receiver; `wicket segment lock` runs
 * as a separate CLI process (no broker in it), writes the audit log, and the
 * running broker delivers the signed `segment.locked` notification.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startWicket, type Running } from '../../src/runtime.js';
import { isWicketError } from '../../src/errors.js';
import { tmpDir, wicketAsync } from '../support/cli.js';

interface Received {
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
  readonly json: Record<string, unknown>;
  readonly at: number;
}

const SECRET_ENV = 'WICKET_TEST_NOTIFY_SECRET';
const SECRET = 'integration-hmac-key';

let server: Server;
let url = '';
const got: Received[] = [];
let dir = '';
let cfg = '';
let running: Running | null = null;
const logs: string[] = [];

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until<T>(f: () => T | undefined, ms: number, what: string): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}; logs:\n${logs.join('\n')}`);
    await sleep(20);
  }
}

function verify(secret: string, r: Received): boolean {
  const ts = String(r.headers['x-wicket-timestamp'] ?? '');
  const sig = String(r.headers['x-wicket-signature'] ?? '');
  const expected = `sha256=${createHmac('sha256', secret).update(`${ts}.`).update(r.body).digest('hex')}`;
  return Math.abs(Date.now() / 1000 - Number(ts)) <= 300 && sig.length === expected.length && timingSafeEqual(Buffer.from(sig), Buffer.from(expected));
}

beforeAll(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      got.push({ headers: req.headers, body, json: JSON.parse(body.toString('utf8')) as Record<string, unknown>, at: Date.now() });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/wicket`;

  dir = tmpDir('wicket-notify-');
  cfg = join(dir, 'wicket.yaml');
  writeFileSync(cfg, `data_dir: ./data
segments:
  - { name: payments-prod, description: Card data }
  - { name: sandbox }
users:
  - { name: carol, roles: [] }
notify:
  - name: soc
    url: ${url}
    events: [segment.locked, session.terminated]
    secret: env:${SECRET_ENV}
  - name: chat
    url: ${url}?format=slack
    events: [segment.unlocked]
    format: slack
`);
  // Only the broker has the webhook secret: the CLI below runs without it.
  process.env[SECRET_ENV] = SECRET;
  running = await startWicket(cfg, { log: (l) => logs.push(l), pollMs: 100 });
}, 60_000);

afterAll(async () => {
  await running?.stop('test over');
  delete process.env[SECRET_ENV];
  server?.closeAllConnections();
  await new Promise((r) => server?.close(r));
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('notify: webhooks from the running broker', () => {
  it('delivers a signed segment.locked for `wicket segment lock` run by the CLI in another process', async () => {
    const t0 = Date.now();
    const r = await wicketAsync(['segment', 'lock', 'payments-prod', '--reason', 'card data breach suspected', '--as', 'carol', '--config', cfg], {
      env: { [SECRET_ENV]: undefined },
    });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const hit = await until(() => got.find((g) => g.json.event === 'segment.locked'), 5000, 'segment.locked delivery');
    expect(hit.at - t0).toBeLessThan(5000);
    expect(hit.headers['x-wicket-event']).toBe('segment.locked');
    expect(hit.headers['content-type']).toBe('application/json');
    expect(hit.headers['user-agent']).toBe('wicket');
    expect(hit.headers['x-wicket-delivery']).toMatch(/^[0-9a-f-]{36}$/);
    expect(verify(SECRET, hit)).toBe(true);
    expect(hit.json).toMatchObject({
      event: 'segment.locked',
      actor: 'carol',
      broker: running!.broker.brokerId,
      data: { segment: 'payments-prod', reason: 'card data breach suspected' },
    });
    expect(Number.isNaN(Date.parse(String(hit.json.at)))).toBe(false);
    // id is the audit event's seq: the receiver can look it up or de-duplicate on it.
    const seq = Number(hit.json.id);
    const [row] = await running!.store.readAudit(seq - 1, 1);
    expect(row).toMatchObject({ seq, kind: 'segment.lock', actor: 'carol' });
  });

  it('routes segment.unlocked only to the slack webhook, unsigned, as { text, wicket }', async () => {
    const before = got.length;
    const r = await wicketAsync(['segment', 'unlock', 'payments-prod', '--as', 'carol', '--config', cfg]);
    expect(r.code).toBe(0);
    const hit = await until(() => got.slice(before).find((g) => g.json.text !== undefined), 5000, 'slack delivery');
    expect(hit.headers['x-wicket-event']).toBe('segment.unlocked');
    expect(hit.headers['x-wicket-signature']).toBeUndefined();
    expect(hit.json.text).toBe('[wicket] carol unlocked segment payments-prod');
    expect(hit.json.wicket).toMatchObject({ event: 'segment.unlocked', actor: 'carol', data: { segment: 'payments-prod' } });
    await sleep(300);
    expect(got.slice(before).map((g) => g.json.event ?? (g.json.wicket as { event: string }).event)).toEqual(['segment.unlocked']);
  });

  it('refuses to start when a webhook secret cannot be resolved, naming the path and line', async () => {
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, `data_dir: ./data-bad
notify:
  - url: ${url}
    events: ['*']
    secret: env:WICKET_TEST_NOT_SET
`);
    const err = await startWicket(bad, { log: () => undefined }).then(() => null, (e: unknown) => e);
    expect(isWicketError(err, 'WICKET_ERR_CONFIG')).toBe(true);
    expect((err as Error).message).toBe('bad.yaml:5: notify[0].secret: environment variable WICKET_TEST_NOT_SET is not set');
  });
});
