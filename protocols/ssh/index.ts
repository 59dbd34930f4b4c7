/**
 * The SSH listener: ssh2's Server with the broker's ed25519 host key and
 * modern algorithms only. Caps the connections still in handshake/auth (a
 * client that stalls mid-handshake holds one slot until authTimeoutMs, never
 * blocks the others) and logs whether ssh2's native crypto binding loaded:
 * npm can skip building it silently, and without it throughput halves.
 */
import { createRequire } from 'node:module';
import { createServer, type Socket } from 'node:net';
import ssh2 from '../../src/util/ssh2.js';
import type { Algorithms, Connection } from 'ssh2';
import { listen } from '../../src/util/listen.js';
import { LoginSlots } from '../../src/util/login-slots.js';
import { ALGORITHMS, type SshDeps } from './deps.js';
import { SshConnection } from './connection.js';

/** Connections not yet authenticated. */
const MAX_PENDING = 256;
/** Of those, from one source host. */
const MAX_PENDING_PER_HOST = 128;

export interface SshListener {
  readonly address: string;
  readonly nativeCrypto: boolean;
  close(): Promise<void>;
}

/** Whether ssh2 found its compiled binding (AES-GCM and ChaCha20-Poly1305 in C). */
export function nativeCryptoLoaded(): boolean {
  try {
    createRequire(import.meta.url)('ssh2/lib/protocol/crypto/build/Release/sshcrypto.node');
    return true;
  } catch {
    return false;
  }
}

export async function startSsh(address: string, deps: SshDeps): Promise<SshListener> {
  const native = nativeCryptoLoaded();
  deps.log(native ? 'ssh: native crypto binding loaded' : 'ssh: WARNING: ssh2 native crypto binding missing (npm skipped building it?): ciphers run in JavaScript, about half the throughput; run `npm rebuild ssh2`');
  const sockets = new Set<Socket>();
  const slots = new LoginSlots(MAX_PENDING, MAX_PENDING_PER_HOST);
  const loggingIn = new Map<Socket, () => void>();
  const ssh = new ssh2.Server(
    {
      hostKeys: [deps.keys.sshHostKey],
      algorithms: { ...ALGORITHMS, serverHostKey: ['ssh-ed25519'] } as Algorithms,
      ident: 'wicket',
    },
    (client: Connection, info: { ip: string; port: number }) => {
      const sock = (client as unknown as { _sock?: Socket })._sock;
      client.once('ready', () => {
        if (!sock) return;
        loggingIn.get(sock)?.();
        loggingIn.delete(sock);
        sock.setTimeout(0);
      });
      new SshConnection(client, deps, `${info.ip}:${info.port}`);
    },
  );
  // Our own TCP listener hands sockets to ssh2, so that a client which never
  // finishes the version exchange or key exchange (ssh2 announces a connection
  // only after the client's version line) is still timed out and counted.
  const tcp = createServer({ noDelay: true }, (sock) => {
    sockets.add(sock);
    sock.on('error', () => undefined);
    const slot = slots.take(sock.remoteAddress ?? '?');
    sock.once('close', () => {
      sockets.delete(sock);
      if (slot.ok) slot.release();
      loggingIn.delete(sock);
    });
    if (!slot.ok) {
      deps.log(`ssh ${sock.remoteAddress ?? '?'}:${sock.remotePort ?? 0}: refused: ${slot.why}`);
      sock.destroy();
      return;
    }
    loggingIn.set(sock, slot.release);
    sock.setTimeout(deps.authTimeoutMs, () => {
      if (loggingIn.has(sock)) sock.destroy();
    });
    ssh.injectSocket(sock);
  });
  const bound = await listen(tcp, address, 'ssh');
  return {
    address: bound,
    nativeCrypto: native,
    close: () =>
      new Promise<void>((resolve) => {
        tcp.close(() => resolve());
        for (const s of sockets) s.destroy();
      }),
  };
}
