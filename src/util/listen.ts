import type { Server } from 'node:net';
import { WicketError } from '../errors.js';

/** Splits a validated `host:port` (IPv6 in brackets). */
export function splitHostPort(address: string): { host: string; port: number } {
  const i = address.lastIndexOf(':');
  const host = address.slice(0, i).replace(/^\[(.*)\]$/, '$1');
  return { host, port: Number(address.slice(i + 1)) };
}

/** Listens, turning EADDRINUSE and friends into one clear error naming the listener. Resolves to the bound host:port (port 0 picks a free one). */
export function listen(server: Server, address: string, what: string): Promise<string> {
  const { host, port } = splitHostPort(address);
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      reject(new WicketError('WICKET_ERR_USAGE', `listen.${what}: cannot listen on ${address}: ${err.code ?? err.message}`));
    };
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      const a = server.address();
      resolve(a && typeof a === 'object' ? `${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}` : address);
    });
  });
}
