/**
 * The browser viewer (web/public) in a real Chromium (Debian's, driven by
 * playwright-core) against an in-process broker: log in, search, replay a
 * terminal session (time advances, screen text, a command click seeks), a
 * database statement timeline with filters, watch a live session over the
 * WebSocket and terminate it, approve a request, lock a segment from the
 * map, read the audit log; and recorded data carrying HTML/script payloads
 * is shown as text everywhere. Every page is checked for CSP violations and
 * page errors, and screenshotted to test-artifacts/screenshots/.
 *
 * Skipped, with the reason in its name, when /usr/bin/chromium is missing.
 * The security-header checks need no browser and always run.
 */
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { startWicket, type Running } from '../../src/runtime.js';
import { makePasswordCredential } from '../../src/auth/password.js';
import type { ActiveSession } from '../../src/broker.js';
import type { SessionHandle } from '../../src/session.js';
import { ROOT, tmpDir } from '../support/cli.js';
import { PAGES } from '../../web/static.js';

const CHROMIUM = '/usr/bin/chromium';
const HAVE_CHROMIUM = existsSync(CHROMIUM);
const SHOTS = join(ROOT, 'test-artifacts', 'screenshots');

const XSS_IMG = '<img src=x onerror=alert(1)>';
const XSS_SCRIPT = '<script>alert(2)</script>';
const XSS_SVG = '<svg onload=alert(5)>';

const YAML = `
data_dir: ./data
listen: { web: 127.0.0.1:0 }
segments:
  - { name: sandbox, description: Scratch shells }
  - { name: payments-prod, description: Card data. PCI scope. }
targets:
  - { name: sandbox, segment: sandbox, protocol: shell, command: [/bin/sh] }
  - { name: orders-db, segment: payments-prod, protocol: postgres, address: 127.0.0.1:5432, user: postgres, database: postgres }
roles:
  - { name: secops, admin: true, audit: true, approve: ['*'], allow: [{ segments: ['*'] }] }
  - name: developer
    allow:
      - { segments: [sandbox] }
      - { segments: [payments-prod], protocols: [postgres], access: read, approval: required, max_duration: 2h }
users:
  - { name: admin, roles: [secops] }
  - { name: alice, roles: [developer] }
`;
const PASSWORDS = { admin: 'admin-viewer-pass-1', alice: 'alice-viewer-pass-2' } as const;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The adapter side of a session opened straight on the broker. */
function handle(): SessionHandle & { reasons: string[] } {
  const reasons: string[] = [];
  return { reasons, terminate: (reason) => void reasons.push(reason) };
}

async function start(): Promise<{ running: Running; dir: string; base: string }> {
  const dir = tmpDir('wicket-viewer-');
  writeFileSync(join(dir, 'wicket.yaml'), YAML);
  const running = await startWicket(join(dir, 'wicket.yaml'), { log: () => undefined, pollMs: 100 });
  for (const [user, pw] of Object.entries(PASSWORDS)) {
    await running.store.upsertUser(user, await makePasswordCredential(pw, Buffer.from(`salt-${user}`).toString('base64')), false, Date.now());
  }
  return { running, dir, base: `http://${running.addresses.web!}` };
}

