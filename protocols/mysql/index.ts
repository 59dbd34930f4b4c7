/**
 * The MySQL listener: accepts connections, caps how many may be in the
 * handshake/auth phase at once (as the Postgres listener does), and hands
 * each to a MysqlConnection.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { listen } from '../../src/util/listen.js';
import { LoginSlots } from '../../src/util/login-slots.js';
import { ER, encodePacket, errPayload } from './packets.js';
import { MysqlConnection, type MysqlDeps } from './session.js';

export const DEFAULT_MAX_PACKET_BYTES = 64 * 1024 * 1024;
const MAX_PENDING = 256;
const MAX_PENDING_PER_HOST = 128;
/** Until an upstream has been reached, clients see this; then the upstream's own version with -wicket. */
const DEFAULT_VERSION = '5.7.99-wicket';

export interface MysqlListener {
  readonly address: string;
  close(): Promise<void>;
}

export async function startMysql(address: string, deps: Omit<MysqlDeps, 'serverVersion' | 'onUpstreamVersion' | 'onReady'>): Promise<MysqlListener> {
  const sockets = new Set<Socket>();
  const slots = new LoginSlots(MAX_PENDING, MAX_PENDING_PER_HOST);
  let version = DEFAULT_VERSION;
  const server: Server = createServer({ noDelay: true }, (sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => undefined);
    const slot = slots.take(sock.remoteAddress ?? '?');
    if (!slot.ok) {
      sock.end(encodePacket(0, errPayload(ER.CON_COUNT, '08004', `too many connections are authenticating (${slot.why}); try again`)).bytes);
      return;
    }
    sock.once('close', slot.release);
    const addr = `${sock.remoteAddress ?? '?'}:${sock.remotePort ?? 0}`;
    new MysqlConnection(sock, {
      ...deps,
      serverVersion: () => version,
      // Clients adapt to the server's version (MariaDB or MySQL syntax); the greeting comes before the target is known.
      onUpstreamVersion: (v) => (version = `${v.replace(/-wicket$/, '').slice(0, 80)}-wicket`),
      onReady: slot.release,
    }, addr);
  });
  const bound = await listen(server, address, 'mysql');
  return {
    address: bound,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      }),
  };
}
