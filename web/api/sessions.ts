/**
 * Sessions over HTTP (DESIGN.md §6). Same rule as the CLI: a user sees only
 * their own sessions unless one of their roles has `audit: true`. A session
 * the caller may not see answers 404 exactly like one that does not exist,
 * so ids cannot be probed.
 *
 *   GET  /api/sessions?user=&target=&segment=&protocol=&q=&live=&since=&before=&limit=
 *                                        newest first; { sessions, next } (next: the `before` of the next page)
 *   GET  /api/sessions/:id               { session, events } (metadata + the session's audit events)
 *   GET  /api/sessions/:id/cast          the asciicast v2 recording of a terminal session
 *   POST /api/sessions/:id/kill          {reason?}  admin only: ends it on whichever broker runs it
 *
 * The recording file is found only through the store's recording_path and
 * must resolve (symlinks included) inside data_dir; anything else is a 404.
 */
import { constants as fsConstants } from 'node:fs';
import { open, realpath, type FileHandle } from 'node:fs/promises';
import { isAbsolute, relative, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Router, type Request } from 'express';
import { PROTOCOLS, type Config, type Protocol } from '../../src/config/schema.js';
import { WicketError } from '../../src/errors.js';
import { isAdmin } from '../../src/access/rules.js';
import type { AuditEvent, AuditInput, SessionFilter, SessionRecord, SessionStatus, Store } from '../../src/store/types.js';
import { parseDuration } from '../../src/util/duration.js';
import { resolveRecordingPath } from '../../recordings/paths.js';
import { principal } from './auth.js';
import { isAuditor } from './me.js';

export const DEFAULT_LIMIT = 50;
export const MAX_LIMIT = 500;
/** Events returned with one session; a longer session says eventsTruncated. */
export const MAX_EVENTS = 10_000;
const MAX_Q = 1000;
const MAX_NAME = 128;
const MAX_REASON = 2000;
const DEFAULT_KILL_REASON = 'killed by an administrator';
/** Session ids are generated as base36 time + hex (broker.ts); anything else cannot exist. */
const SESSION_ID_RE = /^[A-Za-z0-9_-]{1,128}$/;

export interface SessionsDeps {
  readonly config: () => Config;
  readonly store: Store;
  /** Durable audit append: resolves once the event is chained. */
  readonly audit: (e: AuditInput) => Promise<void>;
  readonly clock?: () => number;
}

export interface SessionView {
  readonly id: string;
  readonly user: string;
  readonly target: string;
  readonly segment: string;
  readonly protocol: Protocol;
  readonly clientAddr: string;
  readonly startedAt: string;
  readonly endedAt: string | null;
  /** Up to now for a live session. */
  readonly durationMs: number;
  readonly status: SessionStatus;
  readonly endReason: string | null;
  readonly live: boolean;
  /** A terminal (asciicast) recording exists: GET /api/sessions/:id/cast. */
  readonly hasRecording: boolean;
}

export interface SessionDetailView extends SessionView {
  readonly meta: Readonly<Record<string, unknown>>;
  readonly access: 'read' | 'write';
  readonly rule: string | null;
  readonly grantId: string | null;
  readonly recordingSha256: string | null;
  readonly recordingBytes: number | null;
}

export interface SessionEventView {
  readonly seq: number;
  readonly ts: string;
  readonly kind: string;
  readonly actor: string;
  readonly data: Readonly<Record<string, unknown>>;
}

const iso = (ms: number): string => new Date(ms).toISOString();

export function sessionView(s: SessionRecord, now: number): SessionView {
  return {
    id: s.id,
    user: s.user,
    target: s.target,
    segment: s.segment,
    protocol: s.protocol,
    clientAddr: s.clientAddr,
    startedAt: iso(s.startedAt),
    endedAt: s.endedAt === null ? null : iso(s.endedAt),
    durationMs: Math.max(0, (s.endedAt ?? now) - s.startedAt),
    status: s.status,
    endReason: s.endReason,
    live: s.status === 'live',
    hasRecording: s.recordingPath !== null,
  };
}

function detailView(s: SessionRecord, now: number): SessionDetailView {
  return {
    ...sessionView(s, now),
    meta: s.meta,
    access: s.access,
    rule: s.rule,
    grantId: s.grantId,
    recordingSha256: s.recordingSha256,
    recordingBytes: s.recordingBytes,
  };
}

function eventView(e: AuditEvent): SessionEventView {
  return { seq: e.seq, ts: iso(e.ts), kind: e.kind, actor: e.actor, data: e.data };
}

/** Whether `user` may see `s`: their own, or any with a role that has `audit: true`. */
export function canSeeSession(config: Config, user: string, s: SessionRecord): boolean {
  return s.user === user || isAuditor(config, user);
}

