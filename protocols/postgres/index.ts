/**
 * The Postgres listener: accepts connections, caps how many may be in the
 * startup/auth phase at once, and hands each to a PgConnection.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { errorResponse } from './backend.js';
import { PgConnection } from './session.js';
import { CancelRegistry, type PgDeps } from './deps.js';
import { initPostgresParser } from '../../src/sql/postgres.js';
import { listen } from '../../src/util/listen.js';
import { LoginSlots } from '../../src/util/login-slots.js';

export const DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024;
/** Connections not yet relaying (startup, TLS, SCRAM, upstream connect). */
const MAX_PENDING = 256;
/** Of those, from one source host. */
const MAX_PENDING_PER_HOST = 128;

export interface PostgresListener {
  readonly address: string;
  close(): Promise<void>;
}

export async function startPostgres(address: string, deps: Omit<PgDeps, 'cancels'> & { cancels?: CancelRegistry }): Promise<PostgresListener> {
  await initPostgresParser();
  const full: PgDeps = { ...deps, cancels: deps.cancels ?? new CancelRegistry() };
  const sockets = new Set<Socket>();
  const slots = new LoginSlots(MAX_PENDING, MAX_PENDING_PER_HOST);
  const server: Server = createServer({ pauseOnConnect: false, noDelay: true }, (sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    const slot = slots.take(sock.remoteAddress ?? '?');
    if (!slot.ok) {
      sock.end(errorResponse({ severity: 'FATAL', code: '53300', message: `too many connections are authenticating (${slot.why}); try again` }));
      return;
    }
    sock.once('close', slot.release);
    const addr = `${sock.remoteAddress ?? '?'}:${sock.remotePort ?? 0}`;
    new PgConnection(sock, { ...full, onReady: slot.release }, addr);
  });
  const bound = await listen(server, address, 'postgres');
  return {
    address: bound,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      }),
  };
}
