/**
 * Who is calling the API. Two ways in (DESIGN.md §6):
 *
 * - `Authorization: Bearer wkt_<id>_<secret>`: a personal access token. The
 *   id names the token record, whose owner is the user; the whole token is
 *   then checked like any other secret of that user (authenticateSecret:
 *   the user must still be in the config, the token live and its hash equal).
 * - `POST /api/login {user, password}` sets an HttpOnly, SameSite=Strict
 *   cookie holding a random 256-bit session id. Sessions live in this
 *   process's memory only (keyed by the id's sha256, capped, absolute
 *   expiry): a restart logs everyone out and several brokers do not share
 *   them. Because the id is random and looked up server side, it needs no
 *   signature. State-changing calls made with the cookie must send
 *   `Content-Type: application/json`, which a cross-site form cannot.
 *
 * Failed attempts are throttled (per source address for tokens, per user
 * and address for passwords) and recorded as auth.fail.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { Router, type Request, type RequestHandler, type Response } from 'express';
import type { ErrorCode } from '../../src/errors.js';
import type { Config, RoleConfig } from '../../src/config/schema.js';
import type { AuditInput, Store } from '../../src/store/types.js';
import { authenticateSecret } from '../../src/auth/authenticate.js';
import { looksLikeToken } from '../../src/auth/tokens.js';
import { Throttle, throttleKeys } from '../../src/auth/throttle.js';
import { sendError } from './errors.js';

export const SESSION_COOKIE = 'wicket_session';
const SESSION_ID_RE = /^[A-Za-z0-9_-]{43}$/;
const MAX_USER_CHARS = 64;
const MAX_PASSWORD_CHARS = 1024;

export interface Principal {
  readonly user: string;
  readonly via: 'token' | 'session';
  readonly tokenId: string | null;
}

export interface AuthDeps {
  readonly config: () => Config;
  readonly store: Store;
  readonly audit: (e: AuditInput) => Promise<void>;
  readonly clock: () => number;
  readonly throttle: Throttle;
  readonly sessions: WebSessions;
}

interface WebSession {
  readonly user: string;
  readonly expiresAt: number;
}

/** Login sessions in memory: sha256(id) -> user, absolute expiry, at most `max` (oldest dropped first). */
export class WebSessions {
  private readonly byHash = new Map<string, WebSession>();
  constructor(private readonly opts: { readonly ttlMs: number; readonly max: number } = { ttlMs: 8 * 3_600_000, max: 10_000 }) {}

  get ttlMs(): number {
    return this.opts.ttlMs;
  }

  create(user: string, now: number): { readonly id: string; readonly expiresAt: number } {
    const id = randomBytes(32).toString('base64url');
    const expiresAt = now + this.opts.ttlMs;
    this.byHash.set(hashId(id), { user, expiresAt });
    if (this.byHash.size > this.opts.max) {
      for (const [k, s] of this.byHash) if (s.expiresAt <= now) this.byHash.delete(k);
      // Map iterates in insertion order: past the cap, the oldest logins go first.
      while (this.byHash.size > this.opts.max) {
        const oldest = this.byHash.keys().next().value;
        if (oldest === undefined) break;
        this.byHash.delete(oldest);
      }
    }
    return { id, expiresAt };
  }

  lookup(id: string, now: number): WebSession | null {
    if (!SESSION_ID_RE.test(id)) return null;
    const k = hashId(id);
    const s = this.byHash.get(k);
    if (!s) return null;
    if (s.expiresAt <= now) {
      this.byHash.delete(k);
      return null;
    }
    return s;
  }

  destroy(id: string): void {
    if (SESSION_ID_RE.test(id)) this.byHash.delete(hashId(id));
  }
}

const hashId = (id: string): string => createHash('sha256').update(id).digest('hex');

const principals = new WeakMap<Request, Principal>();