function queryString(req: Request, key: string): string | undefined {
  const v: unknown = req.query[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw new WicketError('WICKET_ERR_USAGE', `?${key}= given more than once or malformed`);
  return v === '' ? undefined : v; // an empty form field means "no filter"
}

function nameFilter(req: Request, key: string): string | undefined {
  const v = queryString(req, key);
  if (v !== undefined && v.length > MAX_NAME) throw new WicketError('WICKET_ERR_USAGE', `?${key}= is longer than ${MAX_NAME} characters`);
  return v;
}

/** Epoch ms, an ISO 8601 date/time, or a duration ago (1d), as `wicket sessions --since`. */
function parseTime(text: string, now: number, key: string): number {
  if (/^[0-9]{1,15}$/.test(text)) return Number(text);
  const d = parseDuration(text);
  if (d !== null) return now - d;
  const t = /^[0-9]{4}-[0-9]{2}-[0-9]{2}/.test(text) ? Date.parse(text) : NaN;
  if (Number.isNaN(t)) throw new WicketError('WICKET_ERR_USAGE', `?${key}=: expected epoch milliseconds, an ISO date such as 2026-11-20T10:00:00Z or a duration such as 1d, got "${text.slice(0, 100)}"`);
  return t;
}

/** `<startedAt>:<id>` (the `next` of the previous page); split at the last ':' so an ISO time also works. */
function parseBefore(text: string, now: number): { startedAt: number; id: string } {
  const i = text.lastIndexOf(':');
  const id = i < 0 ? '' : text.slice(i + 1);
  if (i <= 0 || !SESSION_ID_RE.test(id)) throw new WicketError('WICKET_ERR_USAGE', '?before= must be <startedAt>:<id>, as returned in "next"');
  return { startedAt: parseTime(text.slice(0, i), now, 'before'), id };
}

function parseLimit(req: Request): number {
  const q = queryString(req, 'limit');
  if (q === undefined) return DEFAULT_LIMIT;
  if (!/^[1-9][0-9]{0,5}$/.test(q)) throw new WicketError('WICKET_ERR_USAGE', `?limit= must be a whole number from 1 to ${MAX_LIMIT}`);
  return Math.min(Number(q), MAX_LIMIT);
}

function parseLive(req: Request): boolean | undefined {
  const q = queryString(req, 'live');
  if (q === undefined) return undefined;
  if (q === 'true' || q === '1') return true;
  if (q === 'false' || q === '0') return false;
  throw new WicketError('WICKET_ERR_USAGE', '?live= must be true or false');
}

function sessionId(req: Request): string {
  const v: unknown = req.params.id;
  const raw = typeof v === 'string' ? v : '';
  if (!SESSION_ID_RE.test(raw)) throw new WicketError('WICKET_ERR_NOT_FOUND', `no session ${raw.slice(0, 128)}`);
  return raw;
}

function reasonOf(req: Request): string {
  const b: unknown = req.body;
  if (b === undefined || b === null) return DEFAULT_KILL_REASON;
  if (typeof b !== 'object' || Array.isArray(b)) throw new WicketError('WICKET_ERR_USAGE', 'expected a JSON object body');
  const v = (b as Record<string, unknown>).reason;
  if (v === undefined || v === null) return DEFAULT_KILL_REASON;
  if (typeof v !== 'string' || v.trim() === '') throw new WicketError('WICKET_ERR_USAGE', '"reason" must be a non-empty string');
  if (v.length > MAX_REASON) throw new WicketError('WICKET_ERR_USAGE', `"reason" is longer than ${MAX_REASON} characters`);
  return v;
}

const inside = (root: string, full: string): boolean => {
  const rel = relative(root, full);
  return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel);
};

/**
 * Opens a session's recording for reading: the stored path, resolved inside
 * data_dir both as written and after following symlinks, and a regular file.
 * Every way of failing is a 404: the caller learns nothing about the disk.
 */
async function openRecording(dataDir: string, relPath: string, id: string): Promise<{ fh: FileHandle; size: number }> {
  const gone = (why: string): WicketError => new WicketError('WICKET_ERR_NOT_FOUND', `recording of session ${id} is not available (${why})`);
  let full: string;
  try {
    full = resolveRecordingPath(dataDir, relPath);
  } catch {
    throw gone('its path is outside the data directory');
  }
  let real: string;
  try {
    const root = await realpath(resolve(dataDir));
    real = await realpath(full);
    if (!inside(root, real)) throw gone('its path is outside the data directory');
  } catch (err) {
    if (err instanceof WicketError) throw err;
    throw gone('file missing');
  }
  let fh: FileHandle;
  try {
    fh = await open(real, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW);
  } catch {
    throw gone('file missing');
  }
  const st = await fh.stat().catch(() => null);
  if (st === null || !st.isFile()) {
    await fh.close();
    throw gone('not a regular file');
  }
  return { fh, size: st.size };
}

