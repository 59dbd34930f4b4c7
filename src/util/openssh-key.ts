/**
 * A new ed25519 key pair in OpenSSH's own formats: the unencrypted
 * "openssh-key-v1" private key file (PROTOCOL.key in OpenSSH's sources) and
 * the one-line public key.
 *
 * Why not ssh2's utils.generateKeyPairSync: for ed25519 it drops a leading
 * zero byte of the 32-byte public key (it treats it like an mpint), so about
 * one key in 170 comes out with a 31-byte key that ssh2 itself then refuses
 * to parse ("Malformed OpenSSH private key"): `wicket init` failed that often.
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';

const KEY_TYPE = 'ssh-ed25519';

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

/** SSH wire "string": uint32 length + bytes. */
function sshString(data: Buffer | string): Buffer {
  const b = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  return Buffer.concat([u32(b.length), b]);
}

export interface OpenSshKeyPair {
  /** PEM-style armoured private key file, ending in a newline. */
  readonly private: string;
  /** `ssh-ed25519 AAAA... comment` (no newline). */
  readonly public: string;
}

export function generateEd25519(comment = ''): OpenSshKeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const pub = Buffer.from(publicKey.export({ format: 'jwk' }).x!, 'base64url');
  const seed = Buffer.from(privateKey.export({ format: 'jwk' }).d!, 'base64url');
  if (pub.length !== 32 || seed.length !== 32) throw new Error('ed25519 key export gave an unexpected length');
  const pubBlob = Buffer.concat([sshString(KEY_TYPE), sshString(pub)]);
  const check = randomBytes(4);
  const body = Buffer.concat([check, check, sshString(KEY_TYPE), sshString(pub), sshString(Buffer.concat([seed, pub])), sshString(comment)]);
  // Padded with 1, 2, 3, ... to the cipher's block size (8 for "none").
  const padLen = (8 - (body.length % 8)) % 8;
  const padding = Buffer.from(Array.from({ length: padLen }, (_, i) => i + 1));
  const file = Buffer.concat([
    Buffer.from('openssh-key-v1\0', 'latin1'),
    sshString('none'),
    sshString('none'),
    sshString(Buffer.alloc(0)),
    u32(1),
    sshString(pubBlob),
    sshString(Buffer.concat([body, padding])),
  ]);
  const lines = file.toString('base64').match(/.{1,70}/g) ?? [];
  return {
    private: `-----BEGIN OPENSSH PRIVATE KEY-----\n${lines.join('\n')}\n-----END OPENSSH PRIVATE KEY-----\n`,
    public: `${KEY_TYPE} ${pubBlob.toString('base64')}${comment === '' ? '' : ` ${comment}`}`,
  };
}