/** The authenticated caller (set by `authenticate`). */
export function principal(req: Request): Principal {
  const p = principals.get(req);
  if (!p) throw new Error('principal() called on a route that is not behind authenticate()');
  return p;
}

/** The config roles of `user` (none when the user left the config). */
export function userRoles(config: Config, user: string): RoleConfig[] {
  const names = new Set(config.users.find((u) => u.name === user)?.roles ?? []);
  return config.roles.filter((r) => names.has(r.name));
}

/** The socket's address: `trust proxy` is off, so never a client-supplied header. */
export function clientAddr(req: IncomingMessage): string {
  return req.socket.remoteAddress ?? 'unknown';
}

function cookieValue(req: IncomingMessage, name: string): string | null {
  const header = req.headers.cookie;
  if (!header) return null;
  for (const part of header.split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return null;
}

function unauthorized(res: Response, message: string): void {
  res.setHeader('WWW-Authenticate', 'Bearer realm="wicket"');
  sendError(res, 401, 'WICKET_ERR_AUTH', message);
}

function throttled(res: Response, waitMs: number): void {
  const s = Math.max(1, Math.ceil(waitMs / 1000));
  res.setHeader('Retry-After', String(s));
  sendError(res, 429, 'WICKET_ERR_AUTH_THROTTLED', `too many failed attempts; try again in ${s} s`);
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** Who is calling, or how to refuse them (status, code, message, response headers). */
export type Identified =
  | { readonly ok: true; readonly principal: Principal }
  | { readonly ok: false; readonly status: 401 | 429; readonly code: ErrorCode; readonly message: string; readonly headers: Readonly<Record<string, string>> };

const deny401 = (message: string): Identified => ({ ok: false, status: 401, code: 'WICKET_ERR_AUTH', message, headers: { 'WWW-Authenticate': 'Bearer realm="wicket"' } });

/**
 * The bearer token or login cookie of any HTTP request, Express or not (the
 * WebSocket upgrade in web/live.ts uses it too): throttles and records failed
 * tokens exactly like `authenticate`, which is built on it. Checks that depend
 * on the request method (the cookie's Content-Type rule) are the caller's.
 */
export async function identify(deps: AuthDeps, req: IncomingMessage): Promise<Identified> {
  const now = deps.clock();
  const addr = clientAddr(req);
  const authz = req.headers.authorization;
  if (authz !== undefined) {
    const m = /^Bearer[ ]+(\S+)[ ]*$/i.exec(authz);
    if (!m) return deny401('Authorization must be "Bearer <token>"');
    const keys = [`addr:${addr}`];
    const wait = deps.throttle.retryAfter(keys, now);
    if (wait > 0) {
      const s = Math.max(1, Math.ceil(wait / 1000));
      return { ok: false, status: 429, code: 'WICKET_ERR_AUTH_THROTTLED', message: `too many failed attempts; try again in ${s} s`, headers: { 'Retry-After': String(s) } };
    }
    const token = m[1]!;
    // wkt_<16 hex id>_<secret>: the id finds the owner; authenticateSecret checks the whole token for that owner.
    const rec = looksLikeToken(token) ? await deps.store.getToken(token.slice(4, 20)) : null;
    const r = rec ? await authenticateSecret(deps.config(), deps.store, rec.user, token, now) : null;
    if (!rec || !r?.ok || r.method !== 'token' || r.tokenId !== rec.id) {
      deps.throttle.fail(keys, now);
      await deps.audit({ ts: now, kind: 'auth.fail', actor: rec?.user ?? 'unknown', data: { protocol: 'http', clientAddr: addr, method: 'token', reason: rec ? 'bad or expired token' : 'unknown token' } });
      return deny401('invalid, expired or revoked token');
    }
    return { ok: true, principal: { user: rec.user, via: 'token', tokenId: rec.id } };
  }
  const sid = cookieValue(req, SESSION_COOKIE);
  if (sid !== null) {
    const s = deps.sessions.lookup(sid, now);
    if (!s || !deps.config().users.some((u) => u.name === s.user)) return deny401('login session expired or unknown; log in again');
    return { ok: true, principal: { user: s.user, via: 'session', tokenId: null } };
  }
  return deny401('authentication required: send Authorization: Bearer <token>, or log in with POST /api/login');
}

/*
 * The AuthDeps of the app built on a store (set by `authenticate`), so the
 * WebSocket upgrade handler, which lives outside Express, checks the very
 * same login sessions and throttle.
 */
const depsByStore = new WeakMap<Store, AuthDeps>();

/** The AuthDeps that createApp() built for `store`, once it has (null before). */
export function webAuthDeps(store: Store): AuthDeps | null {
  return depsByStore.get(store) ?? null;
}

/** Requires a valid bearer token or login cookie; sets principal(req). */
export function authenticate(deps: AuthDeps): RequestHandler {
  depsByStore.set(deps.store, deps);
  return async (req, res, next) => {
    const who = await identify(deps, req);
    if (!who.ok) {
      for (const [k, v] of Object.entries(who.headers)) res.setHeader(k, v);
      return sendError(res, who.status, who.code, who.message);
    }
    if (who.principal.via === 'session' && !SAFE_METHODS.has(req.method) && !req.is('application/json')) {
      return sendError(res, 403, 'WICKET_ERR_FORBIDDEN', 'requests authenticated by the login cookie must send Content-Type: application/json');
    }
    principals.set(req, who.principal);
    return next();
  };
}

function str(body: unknown, key: string): string | null {
  const v = typeof body === 'object' && body !== null ? (body as Record<string, unknown>)[key] : undefined;
  return typeof v === 'string' ? v : null;
}

/** `POST /api/login` and `POST /api/logout` (mounted before `authenticate`). */
export function loginRouter(deps: AuthDeps): Router {
  const r = Router();
  r.post('/login', async (req, res) => {
    const user = str(req.body, 'user');
    const password = str(req.body, 'password');
    if (!req.is('application/json') || user === null || password === null) {
      return sendError(res, 400, 'WICKET_ERR_USAGE', 'expected a JSON body {"user": "...", "password": "..."}');
    }
    if (user.length === 0 || user.length > MAX_USER_CHARS || password.length > MAX_PASSWORD_CHARS) {
      return unauthorized(res, 'invalid user name or password');
    }
    const now = deps.clock();
    const addr = clientAddr(req);
    const keys = throttleKeys(user, addr);
    const wait = deps.throttle.retryAfter(keys, now);
    if (wait > 0) return throttled(res, wait);
    const a = await authenticateSecret(deps.config(), deps.store, user, password, now);
    if (!a.ok) {
      deps.throttle.fail(keys, now);
      await deps.audit({ ts: now, kind: 'auth.fail', actor: user, data: { protocol: 'http', clientAddr: addr, method: 'login', reason: a.why } });
      return unauthorized(res, 'invalid user name or password');
    }
    deps.throttle.succeed(keys);
    await deps.audit({ ts: now, kind: 'auth.ok', actor: user, data: { protocol: 'http', clientAddr: addr, method: a.method, tokenId: a.tokenId } });
    const s = deps.sessions.create(user, now);
    res.cookie(SESSION_COOKIE, s.id, { httpOnly: true, sameSite: 'strict', secure: req.secure, path: '/api', maxAge: deps.sessions.ttlMs });
    res.json({ user, expiresAt: new Date(s.expiresAt).toISOString() });
  });
  r.post('/logout', (req, res) => {
    const sid = cookieValue(req, SESSION_COOKIE);
    if (sid !== null) deps.sessions.destroy(sid);
    res.clearCookie(SESSION_COOKIE, { httpOnly: true, sameSite: 'strict', secure: req.secure, path: '/api' });
    res.json({ ok: true });
  });
  return r;
}
