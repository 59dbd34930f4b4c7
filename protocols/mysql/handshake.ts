/**
 * Connection-phase messages, both directions: the server greeting
 * (HandshakeV10), the client's SSLRequest and HandshakeResponse41, auth
 * switch / more-data, and the password scrambles of the plugins wicket
 * speaks upstream. Pure functions over Buffers.
 */
import { createHash, publicEncrypt, constants } from 'node:crypto';
import { PacketError, Reader, lenencInt, lenencString } from './packets.js';

export const CLIENT = {
  LONG_PASSWORD: 1,
  FOUND_ROWS: 2,
  LONG_FLAG: 4,
  CONNECT_WITH_DB: 8,
  NO_SCHEMA: 16,
  COMPRESS: 32,
  ODBC: 64,
  LOCAL_FILES: 128,
  IGNORE_SPACE: 256,
  PROTOCOL_41: 512,
  INTERACTIVE: 1024,
  SSL: 2048,
  IGNORE_SIGPIPE: 4096,
  TRANSACTIONS: 8192,
  RESERVED: 16384,
  SECURE_CONNECTION: 32768,
  MULTI_STATEMENTS: 1 << 16,
  MULTI_RESULTS: 1 << 17,
  PS_MULTI_RESULTS: 1 << 18,
  PLUGIN_AUTH: 1 << 19,
  CONNECT_ATTRS: 1 << 20,
  PLUGIN_AUTH_LENENC_CLIENT_DATA: 1 << 21,
  CAN_HANDLE_EXPIRED_PASSWORDS: 1 << 22,
  SESSION_TRACK: 1 << 23,
  DEPRECATE_EOF: 1 << 24,
  OPTIONAL_RESULTSET_METADATA: 1 << 25,
  ZSTD_COMPRESSION: 1 << 26,
  QUERY_ATTRIBUTES: 1 << 27,
} as const;

/**
 * What wicket offers clients: only what it can relay faithfully to any
 * MySQL >= 5.7 / MariaDB >= 10.2 upstream and still parse. Not offered:
 * compression (the relay must read every packet), query attributes and
 * optional metadata (they change the framing wicket tracks), and MariaDB's
 * extended capabilities (bulk execute, metadata caching). LOCAL_FILES is
 * offered; `LOAD DATA LOCAL` is refused unless the rule allows it.
 * The upstream gets the client's choice intersected with this; a capability
 * the client chose but the upstream lacks ends the login with a clear error
 * (the client would otherwise misread the upstream's replies).
 */
export const WICKET_CAPS =
  CLIENT.LONG_PASSWORD | CLIENT.FOUND_ROWS | CLIENT.LONG_FLAG | CLIENT.CONNECT_WITH_DB | CLIENT.LOCAL_FILES |
  CLIENT.PROTOCOL_41 | CLIENT.INTERACTIVE | CLIENT.SSL | CLIENT.IGNORE_SIGPIPE | CLIENT.TRANSACTIONS | CLIENT.RESERVED |
  CLIENT.SECURE_CONNECTION | CLIENT.MULTI_STATEMENTS | CLIENT.MULTI_RESULTS | CLIENT.PS_MULTI_RESULTS | CLIENT.PLUGIN_AUTH |
  CLIENT.CONNECT_ATTRS | CLIENT.PLUGIN_AUTH_LENENC_CLIENT_DATA | CLIENT.SESSION_TRACK | CLIENT.DEPRECATE_EOF;

/** Capabilities whose presence changes what goes over the wire after login; both ends must agree on them. */
export const WIRE_CAPS = CLIENT.DEPRECATE_EOF | CLIENT.SESSION_TRACK | CLIENT.MULTI_RESULTS | CLIENT.PS_MULTI_RESULTS | CLIENT.PROTOCOL_41;

export const UTF8MB4_GENERAL_CI = 45;

export const capNames = (caps: number): string[] =>
  Object.entries(CLIENT).filter(([, v]) => (caps & v) !== 0).map(([k]) => `CLIENT_${k}`);

// ------------------------------------------------------------------ greeting

export interface Greeting {
  readonly protocolVersion: number;
  readonly serverVersion: string;
  readonly connectionId: number;
  /** 20 bytes (8 + 12) for the usual plugins; 32 for client_ed25519's own challenge comes in an auth switch. */
  readonly scramble: Buffer;
  readonly capabilities: number;
  readonly charset: number;
  readonly status: number;
  readonly authPlugin: string;
}

