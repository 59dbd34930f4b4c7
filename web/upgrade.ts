/**
 * What the WebSocket endpoints (web/live.ts, web/terminal.ts) share before a
 * 101: refusing an upgrade with a plain HTTP answer (a JSON body like the
 * API's, never a 101), and the Origin check that is a WebSocket's CSRF
 * protection when the login cookie authenticates it. And, once open, the
 * ping that cuts a dead peer and whether the token a socket was opened with
 * still stands.
 */
import { STATUS_CODES, type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';
import type { Broker } from '../src/broker.js';
import type { Config } from '../src/config/schema.js';
import type { ErrorCode } from '../src/errors.js';
import type { AuditInput, Store } from '../src/store/types.js';
import { tokenUsable } from '../src/auth/tokens.js';
import type { Principal } from './api/auth.js';

/** What every WebSocket endpoint gets from the running broker. */
export interface WsEndpointDeps {
  readonly broker: Broker;
  readonly store: Store;
  readonly config: () => Config;
  /** Durable audit append. */
  readonly audit: (e: AuditInput) => Promise<void>;
  readonly clock?: () => number;
  readonly log?: (line: string) => void;
}

export class RefuseError extends Error {
  constructor(
    readonly status: number,
    readonly code: ErrorCode,
    message: string,
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(message);
  }
}

/** Answers an upgrade request with a plain HTTP error (JSON body like the API's) and closes the socket. */
export function refuse(socket: Duplex, e: RefuseError): void {
  if (!socket.writable) return void socket.destroy();
  const body = JSON.stringify({ error: { code: e.code, message: e.message } });
  const head = [
    `HTTP/1.1 ${e.status} ${STATUS_CODES[e.status] ?? 'Error'}`,
    'Connection: close',
    'Content-Type: application/json; charset=utf-8',
    `Content-Length: ${Buffer.byteLength(body)}`,
    'Cache-Control: no-store',
    'X-Content-Type-Options: nosniff',
    ...Object.entries(e.headers).map(([k, v]) => `${k}: ${v}`),
  ];
  socket.once('finish', () => socket.destroy());
  socket.end(`${head.join('\r\n')}\r\n\r\n${body}`);
}

/** The page's own origin: a browser's Origin must name this scheme-less host (and port) exactly. */
export function sameOrigin(req: IncomingMessage): boolean {
  const origin = req.headers.origin;
  const host = req.headers.host;
  if (origin === undefined || host === undefined) return false;
  try {
    const o = new URL(origin);
    if (o.protocol !== 'http:' && o.protocol !== 'https:') return false;
    // Parsing the Host with the Origin's scheme normalises case and a default port.
    return new URL(`${o.protocol}//${host}`).host === o.host && o.pathname === '/' && o.username === '' && o.password === '';
  } catch {
    return false;
  }
}

/**
 * Whether the credential an open socket was authenticated with still
 * stands: a bearer token may since have been revoked or have expired. (A
 * login cookie is checked on each request; an open socket keeps it.)
 */
export async function tokenStillValid(store: Store, who: Principal, now: number): Promise<boolean> {
  if (who.tokenId === null) return true;
  const t = await store.getToken(who.tokenId);
  return t !== null && t.user === who.user && tokenUsable(t, now);
}

/**
 * Pings `ws` every `everyMs`; a peer that has not answered the previous ping
 * by the next one is cut. Returns the (unref'd) timer, to clear on close.
 */
export function heartbeat(ws: WebSocket, everyMs: number): NodeJS.Timeout {
  let alive = true;
  ws.on('pong', () => (alive = true));
  const timer = setInterval(() => {
    if (!alive) return ws.terminate();
    alive = false;
    ws.ping();
  }, everyMs);
  timer.unref();
  return timer;
}
