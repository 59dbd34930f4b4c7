/**
 * The upstream side of an `ssh` target: an ssh2 Client that logs in with the
 * credentials only wicket holds (`private_key` and/or `password`) and accepts
 * the server only if its host key matches `host_key` or an entry in the
 * `known_hosts` file. Errors are WicketErrors that name the target and never
 * carry the credential.
 */
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Algorithms, Client as SshClient } from 'ssh2';
import ssh2 from '../../src/util/ssh2.js';
import type { Config } from '../../src/config/schema.js';
import { WicketError, errorMessage } from '../../src/errors.js';
import { ALGORITHMS, UPSTREAM_CIPHERS, UPSTREAM_HOST_KEYS } from './deps.js';

type Target = Config['targets'][number];

/** What the upstream must present: base64 key blobs. */
export function expectedHostKeys(target: Target): { blobs: Set<string>; source: string } {
  const { host, port } = hostPort(target);
  if (target.host_key) {
    const blob = target.host_key.trim().split(/\s+/)[1];
    if (!blob) throw new WicketError('WICKET_ERR_CONFIG', `target ${target.name}: host_key must look like "ssh-ed25519 AAAA..."`);
    return { blobs: new Set([blob]), source: 'host_key' };
  }
  if (target.known_hosts) {
    let text: string;
    try {
      text = readFileSync(target.known_hosts, 'utf8');
    } catch (err) {
      throw new WicketError('WICKET_ERR_CONFIG', `target ${target.name}: cannot read known_hosts ${target.known_hosts}: ${errorMessage(err)}`);
    }
    const names = port === 22 ? [host, `[${host}]:22`] : [`[${host}]:${port}`];
    const blobs = new Set<string>();
    for (const raw of text.split('\n')) {
      const line = raw.trim();
      if (!line || line.startsWith('#') || line.startsWith('@revoked')) continue;
      const fields = line.startsWith('@cert-authority') ? [] : line.split(/\s+/);
      if (fields.length < 3) continue;
      if (fields[0]!.split(',').some((h) => names.some((n) => hostMatches(h, n)))) blobs.add(fields[2]!);
    }
    return { blobs, source: `known_hosts ${target.known_hosts}` };
  }
  throw new WicketError('WICKET_ERR_CONFIG', `target ${target.name} has neither host_key nor known_hosts: wicket does not connect to an unverified host`);
}

/** A known_hosts host field against one name; supports hashed entries (|1|salt|hash). */
function hostMatches(field: string, name: string): boolean {
  if (field.startsWith('|1|')) {
    const [, , salt, hash] = field.split('|');
    if (!salt || !hash) return false;
    return createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest('base64') === hash;
  }
  return field === name;
}

function hostPort(target: Target): { host: string; port: number } {
  const address = target.address ?? '';
  const i = address.lastIndexOf(':');
  if (i <= 0) throw new WicketError('WICKET_ERR_CONFIG', `target ${target.name} has no address host:port`);
  return { host: address.slice(0, i).replace(/^\[(.*)\]$/, '$1'), port: Number(address.slice(i + 1)) };
}

/** Connects and logs in. Rejects with a clear WicketError (host key mismatch: code WICKET_ERR_HOST_KEY). */
export function connectUpstream(target: Target, timeoutMs: number): Promise<SshClient> {
  let expected: { blobs: Set<string>; source: string };
  let addr: { host: string; port: number };
  try {
    expected = expectedHostKeys(target);
    addr = hostPort(target);
  } catch (err) {
    return Promise.reject(err);
  }
  if (!target.private_key && !target.password) {
    return Promise.reject(new WicketError('WICKET_ERR_CONFIG', `target ${target.name} has neither private_key nor password`));
  }
  return new Promise<SshClient>((resolve, reject) => {
    const client = new ssh2.Client();
    let seen: string | null = null;
    let settled = false;
    const done = (err: Error | null): void => {
      if (settled) return;
      settled = true;
      if (err) {
        client.end();
        reject(err);
      } else {
        resolve(client);
      }
    };
    client.once('ready', () => {
      // ssh2 leaves Nagle on: keystroke echo would wait for delayed ACKs.
      client.setNoDelay(true);
      done(null);
    });
    client.once('error', (err: Error & { level?: string }) => {
      if (seen !== null) {
        return done(new WicketError('WICKET_ERR_HOST_KEY', `upstream ${target.name}: host key mismatch: the server presented ${seen}, which does not match the target's ${expected.source}; refusing to connect`));
      }
      const what = err.level === 'client-authentication' ? `login as ${target.user ?? '?'} was refused (check the target's private_key/password)` : errorMessage(err);
      const pw = target.password;
      const text = `upstream ${target.name}: ${what}`;
      done(new WicketError('WICKET_ERR_UPSTREAM', pw ? text.split(pw).join('***') : text));
    });
    client.once('close', () => done(new WicketError('WICKET_ERR_UPSTREAM', `upstream ${target.name}: connection closed during login`)));
    try {
      client.connect({
        host: addr.host,
        port: addr.port,
        username: target.user ?? 'root',
        privateKey: target.private_key,
        password: target.password,
        readyTimeout: timeoutMs,
        keepaliveInterval: 30_000,
        // As the client of this leg we choose the cipher: AES-GCM first (AES-NI makes it the cheapest per byte).
        algorithms: { ...ALGORITHMS, cipher: UPSTREAM_CIPHERS, serverHostKey: UPSTREAM_HOST_KEYS } as Algorithms,
        hostVerifier: (key: Buffer): boolean => {
          const b64 = key.toString('base64');
          if (expected.blobs.has(b64)) return true;
          const parsed = ssh2.utils.parseKey(key);
          seen = parsed instanceof Error ? 'an unparseable key' : `${(Array.isArray(parsed) ? parsed[0] : parsed)?.type ?? 'a'} key ${b64.slice(0, 24)}...`;
          return false;
        },
      });
    } catch (err) {
      done(new WicketError('WICKET_ERR_CONFIG', `upstream ${target.name}: ${errorMessage(err)}`));
    }
  });
}
