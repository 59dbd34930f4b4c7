/**
 * A minimal streaming MySQL/MariaDB client for throughput benchmarks: logs
 * in with wicket's own upstream code (mysql_native_password,
 * caching_sha2_password, ..., TLS when asked), sends one COM_QUERY and only
 * walks the packet framing of the text result set (counting bytes and row
 * packets) up to its final EOF/OK, so the client is never the bottleneck and
 * holds no rows.
 */
import type { TargetConfig } from '../../src/config/schema.js';
import { CLIENT } from '../../protocols/mysql/handshake.js';
import { connectMysqlUpstream } from '../../protocols/mysql/upstream.js';

export interface MysqlStreamOptions {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password?: string;
  readonly database: string;
  /** TLS without verification (wicket's listener requires TLS; the machine's MariaDB has none). */
  readonly tls: boolean;
  readonly sql: string;
}

export interface MysqlStreamResult {
  /** Bytes received after the query was sent, packet headers included. */
  readonly bytes: number;
  readonly rows: number;
  readonly seconds: number;
}

/** What the bench client asks for: the classic protocol with EOF packets replaced by OK (as current drivers do). */
const CAPS = CLIENT.LONG_PASSWORD | CLIENT.LONG_FLAG | CLIENT.PROTOCOL_41 | CLIENT.TRANSACTIONS | CLIENT.SECURE_CONNECTION
  | CLIENT.MULTI_RESULTS | CLIENT.PLUGIN_AUTH | CLIENT.DEPRECATE_EOF;
const COM_QUERY = 0x03;
const COM_QUIT = 0x01;

export async function streamMysqlQuery(o: MysqlStreamOptions): Promise<MysqlStreamResult> {
  const target: TargetConfig = {
    name: 'bench', segment: 'bench', protocol: 'mysql', address: `${o.host}:${o.port}`, user: o.user, tls: o.tls ? 'require' : 'disable',
    ...(o.password === undefined ? {} : { password: o.password }),
  } as TargetConfig;
  const up = await connectMysqlUpstream({
    target, database: o.database, clientCapabilities: CAPS, attributes: new Map([['program_name', 'wicket-bench']]), connectTimeoutMs: 15_000,
  });
  const sock = up.socket;
  const deprecateEof = (up.capabilities & CLIENT.DEPRECATE_EOF) !== 0;
  return new Promise<MysqlStreamResult>((resolve, reject) => {
    let bytes = 0;
    let rows = 0;
    // Framing: `header` collects a packet's 4-byte header (uint24 length + seq); `body` the first bytes of its payload, `skip` the rest.
    const header = Buffer.alloc(4);
    let have = 0;
    let len = 0;
    let skip = 0;
    let body: Buffer[] = [];
    let bodyWant = 0;
    let bodyHave = 0;
    // Result-set state: columns to skip, then (without DEPRECATE_EOF) one EOF, then rows until EOF/OK or ERR.
    let state: 'count' | 'columns' | 'eof' | 'rows' = 'count';
    let columnsLeft = 0;
    let start = 0n;
    let done = false;
    const finish = (err?: Error): void => {
      if (done) return;
      done = true;
      sock.removeAllListeners('data');
      sock.end(Buffer.from([1, 0, 0, 0, COM_QUIT]));
      if (err) reject(err);
      else resolve({ bytes, rows, seconds: Number(process.hrtime.bigint() - start) / 1e9 });
    };
    const errText = (p: Buffer): string => {
      const code = p.readUInt16LE(1);
      const msg = p.subarray(p[3] === 0x23 ? 9 : 3).toString('utf8');
      return `error ${code}: ${msg}`;
    };
    /** One whole packet's payload (only its first few bytes kept: enough to classify it), `length` its full size. */
    const packet = (head: Buffer, length: number): void => {
      const first = head[0];
      if (first === 0xff) return finish(new Error(`query failed: ${errText(head)}`));
      switch (state) {
        case 'count':
          if (first === 0x00) return finish(new Error('the query returned no result set'));
          columnsLeft = first!; // < 251 columns: a 1-byte length-encoded integer
          state = 'columns';
          return;
        case 'columns':
          if (--columnsLeft === 0) state = deprecateEof ? 'rows' : 'eof';
          return;
        case 'eof':
          state = 'rows';
          return;
        case 'rows':
          // The final EOF (or, with DEPRECATE_EOF, an OK with the 0xFE header); our rows start with a short string, never 0xFE.
          if (first === 0xfe && (deprecateEof ? length < 0xffffff : length < 9)) return finish();
          rows++;
          return;
      }
    };
    const feed = (chunk: Buffer): void => {
      bytes += chunk.length;
      let i = 0;
      while (i < chunk.length && !done) {
        if (skip > 0) {
          const n = Math.min(skip, chunk.length - i);
          if (bodyHave < bodyWant) {
            const k = Math.min(n, bodyWant - bodyHave);
            body.push(chunk.subarray(i, i + k));
            bodyHave += k;
          }
          skip -= n;
          i += n;
          if (skip === 0) packet(Buffer.concat(body), len);
          continue;
        }
        header[have++] = chunk[i++]!;
        if (have < 4) continue;
        have = 0;
        len = header.readUIntLE(0, 3);
        body = [];
        bodyHave = 0;
        bodyWant = Math.min(len, 16);
        skip = len;
        if (len === 0) packet(Buffer.alloc(0), 0);
      }
    };
    sock.on('data', feed);
    sock.on('error', (e) => finish(e));
    sock.once('close', () => finish(new Error(`connection closed after ${bytes} bytes, ${rows} rows`)));
    const sql = Buffer.from(o.sql, 'utf8');
    const pkt = Buffer.alloc(5 + sql.length);
    pkt.writeUIntLE(1 + sql.length, 0, 3);
    pkt[3] = 0;
    pkt[4] = COM_QUERY;
    sql.copy(pkt, 5);
    start = process.hrtime.bigint();
    sock.write(pkt);
    sock.resume();
  });
}
