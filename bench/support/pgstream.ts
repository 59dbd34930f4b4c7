/**
 * A minimal streaming Postgres client for throughput benchmarks: connects
 * with wicket's own upstream code (trust, SCRAM, ...), sends one simple
 * Query and only walks the message framing of the reply (counting bytes and
 * DataRows) up to ReadyForQuery, so the client is never the bottleneck and
 * holds no rows.
 */
import type { TargetConfig } from '../../src/config/schema.js';
import { connectUpstream } from '../../protocols/postgres/upstream.js';

export interface StreamOptions {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password?: string;
  readonly database: string;
  readonly sql: string;
}

export interface StreamResult {
  /** Bytes received after the Query was sent, framing included. */
  readonly bytes: number;
  readonly rows: number;
  readonly seconds: number;
}

export async function streamQuery(o: StreamOptions): Promise<StreamResult> {
  const target: TargetConfig = {
    name: 'bench', segment: 'bench', protocol: 'postgres', address: `${o.host}:${o.port}`, user: o.user, tls: 'disable',
    ...(o.password === undefined ? {} : { password: o.password }),
  };
  const up = await connectUpstream({ target, database: o.database, applicationName: 'wicket-bench' });
  const sock = up.socket;
  return new Promise<StreamResult>((resolve, reject) => {
    let bytes = 0;
    let rows = 0;
    let error: string | null = null;
    // Framing state: `header` collects a message's 5-byte header (type + int32 length); `skip` is body left to pass over.
    const header = Buffer.alloc(5);
    let have = 0;
    let skip = 0;
    let type = 0;
    let errBody: Buffer[] | null = null;
    let start = 0n;
    let done = false;
    const finish = (err?: Error): void => {
      if (done) return;
      done = true;
      sock.removeAllListeners('data');
      sock.end(Buffer.from([0x58, 0, 0, 0, 4])); // Terminate
      if (err) return reject(err);
      if (error) return reject(new Error(`query failed: ${error}`));
      resolve({ bytes, rows, seconds: Number(process.hrtime.bigint() - start) / 1e9 });
    };
    const feed = (chunk: Buffer): void => {
      bytes += chunk.length;
      let i = 0;
      while (i < chunk.length) {
        if (skip > 0) {
          const n = Math.min(skip, chunk.length - i);
          if (errBody) errBody.push(chunk.subarray(i, i + n));
          skip -= n;
          i += n;
          if (skip === 0 && errBody) {
            error = Buffer.concat(errBody).toString('utf8').split('\0').filter((f) => f.startsWith('M')).map((f) => f.slice(1)).join('; ');
            errBody = null;
          }
          continue;
        }
        const n = Math.min(5 - have, chunk.length - i);
        chunk.copy(header, have, i, i + n);
        have += n;
        i += n;
        if (have < 5) break;
        have = 0;
        type = header[0]!;
        skip = header.readInt32BE(1) - 4;
        if (type === 0x44) rows++; // 'D' DataRow
        else if (type === 0x45) errBody = []; // 'E' ErrorResponse
        else if (type === 0x5a) { // 'Z' ReadyForQuery: 1-byte body, nothing follows
          finish();
          return;
        }
      }
    };
    sock.on('data', feed);
    sock.once('error', (err: Error) => finish(err));
    sock.once('close', () => finish(new Error('connection closed before ReadyForQuery')));
    if (up.leftover.length) feed(up.leftover);
    const q = Buffer.from(`${o.sql}\0`, 'utf8');
    const head = Buffer.alloc(5);
    head.write('Q');
    head.writeInt32BE(q.length + 4, 1);
    start = process.hrtime.bigint();
    sock.write(Buffer.concat([head, q]));
    sock.resume();
  });
}
