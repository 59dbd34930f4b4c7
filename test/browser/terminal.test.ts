/**
 * terminal.html (the web terminal, web/terminal.ts) in a real Chromium
 * (Debian's, driven by playwright-core): log in, pick a shell target (the
 * picker lists only ssh/shell targets), connect, type, see the output in
 * xterm.js; a target that needs an approval shows the `wicket request`
 * command as text. No CSP violations or page errors; screenshot to
 * test-artifacts/screenshots/terminal.png. Skipped when /usr/bin/chromium is missing.
 */
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser, type Page } from 'playwright-core';
import { startWicket, type Running } from '../../src/runtime.js';
import { makePasswordCredential } from '../../src/auth/password.js';
import { ROOT, tmpDir } from '../support/cli.js';

const CHROMIUM = '/usr/bin/chromium';
const HAVE_CHROMIUM = existsSync(CHROMIUM);
const SHOTS = join(ROOT, 'test-artifacts', 'screenshots');
const PASSWORD = 'alice-browser-term-1';

const YAML = `
data_dir: ./data
listen: { web: 127.0.0.1:0 }
segments: [{ name: sandbox }, { name: vault }, { name: dbs }]
targets:
  - { name: sandbox, segment: sandbox, protocol: shell, command: [/bin/bash, --norc, --noprofile, -i] }
  - { name: guarded, segment: vault, protocol: shell, command: [/bin/bash, --norc, --noprofile, -i] }
  - { name: orders-db, segment: dbs, protocol: postgres, address: 127.0.0.1:5432, user: postgres, database: postgres }
roles:
  - name: dev
    allow:
      - { segments: [sandbox, dbs] }
      - { segments: [vault], approval: required }
users:
  - { name: alice, roles: [dev] }
`;

describe.skipIf(!HAVE_CHROMIUM)(HAVE_CHROMIUM ? 'web terminal in Chromium' : `web terminal in Chromium — SKIPPED: ${CHROMIUM} is missing`, () => {
  const dir = tmpDir('wicket-webterm-browser-');
  let running: Running;
  let browser: Browser;
  let page: Page;
  let base: string;
  const pageErrors: string[] = [];

  beforeAll(async () => {
    mkdirSync(SHOTS, { recursive: true });
    writeFileSync(join(dir, 'wicket.yaml'), YAML);
    const launching = chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    running = await startWicket(join(dir, 'wicket.yaml'), { log: () => undefined, pollMs: 100 });
    await running.store.upsertUser('alice', await makePasswordCredential(PASSWORD, Buffer.from('salt-alice').toString('base64')), false, Date.now());
    base = `http://${running.addresses.web!}`;
    browser = await launching;
    const ctx = await browser.newContext({ viewport: { width: 1200, height: 800 } });
    await ctx.addInitScript(() => {
      const w = window as unknown as { __csp: string[] };
      w.__csp = [];
      document.addEventListener('securitypolicyviolation', (e) => w.__csp.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`));
    });
    page = await ctx.newPage();
    page.on('pageerror', (e) => pageErrors.push(e.message));
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await running?.stop('test over');
    rmSync(dir, { recursive: true, force: true });
  });

  it('picks a shell target, connects, types a command and sees its output; a gated target shows `wicket request`', async () => {
    await page.goto(`${base}/terminal.html`);
    await page.waitForURL(/\/login\.html\?next=/);
    await page.fill('#user', 'alice');
    await page.fill('#password', PASSWORD);
    await page.click('#login-submit');
    await page.waitForURL(/\/terminal\.html/);
    await page.waitForSelector('#top nav a[href="terminal.html"][aria-current="page"]');
    await expect.poll(() => page.$$eval('#target option', (os) => os.map((o) => (o as HTMLOptionElement).value))).toEqual(['guarded', 'sandbox']);

    await page.selectOption('#target', 'sandbox');
    await page.click('#connect');
    await expect.poll(() => page.textContent('#conn'), { timeout: 10_000 }).toBe('live');
    const screen = (): Promise<string> => page.locator('#terminal .xterm-rows').innerText();
    await expect.poll(screen, { timeout: 10_000 }).toMatch(/[$#]/);
    await page.click('#terminal');
    await page.keyboard.type('echo web-$((6*7))');
    await page.keyboard.press('Enter');
    await expect.poll(screen, { timeout: 10_000 }).toContain('web-42');
    expect(await page.isVisible('#session-link')).toBe(true);
    await page.screenshot({ path: join(SHOTS, 'terminal.png'), fullPage: true });
    await page.keyboard.type('exit');
    await page.keyboard.press('Enter');
    await expect.poll(() => page.textContent('#status'), { timeout: 10_000 }).toContain('Session ended: exit 0');

    await page.selectOption('#target', 'guarded');
    await page.click('#connect');
    await expect.poll(() => page.textContent('#status'), { timeout: 10_000 }).toContain('wicket request guarded');
    expect(await page.getAttribute('#status', 'class')).toContain('error');

    expect(await page.evaluate(() => (window as unknown as { __csp: string[] }).__csp)).toEqual([]);
    expect(pageErrors).toEqual([]);
  }, 60_000);
});