export function buildGreeting(g: Omit<Greeting, 'protocolVersion'>): Buffer {
  const caps = g.capabilities;
  const head = Buffer.concat([Buffer.from([10]), Buffer.from(g.serverVersion, 'utf8'), Buffer.from([0])]);
  const fixed = Buffer.alloc(4 + 8 + 1 + 2 + 1 + 2 + 2 + 1 + 10);
  let o = 0;
  fixed.writeUInt32LE(g.connectionId >>> 0, o); o += 4;
  g.scramble.copy(fixed, o, 0, 8); o += 8;
  fixed[o++] = 0; // filler
  fixed.writeUInt16LE(caps & 0xffff, o); o += 2;
  fixed[o++] = g.charset;
  fixed.writeUInt16LE(g.status, o); o += 2;
  fixed.writeUInt16LE((caps >>> 16) & 0xffff, o); o += 2;
  fixed[o++] = g.scramble.length + 1; // auth-plugin-data length incl. the trailing NUL
  // 10 reserved bytes (MariaDB puts extended capabilities in the last 4; wicket offers none)
  const rest = Buffer.concat([g.scramble.subarray(8), Buffer.from([0]), Buffer.from(g.authPlugin, 'utf8'), Buffer.from([0])]);
  return Buffer.concat([head, fixed, rest]);
}

export function parseGreeting(payload: Buffer): Greeting {
  if (payload[0] === 0xff) throw new PacketError('server refused the connection');
  const r = new Reader(payload);
  const protocolVersion = r.u8('protocol version');
  if (protocolVersion !== 10) throw new PacketError(`unsupported handshake protocol version ${protocolVersion}`);
  const serverVersion = r.nulString('server version').toString('utf8');
  const connectionId = r.u32('connection id');
  const part1 = r.bytes(8, 'auth-plugin-data');
  r.u8('filler');
  let capabilities = r.u16('capabilities');
  let charset = 0;
  let status = 0;
  let part2: Buffer = Buffer.alloc(0);
  let authPlugin = 'mysql_native_password';
  if (r.left > 0) {
    charset = r.u8('charset');
    status = r.u16('status');
    capabilities |= r.u16('capabilities') << 16;
    capabilities >>>= 0;
    const dataLen = r.u8('auth-plugin-data length');
    r.bytes(10, 'reserved');
    if (capabilities & CLIENT.SECURE_CONNECTION) {
      const n = Math.max(13, dataLen - 8);
      part2 = r.bytes(Math.min(n, r.left), 'auth-plugin-data part 2');
      if (part2.length && part2[part2.length - 1] === 0) part2 = part2.subarray(0, part2.length - 1);
    }
    if (capabilities & CLIENT.PLUGIN_AUTH && r.left > 0) {
      const end = payload.indexOf(0, r.pos);
      authPlugin = payload.subarray(r.pos, end < 0 ? payload.length : end).toString('utf8');
    }
  }
  return { protocolVersion, serverVersion, connectionId, scramble: Buffer.concat([part1, part2]), capabilities, charset, status, authPlugin };
}

// ------------------------------------------------------- client's response

export interface HandshakeResponse {
  readonly capabilities: number;
  readonly maxPacket: number;
  readonly charset: number;
  readonly user: string;
  readonly authResponse: Buffer;
  readonly database: string | null;
  readonly authPlugin: string | null;
  readonly attributes: ReadonlyMap<string, string>;
}

/** 32 bytes, CLIENT_SSL set: the client wants TLS before the real response. */
export function isSslRequest(payload: Buffer): boolean {
  return payload.length === 32 && (payload.readUInt32LE(0) & CLIENT.SSL) !== 0;
}

export function parseHandshakeResponse(payload: Buffer): HandshakeResponse {
  const r = new Reader(payload);
  const capabilities = r.u32('capabilities');
  if (!(capabilities & CLIENT.PROTOCOL_41)) throw new PacketError('client does not speak protocol 4.1 (HandshakeResponse320 is not supported)');
  const maxPacket = r.u32('max packet size');
  const charset = r.u8('charset');
  r.bytes(23, 'filler');
  const user = r.nulString('user name').toString('utf8');
  let authResponse: Buffer;
  if (capabilities & CLIENT.PLUGIN_AUTH_LENENC_CLIENT_DATA) authResponse = r.lenencBytes('auth response') ?? Buffer.alloc(0);
  else if (capabilities & CLIENT.SECURE_CONNECTION) authResponse = r.bytes(r.u8('auth response length'), 'auth response');
  else authResponse = r.nulString('auth response');
  let database: string | null = null;
  if (capabilities & CLIENT.CONNECT_WITH_DB && r.left > 0) database = r.nulString('database').toString('utf8') || null;
  let authPlugin: string | null = null;
  if (capabilities & CLIENT.PLUGIN_AUTH && r.left > 0) authPlugin = r.nulString('auth plugin').toString('utf8');
  const attributes = new Map<string, string>();
  if (capabilities & CLIENT.CONNECT_ATTRS && r.left > 0) {
    const len = r.lenenc('connection attributes length') ?? 0;
    const a = new Reader(r.bytes(len, 'connection attributes'));
    while (a.left > 0 && attributes.size < 64) {
      const k = (a.lenencBytes('attribute name') ?? Buffer.alloc(0)).toString('utf8');
      const v = (a.lenencBytes('attribute value') ?? Buffer.alloc(0)).toString('utf8');
      attributes.set(k.slice(0, 256), v.slice(0, 1024));
    }
  }
  return { capabilities, maxPacket, charset, user, authResponse, database, authPlugin, attributes };
}

