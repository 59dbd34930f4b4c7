/**
 * Broker-held key material in data_dir, made on first use (`wicket init` or
 * the first `wicket serve`), like sshd's host keys: an ed25519 SSH host key
 * and a self-signed TLS certificate for the database listeners and the web.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generate } from 'selfsigned';
import ssh2 from './util/ssh2.js';
import { generateEd25519 } from './util/openssh-key.js';

export interface HostKeys {
  readonly sshHostKey: string;
  readonly sshHostKeyPublic: string;
  readonly tlsCert: string;
  readonly tlsKey: string;
  /** Paths, for messages. */
  readonly paths: { readonly sshHostKey: string; readonly tlsCert: string; readonly tlsKey: string };
}

export function hostKeyPaths(dataDir: string): HostKeys['paths'] {
  return {
    sshHostKey: join(dataDir, 'ssh_host_ed25519_key'),
    tlsCert: join(dataDir, 'tls', 'cert.pem'),
    tlsKey: join(dataDir, 'tls', 'key.pem'),
  };
}

/** Loads the keys, creating whichever is missing. Returns which were created. */
export async function ensureHostKeys(dataDir: string): Promise<{ keys: HostKeys; created: string[] }> {
  const paths = hostKeyPaths(dataDir);
  const created: string[] = [];
  mkdirSync(join(dataDir, 'tls'), { recursive: true, mode: 0o700 });
  if (!existsSync(paths.sshHostKey)) {
    const pair = generateEd25519('wicket host key');
    writeFileSync(paths.sshHostKey, pair.private, { mode: 0o600, flag: 'wx' });
    writeFileSync(`${paths.sshHostKey}.pub`, `${pair.public}\n`, { mode: 0o644 });
    created.push(paths.sshHostKey);
  }
  if (!existsSync(paths.tlsCert) || !existsSync(paths.tlsKey)) {
    const notAfter = new Date(Date.now() + 825 * 86_400_000);
    const pems = await generate([{ name: 'commonName', value: 'wicket' }], {
      keyType: 'ec',
      curve: 'P-256',
      algorithm: 'sha256',
      notAfterDate: notAfter,
      extensions: [
        { name: 'basicConstraints', cA: false },
        { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
        { name: 'extKeyUsage', serverAuth: true },
        { name: 'subjectAltName', altNames: [{ type: 2, value: 'localhost' }, { type: 7, ip: '127.0.0.1' }, { type: 7, ip: '::1' }] },
      ],
    });
    writeFileSync(paths.tlsKey, pems.private, { mode: 0o600 });
    writeFileSync(paths.tlsCert, pems.cert, { mode: 0o644 });
    created.push(paths.tlsCert);
  }
  const sshHostKey = readFileSync(paths.sshHostKey, 'utf8');
  const parsed = ssh2.utils.parseKey(sshHostKey);
  if (parsed instanceof Error) throw parsed;
  const key = Array.isArray(parsed) ? parsed[0]! : parsed;
  const sshHostKeyPublic = `${key.type} ${key.getPublicSSH().toString('base64')}`;
  return {
    keys: { sshHostKey, sshHostKeyPublic, tlsCert: readFileSync(paths.tlsCert, 'utf8'), tlsKey: readFileSync(paths.tlsKey, 'utf8'), paths },
    created,
  };
}