describe('viewer: security headers (no browser needed)', () => {
  let running: Running;
  let dir: string;
  let base: string;
  beforeAll(async () => ({ running, dir, base } = await start()));
  afterAll(async () => {
    await running?.stop('test over');
    rmSync(dir, { recursive: true, force: true });
  });

  it('every page, script, stylesheet and vendor file is local and served with the strict headers', async () => {
    const paths = [...Object.keys(PAGES).map((p) => `/${p}`), '/js/api.js', '/js/dom.js', '/css/app.css',
      '/vendor/asciinema-player.min.js', '/vendor/asciinema-player.css', '/vendor/xterm.js', '/vendor/xterm.css'];
    for (const path of paths) {
      const res = await fetch(base + path);
      expect(res.status, path).toBe(200);
      const csp = res.headers.get('content-security-policy') ?? '';
      expect(csp, path).toContain("default-src 'self'");
      expect(csp, path).toContain("frame-ancestors 'none'");
      expect(csp, path).toMatch(/script-src 'self'( 'wasm-unsafe-eval')?;/);
      expect(csp, path).not.toMatch(/\s'unsafe-eval'/);
      expect(csp, path).not.toMatch(/script-src[^;]*unsafe-inline/);
      expect(res.headers.get('x-content-type-options'), path).toBe('nosniff');
      expect(res.headers.get('referrer-policy'), path).toBe('no-referrer');
      const type = res.headers.get('content-type') ?? '';
      if (path.endsWith('.html')) {
        expect(type, path).toMatch(/^text\/html/);
        const html = await res.text();
        expect(html, `${path} has no inline script`).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
        expect(html, `${path} has no inline style`).not.toMatch(/<style|\sstyle=/);
        expect(html, `${path} loads nothing remote`).not.toMatch(/(src|href)="(https?:)?\/\//);
      } else if (path.endsWith('.js')) expect(type, path).toMatch(/^(text|application)\/javascript/);
      else expect(type, path).toMatch(/^text\/css/);
    }
    // Only the two library pages relax anything, and only for the library's need.
    expect(PAGES['session.html']).toContain("script-src 'self' 'wasm-unsafe-eval'");
    expect(PAGES['session.html']).toContain("style-src 'self';");
    expect(PAGES['watch.html']).toContain("style-src 'self' 'unsafe-inline'");
    expect(PAGES['watch.html']).toContain("script-src 'self';");
    for (const p of ['login.html', 'sessions.html', 'live.html', 'requests.html', 'map.html', 'audit.html']) {
      expect(PAGES[p], p).not.toContain('unsafe');
    }
    const root = await fetch(`${base}/`, { redirect: 'manual' });
    expect(root.status).toBe(302);
    expect(root.headers.get('location')).toBe('/sessions.html');
    expect((await fetch(`${base}/js/../../package.json`)).status).toBe(404);
    expect((await fetch(`${base}/js/nope.js`)).status).toBe(404);
    expect((await fetch(`${base}/js/%2e%2e/%2e%2e/package.json`)).status).not.toBe(200);
    expect((await fetch(`${base}/js/..%2f..%2fpackage.json`)).status).not.toBe(200);
    // The API answers carry them too.
    const api = await fetch(`${base}/api/me`);
    expect(api.status).toBe(401);
    expect(api.headers.get('x-content-type-options')).toBe('nosniff');
    expect(api.headers.get('content-security-policy')).toContain("default-src 'self'");
  });
});

if (!HAVE_CHROMIUM) console.warn(`test/browser/viewer.test.ts: the Chromium tests are skipped: ${CHROMIUM} is missing (apt-get install chromium)`);
const browserTitle = HAVE_CHROMIUM ? 'viewer in Chromium' : `viewer in Chromium — SKIPPED: ${CHROMIUM} is missing (apt-get install chromium)`;

describe.skipIf(!HAVE_CHROMIUM)(browserTitle, () => {
  let running: Running;
  let dir: string;
  let base: string;
  let browser: Browser;
  let ctx: BrowserContext;
  let page: Page;
  const dialogs: string[] = [];
  const pageErrors: string[] = [];
  const ids: Record<'term' | 'db' | 'xssTerm' | 'xssDb' | 'live', string> = { term: '', db: '', xssTerm: '', xssDb: '', live: '' };
  let live: ActiveSession;
  const liveHandle = handle();
  let requestId = 0;

  const shot = (name: string): Promise<Buffer> => page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
  const cspViolations = (): Promise<string[]> => page.evaluate(() => (window as unknown as { __csp: string[] }).__csp ?? []);
  /** No CSP violation, no uncaught error, no dialog on the current page. */
  async function clean(what: string): Promise<void> {
    expect(await cspViolations(), `${what}: CSP violations`).toEqual([]);
    expect(pageErrors, `${what}: page errors`).toEqual([]);
    expect(dialogs, `${what}: dialogs`).toEqual([]);
  }

  beforeAll(async () => {
    mkdirSync(SHOTS, { recursive: true });
    ({ running, dir, base } = await start());
    const { broker } = running;
    // The browser starts while the recordings are made (both take a moment).
    const launching = chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });

    // A terminal session: "echo hello" at ~0.2 s, "ls" at ~1.2 s, its output 0.3 s later.
    const term = await broker.open({ user: 'alice', target: 'sandbox', protocol: 'shell', clientAddr: '127.0.0.1:40001', authMethod: 'password' }, handle(), { cols: 80, rows: 24 });
    ids.term = term.id;
    term.terminal!.output(Buffer.from('$ '));
    await sleep(200);
    term.terminal!.input(Buffer.from('echo hello\r'));
    term.emit({ type: 'command', at: Date.now(), source: 'typed', command: 'echo hello' });
    term.terminal!.output(Buffer.from('echo hello\r\nhello from wicket\r\n$ '));
    await sleep(1000);
    term.terminal!.input(Buffer.from('ls\r'));
    term.emit({ type: 'command', at: Date.now(), source: 'typed', command: 'ls' });
    term.terminal!.output(Buffer.from('ls\r\n'));
    await sleep(300);
    term.terminal!.output(Buffer.from('file-alpha  file-beta\r\n$ '));
    await sleep(300);
    term.terminal!.output(Buffer.from('exit\r\n'));
    await term.end({ status: 'ended' });

    // A database session: reads, writes, a bound statement and an error.
    const db = await broker.open({ user: 'admin', target: 'orders-db', protocol: 'postgres', clientAddr: '127.0.0.1:40002', authMethod: 'password' }, handle());
    ids.db = db.id;
    const t0 = Date.now();
    db.emit({ type: 'query', step: 'query', startedAt: t0, durationMs: 1.5, sql: 'SELECT 42 AS answer', rows: 1, tag: 'SELECT 1' });
    db.emit({ type: 'query', step: 'query', startedAt: t0 + 10, durationMs: 12, sql: "INSERT INTO orders (id, note) VALUES (7, 'rush')", rows: 1, tag: 'INSERT 0 1' });
    db.emit({ type: 'query', step: 'bind', startedAt: t0 + 20, durationMs: 0.4, sql: 'SELECT * FROM orders WHERE id = $1', params: [{ type: 23, format: 'text', value: '7' }], rows: 1, tag: 'SELECT 1' });
    db.emit({ type: 'query', step: 'query', startedAt: t0 + 30, durationMs: 0.9, sql: 'SELECT * FROM missing_table', error: { code: '42P01', message: 'relation "missing_table" does not exist' } });
    db.emit({ type: 'query', step: 'query', startedAt: t0 + 40, durationMs: 30, sql: "-- nightly fix\nUPDATE orders SET note = 'done' WHERE id = 7", rows: 1, tag: 'UPDATE 1' });
    await db.end({ status: 'ended' });

    // Hostile recordings: HTML and script in output, commands, SQL, parameters and errors.
    const xt = await broker.open({ user: 'alice', target: 'sandbox', protocol: 'shell', clientAddr: '127.0.0.1:40003', authMethod: 'password' }, handle(), { cols: 80, rows: 24 });
    ids.xssTerm = xt.id;
    xt.terminal!.output(Buffer.from(`$ echo '${XSS_IMG}'\r\n${XSS_IMG}\r\n${XSS_SCRIPT}\r\n$ `));
    xt.emit({ type: 'command', at: Date.now(), source: 'typed', command: `echo '${XSS_IMG}' ${XSS_SCRIPT}` });
    xt.emit({ type: 'file', at: Date.now(), op: 'write', path: `/tmp/${XSS_SVG}`, bytes: 3 });
    await sleep(100);
    await xt.end({ status: 'ended' });
    const xd = await broker.open({ user: 'admin', target: 'orders-db', protocol: 'postgres', clientAddr: '127.0.0.1:40004', authMethod: 'password' }, handle());
    ids.xssDb = xd.id;
    xd.emit({ type: 'query', step: 'query', startedAt: Date.now(), durationMs: 2, sql: `SELECT '${XSS_IMG}' AS x, '</pre>${XSS_SCRIPT}' AS y`, rows: 1, tag: 'SELECT 1' });
    xd.emit({ type: 'query', step: 'bind', startedAt: Date.now(), durationMs: 1, sql: 'SELECT $1', params: [{ type: 25, format: 'text', value: XSS_SVG }], error: { code: 'XX000', message: `boom ${XSS_IMG}` } });
    await xd.end({ status: 'ended' });

    // A session that stays live for the watch page.
    live = await broker.open({ user: 'alice', target: 'sandbox', protocol: 'shell', clientAddr: '127.0.0.1:40005', authMethod: 'password' }, liveHandle, { cols: 80, rows: 24 });
    ids.live = live.id;
    live.terminal!.output(Buffer.from('$ uptime\r\nup 3 days\r\n$ '));

    // alice asks for production access (with a hostile reason).
    requestId = (await running.access.request({ user: 'alice', target: 'orders-db', durationMs: 3_600_000, reason: `INC-7 ${XSS_IMG}` })).id;
    await running.audit.flush();

    browser = await launching;
    ctx = await browser.newContext({ viewport: { width: 1360, height: 860 } });
    await ctx.addInitScript(() => {
      const w = window as unknown as { __csp: string[] };
      w.__csp = [];
      document.addEventListener('securitypolicyviolation', (e) => w.__csp.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`));
    });
    page = await ctx.newPage();
    page.on('dialog', (d) => { dialogs.push(d.message()); void d.dismiss(); });
    page.on('pageerror', (e) => pageErrors.push(e.message));
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await running?.stop('test over');
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('login: a wrong password is refused on the page; the right one lands on the sessions list', async () => {
    await page.goto(`${base}/sessions.html`);
    await page.waitForURL(/\/login\.html\?next=/); // no session: sent to log in, and back afterwards
    await page.fill('#user', 'admin');
    await page.fill('#password', 'wrong password');
    await page.click('#login-submit');
    await expect.poll(() => page.textContent('#login-error')).toContain('invalid user name or password');
    await shot('login');
    await page.fill('#password', PASSWORDS.admin);
    await page.click('#login-submit');
    await page.waitForURL(/\/sessions\.html/);
    await expect.poll(() => page.textContent('#me')).toBe('admin');
    await clean('login');
  });

  it('sessions: lists everything with a live badge; a search by query text finds the database session', async () => {
    await page.waitForSelector(`#sessions tr[data-id="${ids.term}"]`);
    expect(await page.locator('#sessions tbody tr').count()).toBe(5);
    expect(await page.textContent(`#sessions tr[data-id="${ids.live}"] .badge.live`)).toBe('LIVE');
    await shot('sessions');
    await page.fill('#q', 'SELECT 42');
    await page.click('#apply');
    await expect.poll(() => page.locator('#sessions tbody tr').count()).toBe(1);
    expect(await page.getAttribute('#sessions tbody tr', 'data-id')).toBe(ids.db);
    expect(page.url()).toContain('q=SELECT+42');
    await page.selectOption('#f-protocol', 'shell');
    await expect.poll(() => page.locator('#sessions tbody tr').count()).toBe(0);
    await page.click('#reset');
    await expect.poll(() => page.locator('#sessions tbody tr').count()).toBe(5);
    await page.fill('#f-user', 'alice');
    await page.click('#apply');
    await expect.poll(() => page.locator('#sessions tbody tr').count()).toBe(3);
    // Paging: "More" asks for the page before the last row (`next` passed as before=).
    await page.goto(`${base}/sessions.html?limit=2`);
    await expect.poll(() => page.locator('#sessions tbody tr').count()).toBe(2);
    await page.click('#more');
    await expect.poll(() => page.locator('#sessions tbody tr').count()).toBe(4);
    await page.click('#more');
    await expect.poll(() => page.locator('#sessions tbody tr').count()).toBe(5);
    expect(await page.isHidden('#more')).toBe(true);
    expect(new Set(await page.$$eval('#sessions tbody tr', (trs) => trs.map((t) => (t as HTMLElement).dataset.id))).size).toBe(5);
    await page.click(`#sessions tr[data-id="${ids.term}"] td:first-child`);
    await page.waitForURL(new RegExp(`session\\.html\\?id=${ids.term}`));
    await clean('sessions');
  });

  it('terminal session: the player plays (time advances, screen text) and a command click seeks to it', async () => {
    await page.waitForSelector('#command-list button.command');
    expect(await page.locator('#command-list code').allTextContents()).toEqual(['echo hello', 'ls']);
    expect(await page.getAttribute('#download', 'href')).toBe(`/api/sessions/${ids.term}/cast`);
    await page.waitForSelector('#player .ap-player');
    const seconds = async (): Promise<number> => Number(await page.getAttribute('#player-time', 'data-seconds'));
    const screen = (): Promise<string> => page.locator('#player .ap-term').innerText();
    expect(await seconds()).toBe(0);
    await page.click('#play');
    await expect.poll(seconds, { timeout: 5000 }).toBeGreaterThan(0.4);
    await expect.poll(screen, { timeout: 5000 }).toContain('hello from wicket');
    await expect.poll(() => page.textContent('#play'), { timeout: 10_000 }).toBe('Play'); // played to the end (~1.8 s)
    expect(await screen()).toContain('file-alpha');
    // "ls" was typed ~1.2 s in, its output came 0.3 s later: seeking there shows the screen before it.
    const at = Number(await page.getAttribute('#command-list li:nth-child(2) button', 'data-at'));
    expect(at).toBeGreaterThan(1.0);
    expect(at).toBeLessThan(3.0); // generous: timers run late on a loaded machine
    await page.click('#command-list li:nth-child(2) button');
    await expect.poll(seconds).toBeCloseTo(at, 1);
    await expect.poll(screen).not.toContain('file-alpha');
    expect(await screen()).toContain('hello from wicket');
    expect(await page.getAttribute('#command-list li:nth-child(2)', 'class')).toBe('current');
    await page.selectOption('#speed', '2'); // recreates the player at the same position
    await page.waitForSelector('#player .ap-player');
    await expect.poll(seconds).toBeCloseTo(at, 1);
    await shot('session-terminal');
    await clean('terminal session');
  });

  it('database session: statement timeline with duration bars, highlighting and filters', async () => {
    await page.goto(`${base}/session.html?id=${ids.db}`);
    await page.waitForSelector('#timeline li.stmt');
    expect(await page.isHidden('#terminal')).toBe(true);
    expect(await page.locator('#timeline li.stmt').count()).toBe(5);
    expect(await page.textContent('#query-count')).toBe('(5)');
    const first = page.locator('#timeline li.stmt').first();
    expect(await first.locator('.sql-keyword').allTextContents()).toEqual(['SELECT', 'AS']);
    expect(await first.locator('.sql-number').allTextContents()).toEqual(['42']);
    expect(await page.locator('#timeline li.stmt').nth(2).locator('.params').textContent()).toBe("$1 = '7'");
    // The slowest statement (30 ms) has the full bar; SELECT 42 (1.5 ms) a 5 % one.
    const widths = await page.$$eval('#timeline .bar .fill', (els) => els.map((e) => Math.round((e as HTMLElement).getBoundingClientRect().width)));
    expect(widths[4]).toBe(120);
    expect(widths[0]).toBe(6);
    await page.check('#errors-only');
    expect(await page.locator('#timeline li.stmt:visible').count()).toBe(1);
    expect(await page.textContent('#timeline li.stmt:visible .err')).toContain('42P01: relation "missing_table" does not exist');
    expect(await page.textContent('#query-count')).toBe('(1 of 5)');
    await page.uncheck('#errors-only');
    await page.check('#writes-only');
    expect(await page.locator('#timeline li.stmt:visible pre.sql').allTextContents()).toEqual(["INSERT INTO orders (id, note) VALUES (7, 'rush')", "-- nightly fix\nUPDATE orders SET note = 'done' WHERE id = 7"]);
    await page.uncheck('#writes-only');
    await page.fill('#query-text', 'no such text');
    expect(await page.locator('#timeline li.stmt:visible').count()).toBe(0);
    await page.fill('#query-text', 'where id');
    expect(await page.locator('#timeline li.stmt:visible').count()).toBe(2);
    await page.fill('#query-text', '');
    await shot('session-db');
    await clean('db session');
  });

  it('live: the running session is listed; watch streams its terminal and terminate ends it', async () => {
    await page.goto(`${base}/live.html`);
    await page.waitForSelector(`#live tr[data-id="${ids.live}"]`);
    expect(await page.locator('#live tbody tr').count()).toBe(1);
    await shot('live');
    await page.click(`#live tr[data-id="${ids.live}"] a.watch`);
    await page.waitForURL(/watch\.html\?id=/);
    const screen = (): Promise<string> => page.locator('#terminal .xterm-rows').innerText();
    await expect.poll(screen).toContain('up 3 days'); // the backlog
    await expect.poll(() => page.textContent('#conn')).toBe('live');
    live.terminal!.output(Buffer.from(`live line one\r\n${XSS_IMG}\r\n`));
    await expect.poll(screen).toContain('live line one');
    expect(await screen()).toContain(XSS_IMG);
    await shot('watch');
    await page.fill('#kill-reason', 'INC-9 watched and stopped');
    await page.click('#kill');
    await expect.poll(() => liveHandle.reasons, { timeout: 5000 }).toEqual(['INC-9 watched and stopped']);
    await live.end({ status: 'ended' });
    await expect.poll(() => page.textContent('#conn'), { timeout: 5000 }).toBe('ended');
    expect(await page.textContent('#status')).toContain('INC-9 watched and stopped');
    await clean('watch');

    // A database session: statements so far, then each new one as it runs.
    const db = await running.broker.open({ user: 'admin', target: 'orders-db', protocol: 'postgres', clientAddr: '127.0.0.1:40006', authMethod: 'password' }, handle());
    db.emit({ type: 'query', step: 'query', startedAt: Date.now(), durationMs: 3, sql: 'SELECT now()', rows: 1, tag: 'SELECT 1' });
    await page.goto(`${base}/watch.html?id=${db.id}`);
    await expect.poll(() => page.locator('#timeline li.stmt').count()).toBe(1);
    db.emit({ type: 'query', step: 'query', startedAt: Date.now(), durationMs: 8, sql: `DELETE FROM orders WHERE note = '${XSS_SCRIPT}'`, rows: 2, tag: 'DELETE 2' });
    await expect.poll(() => page.locator('#timeline li.stmt').count()).toBe(2);
    expect(await page.textContent('#timeline li.stmt:nth-child(2) pre.sql')).toBe(`DELETE FROM orders WHERE note = '${XSS_SCRIPT}'`);
    expect(await page.getAttribute('#timeline li.stmt:nth-child(2)', 'class')).toBe('stmt write');
    expect(await page.textContent('#query-count')).toBe('(2)');
    await shot('watch-db');
    await db.end({ status: 'ended' });
    await expect.poll(() => page.textContent('#conn'), { timeout: 5000 }).toBe('ended');
    await clean('watch db');
  });

  it('requests: an approver approves with a comment; new requests appear without a reload', async () => {
    await page.goto(`${base}/requests.html`);
    const row = page.locator(`#requests tr[data-id="${requestId}"]`);
    await row.waitFor();
    expect(await row.getAttribute('data-state')).toBe('pending');
    expect(await row.locator('td').nth(6).textContent()).toBe(`INC-7 ${XSS_IMG}`);
    await row.locator('input.comment').fill('ok for INC-7');
    await row.locator('button.approve').click();
    await expect.poll(() => page.getAttribute(`#requests tr[data-id="${requestId}"]`, 'data-state')).toBe('approved');
    expect(await page.textContent(`#requests tr[data-id="${requestId}"]`)).toContain('approve by admin: ok for INC-7');
    const rec = await running.access.get(requestId);
    expect(rec?.state).toBe('approved');
    // Someone else's request shows up on the open page by itself.
    await page.evaluate(() => { (window as unknown as { __marker: number }).__marker = 1; });
    const second = await running.access.request({ user: 'alice', target: 'payments-prod', durationMs: 1_800_000, reason: 'INC-8 follow-up' });
    await page.locator(`#requests tr[data-id="${second.id}"]`).waitFor({ timeout: 8000 });
    expect(await page.evaluate(() => (window as unknown as { __marker?: number }).__marker)).toBe(1); // same document: no reload
    await shot('requests');
    await clean('requests');
  });

  it('map: users → roles → segments → targets with lines; an admin locks and unlocks a segment', async () => {
    await page.goto(`${base}/map.html`);
    await page.waitForSelector('#edges path');
    expect(await page.locator('#col-users .node').allInnerTexts()).toEqual(['admin', 'alice']);
    expect(await page.locator('#edges path').count()).toBeGreaterThanOrEqual(8);
    expect(await page.locator('#edges path.gated').count()).toBe(1); // developer -> payments-prod needs approval
    const segment = page.locator('.node.segment[data-key="segment:payments-prod"]');
    await segment.locator('button.lock').click();
    await segment.locator('input.lock-reason').fill('INC-99 card data exposure');
    await segment.locator('button.lock-confirm').click();
    await expect.poll(() => segment.getAttribute('class')).toContain('locked');
    expect(await segment.textContent()).toContain('INC-99 card data exposure');
    expect((await running.store.listLocks()).map((l) => [l.segment, l.reason])).toEqual([['payments-prod', 'INC-99 card data exposure']]);
    await segment.hover();
    expect(await page.locator('.node.hl').count()).toBeGreaterThan(1);
    await shot('map');
    await page.mouse.move(0, 0);
    await segment.locator('button.unlock').click();
    await expect.poll(() => segment.getAttribute('class')).not.toContain('locked');
    expect(await running.store.listLocks()).toEqual([]);
    await clean('map');
  });

  it('audit: the log as a table and a verified hash chain', async () => {
    await page.goto(`${base}/audit.html`);
    await expect.poll(() => page.textContent('#verify-result'), { timeout: 10_000 }).toBe('OK');
    await page.waitForSelector('#audit tbody tr');
    const kinds = await page.locator('#audit tbody td:nth-child(3)').allTextContents();
    for (const k of ['broker.start', 'session.start', 'command', 'query', 'request.approved', 'segment.lock', 'session.kill']) expect(kinds, k).toContain(k);
    await page.fill('#kind', 'segment.*');
    await page.click('#filters button[type=submit]');
    await expect.poll(() => page.locator('#audit tbody td:nth-child(3)').allTextContents()).toEqual(['segment.lock', 'segment.unlock']);
    await page.fill('#kind', '');
    await page.click('#filters button[type=submit]');
    await page.waitForSelector('#audit tbody tr:nth-child(20)');
    await shot('audit');
    await clean('audit');
  });

  it('XSS: commands, output, file paths, SQL, parameters and errors with HTML/script payloads render as text', async () => {
    /** Elements a payload would have created had it been parsed as HTML (none of these is part of the viewer). */
    const injected = (): Promise<string[]> => page.evaluate(() => [...document.querySelectorAll('img, script:not([src]), iframe, object, embed, [onerror], [onload], main svg:not(#edges):not(.ap-player svg)')].map((e) => e.outerHTML.slice(0, 120)));
    await page.goto(`${base}/session.html?id=${ids.xssTerm}`);
    await page.waitForSelector('#command-list code');
    expect(await page.textContent('#command-list code')).toBe(`echo '${XSS_IMG}' ${XSS_SCRIPT}`);
    expect(await page.textContent('#event-table tbody')).toContain(`/tmp/${XSS_SVG}`);
    await page.click('#play');
    await expect.poll(() => page.locator('#player .ap-term').innerText(), { timeout: 5000 }).toContain(XSS_SCRIPT);
    expect(await page.locator('#player .ap-term').innerText()).toContain(XSS_IMG);
    expect(await injected()).toEqual([]);
    await shot('xss-terminal');
    await clean('xss terminal');

    await page.goto(`${base}/session.html?id=${ids.xssDb}`);
    await page.waitForSelector('#timeline li.stmt');
    expect(await page.locator('#timeline pre.sql').first().textContent()).toBe(`SELECT '${XSS_IMG}' AS x, '</pre>${XSS_SCRIPT}' AS y`);
    expect(await page.textContent('#timeline li.stmt:nth-child(2) .params')).toBe(`$1 = '${XSS_SVG}'`);
    expect(await page.textContent('#timeline li.stmt:nth-child(2) .err')).toBe(`XX000: boom ${XSS_IMG}`);
    expect(await injected()).toEqual([]);
    await shot('xss-db');

    await page.goto(`${base}/sessions.html?q=${encodeURIComponent('<img')}`);
    await page.waitForSelector('#sessions tbody tr');
    expect(await page.locator('#sessions tbody tr').count()).toBe(2);
    await page.goto(`${base}/audit.html?kind=command`);
    await page.waitForSelector('#audit tbody tr');
    expect(await page.textContent('#audit tbody')).toContain(XSS_SCRIPT);
    expect(await injected()).toEqual([]);
    await clean('xss db, lists');
    expect(dialogs).toEqual([]);
  });

  it('logout ends the login session', async () => {
    await page.goto(`${base}/sessions.html`);
    await page.click('#logout');
    await page.waitForURL(/login\.html/);
    await page.goto(`${base}/map.html`);
    await page.waitForURL(/login\.html\?next=%2Fmap\.html/);
    await clean('logout');
  });
});