export function buildSslRequest(capabilities: number, charset: number, maxPacket = 0x1000000): Buffer {
  const b = Buffer.alloc(32);
  b.writeUInt32LE((capabilities | CLIENT.SSL) >>> 0, 0);
  b.writeUInt32LE(maxPacket, 4);
  b[8] = charset;
  return b;
}

export function buildHandshakeResponse(h: Omit<HandshakeResponse, 'maxPacket'> & { maxPacket?: number }): Buffer {
  const caps = h.capabilities >>> 0;
  const head = Buffer.alloc(32);
  head.writeUInt32LE(caps, 0);
  head.writeUInt32LE(h.maxPacket ?? 0x1000000, 4);
  head[8] = h.charset;
  const parts: Buffer[] = [head, Buffer.from(h.user, 'utf8'), Buffer.from([0])];
  if (caps & CLIENT.PLUGIN_AUTH_LENENC_CLIENT_DATA) parts.push(lenencString(h.authResponse));
  else parts.push(Buffer.from([h.authResponse.length]), h.authResponse);
  if (caps & CLIENT.CONNECT_WITH_DB) parts.push(Buffer.from(h.database ?? '', 'utf8'), Buffer.from([0]));
  if (caps & CLIENT.PLUGIN_AUTH) parts.push(Buffer.from(h.authPlugin ?? '', 'utf8'), Buffer.from([0]));
  if (caps & CLIENT.CONNECT_ATTRS) {
    const attrs = Buffer.concat([...h.attributes].flatMap(([k, v]) => [lenencString(k), lenencString(v)]));
    parts.push(lenencInt(attrs.length), attrs);
  }
  return Buffer.concat(parts);
}

// ------------------------------------------------------------ auth exchange

export function authSwitchRequest(plugin: string, data: Buffer): Buffer {
  return Buffer.concat([Buffer.from([0xfe]), Buffer.from(plugin, 'utf8'), Buffer.from([0]), data]);
}

export function parseAuthSwitch(payload: Buffer): { plugin: string; data: Buffer } {
  const r = new Reader(payload, 1);
  const plugin = r.nulString('auth plugin').toString('utf8');
  let data = r.rest();
  if (data.length && data[data.length - 1] === 0) data = data.subarray(0, data.length - 1);
  return { plugin, data };
}

/** caching_sha2_password's AuthMoreData statuses. */
export const CACHING_SHA2 = { REQUEST_PUBLIC_KEY: 0x02, FAST_AUTH_OK: 0x03, FULL_AUTH: 0x04 } as const;

const sha1 = (...b: Buffer[]): Buffer => {
  const h = createHash('sha1');
  for (const x of b) h.update(x);
  return h.digest();
};
const sha256 = (...b: Buffer[]): Buffer => {
  const h = createHash('sha256');
  for (const x of b) h.update(x);
  return h.digest();
};
const xor = (a: Buffer, b: Buffer): Buffer => {
  const out = Buffer.allocUnsafe(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i]! ^ b[i % b.length]!;
  return out;
};

/** mysql_native_password: SHA1(pw) XOR SHA1(scramble + SHA1(SHA1(pw))). Empty password -> empty. */
export function nativePasswordScramble(password: Buffer, scramble: Buffer): Buffer {
  if (password.length === 0) return Buffer.alloc(0);
  const h1 = sha1(password);
  return xor(h1, sha1(scramble.subarray(0, 20), sha1(h1)));
}

/** caching_sha2_password fast path: SHA256(pw) XOR SHA256(SHA256(SHA256(pw)) + scramble). */
export function cachingSha2Scramble(password: Buffer, scramble: Buffer): Buffer {
  if (password.length === 0) return Buffer.alloc(0);
  const h1 = sha256(password);
  return xor(h1, sha256(sha256(h1), scramble.subarray(0, 20)));
}

/** caching_sha2_password full auth without TLS: (password + NUL) XOR scramble, RSA-OAEP with the server's key. */
export function rsaEncryptPassword(password: Buffer, scramble: Buffer, publicKeyPem: string): Buffer {
  const plain = xor(Buffer.concat([password, Buffer.from([0])]), scramble.subarray(0, 20));
  return publicEncrypt({ key: publicKeyPem, padding: constants.RSA_PKCS1_OAEP_PADDING }, plain);
}