export function sessionsRouter(deps: SessionsDeps): Router {
  const clock = deps.clock ?? Date.now;
  const r = Router();

  /** The session, or 404 when it does not exist or the caller may not see it (the same answer). */
  const visibleSession = async (req: Request): Promise<SessionRecord> => {
    const id = sessionId(req);
    const s = await deps.store.getSession(id);
    if (s === null || !canSeeSession(deps.config(), principal(req).user, s)) throw new WicketError('WICKET_ERR_NOT_FOUND', `no session ${id}`);
    return s;
  };

  r.get('/', async (req, res) => {
    const me = principal(req).user;
    const now = clock();
    const protocol = queryString(req, 'protocol');
    if (protocol !== undefined && !(PROTOCOLS as readonly string[]).includes(protocol)) {
      throw new WicketError('WICKET_ERR_USAGE', `?protocol= must be one of ${PROTOCOLS.join(', ')}`);
    }
    const q = queryString(req, 'q');
    if (q !== undefined && q.length > MAX_Q) throw new WicketError('WICKET_ERR_USAGE', `?q= is longer than ${MAX_Q} characters`);
    const sinceQ = queryString(req, 'since');
    const beforeQ = queryString(req, 'before');
    const limit = parseLimit(req);
    const userQ = nameFilter(req, 'user');
    const filter: SessionFilter = {
      // Without audit: true the user filter is the caller, whatever was asked (someone else's: nothing).
      user: isAuditor(deps.config(), me) ? userQ : me,
      target: nameFilter(req, 'target'),
      segment: nameFilter(req, 'segment'),
      protocol: protocol as Protocol | undefined,
      live: parseLive(req),
      since: sinceQ === undefined ? undefined : parseTime(sinceQ, now, 'since'),
      q,
      before: beforeQ === undefined ? undefined : parseBefore(beforeQ, now),
      limit: limit + 1, // one more than asked tells whether there is a next page
    };
    if (userQ !== undefined && filter.user !== userQ) return void res.json({ sessions: [], next: null });
    const rows = await deps.store.listSessions(filter);
    const page = rows.slice(0, limit);
    const last = page[page.length - 1];
    res.json({
      sessions: page.map((s) => sessionView(s, now)),
      next: rows.length > limit && last !== undefined ? `${last.startedAt}:${last.id}` : null,
    });
  });

  r.get('/:id', async (req, res) => {
    const s = await visibleSession(req);
    // One more than shown tells whether there are more; a huge session is never read whole.
    const events = await deps.store.sessionEvents(s.id, { afterSeq: 0, limit: MAX_EVENTS + 1 });
    res.json({
      session: detailView(s, clock()),
      events: events.slice(0, MAX_EVENTS).map(eventView),
      eventsTruncated: events.length > MAX_EVENTS,
    });
  });

  r.get('/:id/cast', async (req, res) => {
    const s = await visibleSession(req);
    if (s.recordingPath === null) {
      throw new WicketError('WICKET_ERR_NOT_FOUND', `session ${s.id} has no terminal recording (a ${s.protocol} session is recorded as events: GET /api/sessions/${s.id})`);
    }
    const { fh, size } = await openRecording(deps.config().dataDir, s.recordingPath, s.id);
    try {
      res.status(200);
      res.setHeader('Content-Type', 'application/x-asciicast');
      res.setHeader('Content-Disposition', `attachment; filename="${s.id}.cast"`);
      // A live session's file grows: send exactly the bytes it had when opened.
      res.setHeader('Content-Length', String(size));
      if (size === 0 || req.method === 'HEAD') return void res.end();
      await pipeline(fh.createReadStream({ start: 0, end: size - 1, autoClose: false }), res);
    } catch {
      res.destroy(); // headers are out: cut the connection so the client sees a short download
    } finally {
      await fh.close().catch(() => undefined);
    }
  });

  r.post('/:id/kill', async (req, res) => {
    const me = principal(req).user;
    // Before any lookup: a non-admin learns nothing about which ids exist.
    if (!isAdmin(deps.config(), me)) throw new WicketError('WICKET_ERR_FORBIDDEN', `${me} may not kill sessions (needs a role with admin: true)`);
    const id = sessionId(req);
    const reason = reasonOf(req);
    const s = await deps.store.getSession(id);
    if (s === null) throw new WicketError('WICKET_ERR_NOT_FOUND', `no session ${id}`);
    if (s.status !== 'live') throw new WicketError('WICKET_ERR_CONFLICT', `session ${id} is not live (${s.status})`);
    // As `wicket kill`: a control signal every broker sharing the store acts on within a poll, then the durable audit.
    const now = clock();
    await deps.store.pushControl({ kind: 'kill', ts: now, actor: me, sessionId: id, reason });
    await deps.audit({ ts: now, kind: 'session.kill', actor: me, sessionId: id, target: s.target, data: { reason } });
    res.json({ ok: true });
  });

  return r;
}
