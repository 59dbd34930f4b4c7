/**
 * The browser viewer (DESIGN.md §6): plain HTML pages and small ES modules
 * from web/public, plus the two vendor libraries served from node_modules by
 * explicit routes. Nothing is loaded from anywhere else, so one strict
 * Content-Security-Policy covers every page:
 *
 *   default-src 'self'; script-src 'self'; style-src 'self'; frame-ancestors 'none' ...
 *
 * Three pages need one relaxation each, for a library and never for our own code:
 *
 * - session.html: asciinema-player compiles its terminal emulator from
 *   WebAssembly in the page, which CSP blocks unless script-src has
 *   'wasm-unsafe-eval'. That allows WebAssembly compilation only, not eval()
 *   and not inline scripts. The player styles through CSSOM only, so styles
 *   stay 'self'.
 * - watch.html and terminal.html: xterm.js writes its theme and cell sizes
 *   into <style> elements it creates and colours cells with style attributes,
 *   which needs style-src 'unsafe-inline' (styles only; scripts stay 'self').
 *
 * Recorded data (SQL, commands, output, names) is attacker-controlled: the
 * page modules only ever put it in the DOM as text (textContent, text nodes).
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import express, { Router, type RequestHandler } from 'express';

const BASE_CSP: Readonly<Record<string, string>> = {
  'default-src': "'self'",
  'script-src': "'self'",
  'style-src': "'self'",
  'img-src': "'self'",
  'font-src': "'self'",
  'connect-src': "'self'", // also same-origin ws:/wss: (CSP level 3)
  'worker-src': "'none'",
  'object-src': "'none'",
  'base-uri': "'none'",
  'form-action': "'self'",
  'frame-ancestors': "'none'",
};

/** The CSP header value, with per-directive overrides. */
export function csp(overrides: Readonly<Record<string, string>> = {}): string {
  return Object.entries({ ...BASE_CSP, ...overrides }).map(([k, v]) => `${k} ${v}`).join('; ');
}

export const DEFAULT_CSP = csp();

/** Pages and the CSP each is served with. */
export const PAGES: Readonly<Record<string, string>> = {
  'login.html': DEFAULT_CSP,
  'sessions.html': DEFAULT_CSP,
  'session.html': csp({ 'script-src': "'self' 'wasm-unsafe-eval'" }),
  'live.html': DEFAULT_CSP,
  'watch.html': csp({ 'style-src': "'self' 'unsafe-inline'" }),
  'terminal.html': csp({ 'style-src': "'self' 'unsafe-inline'" }),
  'requests.html': DEFAULT_CSP,
  'map.html': DEFAULT_CSP,
  'audit.html': DEFAULT_CSP,
};

/**
 * Headers for every response of the app (pages, assets, API): no sniffing,
 * no referrer (session ids are in page URLs), no framing, and the default
 * CSP (pages above replace it with their own).
 */
export const securityHeaders: RequestHandler = (_req, res, next) => {
  res.setHeader('Content-Security-Policy', DEFAULT_CSP);
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('Referrer-Policy', 'no-referrer');
  res.setHeader('X-Frame-Options', 'DENY');
  res.setHeader('Cross-Origin-Opener-Policy', 'same-origin');
  res.setHeader('Cross-Origin-Resource-Policy', 'same-origin');
  next();
};

/** web/public next to this file (tests run the TypeScript), else the source tree's copy (dist/web -> web/public). */
export function publicDir(): string {
  const here = fileURLToPath(new URL('./public/', import.meta.url));
  if (existsSync(here)) return here;
  return fileURLToPath(new URL('../../web/public/', import.meta.url));
}

const require = createRequire(import.meta.url);

/** Vendor files by URL path, resolved in node_modules once at start-up. */
export function vendorFiles(): Readonly<Record<string, string>> {
  return {
    '/vendor/asciinema-player.min.js': require.resolve('asciinema-player/dist/bundle/asciinema-player.min.js'),
    '/vendor/asciinema-player.css': require.resolve('asciinema-player/dist/bundle/asciinema-player.css'),
    '/vendor/xterm.js': require.resolve('@xterm/xterm/lib/xterm.js'),
    '/vendor/xterm.css': require.resolve('@xterm/xterm/css/xterm.css'),
  };
}

/** GET routes for the pages, /js, /css and /vendor. Mount at the root, before the 404 handler. */
export function viewerRouter(dir: string = publicDir()): Router {
  const r = Router();
  const noCache = { cacheControl: false, etag: true, lastModified: true, dotfiles: 'deny' as const };
  r.get('/', (_req, res) => res.redirect(302, '/sessions.html'));
  for (const [page, policy] of Object.entries(PAGES)) {
    r.get(`/${page}`, (_req, res, next) => {
      res.setHeader('Content-Security-Policy', policy);
      res.setHeader('Cache-Control', 'no-cache');
      res.sendFile(page, { ...noCache, root: dir }, (err) => err && next(err));
    });
  }
  for (const [path, file] of Object.entries(vendorFiles())) {
    r.get(path, (_req, res, next) => {
      res.setHeader('Cache-Control', 'no-cache');
      res.sendFile(file, noCache, (err) => err && next(err));
    });
  }
  const assets = (sub: string): RequestHandler => express.static(`${dir}/${sub}`, { index: false, redirect: false, dotfiles: 'deny', fallthrough: true, setHeaders: (res) => res.setHeader('Cache-Control', 'no-cache') });
  r.use('/js', assets('js'));
  r.use('/css', assets('css'));
  return r;
}
