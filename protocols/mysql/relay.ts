/**
 * The command phase of a MySQL session: every client command is read whole,
 * checked (policy, allow-lists, commands wicket never passes), recorded and
 * forwarded; every upstream packet goes through the ResponseTracker, which
 * attributes results to statements, and on to the client as it came.
 *
 * What wicket answers itself, in the client's protocol (an ERR packet that
 * continues the command's sequence): refused statements (1227), databases
 * outside the target's allow-list (1044), KILL of another connection
 * (1227), COM_CHANGE_USER (1227), replication/shutdown/debug commands
 * (1227), unknown commands (1047), packets out of order (1156) and over the
 * size cap (1153; both end the session). `LOAD DATA LOCAL INFILE` needs the
 * rule's `local_infile: true`; without it the statement is refused and a
 * file request from the server never reaches the client (the server gets an
 * empty file instead).
 */
import type { Socket } from 'node:net';
import type { ActiveSession } from '../../src/broker.js';
import { errorMessage } from '../../src/errors.js';
import type { QueryParam } from '../../src/session.js';
import { analyzeMysql, splitMysqlStatements } from '../../src/sql/mysql.js';
import { decideSql, policyActive, type SqlPolicy, type Verdict } from '../../src/sql/policy.js';
import { decodeExecute, decodeLongData, stmtIdOf, type ParamType } from './binary.js';
import { ER, PacketError, PacketSplitter, encodePacket, errPayload, type LogicalPacket } from './packets.js';
import { ResponseTracker, type PendingCommand } from './tracker.js';

export const COM = {
  SLEEP: 0x00, QUIT: 0x01, INIT_DB: 0x02, QUERY: 0x03, FIELD_LIST: 0x04, CREATE_DB: 0x05, DROP_DB: 0x06, REFRESH: 0x07,
  SHUTDOWN: 0x08, STATISTICS: 0x09, PROCESS_INFO: 0x0a, CONNECT: 0x0b, PROCESS_KILL: 0x0c, DEBUG: 0x0d, PING: 0x0e,
  TIME: 0x0f, DELAYED_INSERT: 0x10, CHANGE_USER: 0x11, BINLOG_DUMP: 0x12, TABLE_DUMP: 0x13, CONNECT_OUT: 0x14,
  REGISTER_SLAVE: 0x15, STMT_PREPARE: 0x16, STMT_EXECUTE: 0x17, STMT_SEND_LONG_DATA: 0x18, STMT_CLOSE: 0x19,
  STMT_RESET: 0x1a, SET_OPTION: 0x1b, STMT_FETCH: 0x1c, DAEMON: 0x1d, BINLOG_DUMP_GTID: 0x1e, RESET_CONNECTION: 0x1f,
} as const;

const NAMES: Record<number, string> = Object.fromEntries(Object.entries(COM).map(([k, v]) => [v, `COM_${k}`]));
/** Never relayed: they act on the server, not the session (or are replication). */
const FORBIDDEN = new Set<number>([COM.CREATE_DB, COM.DROP_DB, COM.REFRESH, COM.SHUTDOWN, COM.PROCESS_INFO, COM.DEBUG, COM.BINLOG_DUMP, COM.TABLE_DUMP, COM.REGISTER_SLAVE, COM.BINLOG_DUMP_GTID, COM.DAEMON, COM.CONNECT_OUT, COM.CONNECT, COM.DELAYED_INSERT, COM.TIME, COM.SLEEP]);

/** Long data kept per parameter for the record; the rest is counted. */
const LONG_DATA_KEEP = 8 * 1024;
/** How long a killed session waits for the client's next command to tell it why. */
const KILL_GRACE_MS = 60_000;

interface Prepared {
  readonly sql: string;
  readonly numParams: number;
  types: readonly ParamType[] | null;
  readonly longData: Map<number, Buffer[]>;
  readonly longBytes: Map<number, number>;
}

export interface MysqlRelayOptions {
  readonly client: Socket;
  readonly upstream: Socket;
  readonly session: ActiveSession;
  readonly policy: SqlPolicy & { readonly localInfile: boolean };
  readonly deprecateEof: boolean;
  /** The upstream's connection id: the only one KILL may name. */
  readonly threadId: number;
  readonly target: string;
  /** Databases COM_INIT_DB may switch to (empty: any). */
  readonly databases: readonly string[];
  readonly maxPacketBytes: number;
  readonly log: (line: string) => void;
  readonly onClose: (reason: string | null) => void;
}

type State = 'command' | 'infile' | 'killed' | 'closing' | 'closed';

const KILL = /^\s*KILL\s+(?:(?:HARD|SOFT)\s+)?(?:(?:CONNECTION|QUERY(?:\s+ID)?)\s+)?(\d+)\s*;?\s*$/i;

export class MysqlRelay {
  private state: State = 'command';
  private readonly fromClient: PacketSplitter;
  private readonly fromUpstream: PacketSplitter;
  private readonly tracker: ResponseTracker;
  private readonly stmts = new Map<number, Prepared>();
  /** Client packets held while wicket's own command is answered. */
  private held: LogicalPacket[] = [];
  private readonly clientPause = new Set<'upstream' | 'audit' | 'internal'>();
  private killReason: string | null = null;
  /** Sequence id of the last packet of the client's latest command (a reply continues from it). */
  private lastClientSeq = 0;
  private notified = false;
  private lastPrepared = -1;
  /** Bytes for the client / the upstream, written together once a chunk has been handled. */
  private out: Buffer[] = [];
  private upOut: Buffer[] = [];
  /** Resolves the client pause while wicket's own statement is answered. */
  private internalDone: (() => void) | null = null;

  constructor(private readonly o: MysqlRelayOptions) {
    this.fromClient = new PacketSplitter({ maxBytes: o.maxPacketBytes });
    // Whole payloads: a row of 16 MiB or more arrives in several wire packets and is re-encoded from them.
    this.fromUpstream = new PacketSplitter({ maxBytes: o.maxPacketBytes });
    this.tracker = new ResponseTracker(o.deprecateEof, (ev) => {
      if (!o.session.emit(ev)) this.pauseClient('audit', o.session.drained());
    });
  }

  start(): void {
    const { client, upstream } = this.o;
    client.on('data', (c: Buffer) => this.onClient(c));
    upstream.on('data', (c: Buffer) => this.onUpstream(c));
    client.on('close', () => this.close(null));
    upstream.on('close', () => this.close(this.state === 'command' || this.state === 'infile' ? 'upstream closed the connection' : null));
    client.on('error', () => this.close(null));
    upstream.on('error', (e) => this.close(`upstream connection lost: ${e.message}`));
    client.resume();
    upstream.resume();
  }

  /** Sends wicket's own statement upstream (its response is not forwarded); client commands wait meanwhile. */
  internal(sql: string, onDone?: (ok: boolean) => void): void {
    const payload = Buffer.concat([Buffer.from([COM.QUERY]), Buffer.from(sql, 'utf8')]);
    this.tracker.sent({ expect: 'results', step: 'query', statements: [sql], internal: true, onDone });
    this.o.upstream.write(encodePacket(0, payload).bytes);
    this.pauseClient('internal', new Promise<void>((resolve) => (this.internalDone = resolve)));
  }

  private pauseClient(reason: 'upstream' | 'audit' | 'internal', until: Promise<void>): void {
    if (this.clientPause.has(reason)) return;
    this.clientPause.add(reason);
    this.o.client.pause();
    until.then(
      () => {
        this.clientPause.delete(reason);
        if (this.clientPause.size === 0 && (this.state === 'command' || this.state === 'infile' || this.state === 'killed')) {
          this.drainHeld();
          if (this.clientPause.size === 0) this.o.client.resume();
        }
      },
      () => this.close('recording failed'),
    );
  }

  private onClient(chunk: Buffer): void {
    if (this.state === 'closing' || this.state === 'closed') return;
    try {
      this.fromClient.push(chunk, (p) => {
        if (this.clientPause.size > 0 || this.held.length > 0) this.held.push(p);
        else this.clientPacket(p);
      });
    } catch (err) {
      const tooBig = /limit/.test(errorMessage(err));
      return this.fatalToClient(tooBig ? ER.NET_PACKET_TOO_LARGE : ER.NET_PACKETS_OUT_OF_ORDER, '08S01', `wicket: ${errorMessage(err)}${tooBig ? ' (limits.max_message_bytes)' : ''}`, 0);
    }
    this.flushUpstream();
  }

  private drainHeld(): void {
    while (this.held.length > 0 && this.clientPause.size === 0 && (this.state === 'command' || this.state === 'infile' || this.state === 'killed')) {
      this.clientPacket(this.held.shift()!);
    }
    this.flushUpstream();
  }

  private toUpstream(p: LogicalPacket): void {
    this.upOut.push(p.raw ?? encodePacket(p.seq, p.payload).bytes);
  }

  private flushUpstream(): void {
    if (this.upOut.length === 0) return;
    const up = this.o.upstream;
    const bufs = this.upOut;
    this.upOut = [];
    let ok = true;
    up.cork();
    for (const b of bufs) ok = up.write(b) && ok;
    up.uncork();
    if (!ok) this.pauseClient('upstream', new Promise((r) => up.once('drain', r)));
  }

  private reply(p: LogicalPacket, code: number, sqlState: string, message: string): void {
    this.o.client.write(encodePacket((p.lastSeq + 1) & 0xff, errPayload(code, sqlState, message)).bytes);
  }

  private refuse(p: LogicalPacket, what: string, reason: string, code: number = ER.SPECIFIC_ACCESS_DENIED, sqlState = '42000'): void {
    this.o.session.emit({ type: 'refused', at: Date.now(), what, rule: this.o.policy.rule, message: reason });
    this.reply(p, code, sqlState, `wicket: ${reason}`);
  }

  private clientPacket(p: LogicalPacket): void {
    if (this.state === 'killed') {
      this.reply(p, ER.CONNECTION_KILLED, '70100', `terminated by wicket: ${this.killReason ?? 'session ended'}`);
      return this.close(null);
    }
    if (this.state === 'infile') {
      // LOCAL INFILE data, ended by an empty packet; the server then answers the statement.
      this.toUpstream(p);
      if (p.length === 0) this.state = 'command';
      return;
    }
    this.lastClientSeq = p.lastSeq;
    if (p.seq !== 0) {
      return this.fatalToClient(ER.NET_PACKETS_OUT_OF_ORDER, '08S01', `wicket: packets out of order (a command must start at sequence 0, got ${p.seq})`, p.lastSeq + 1);
    }
    if (!p.complete || p.length === 0) {
      return this.fatalToClient(ER.NET_PACKETS_OUT_OF_ORDER, '08S01', 'wicket: empty command packet', p.lastSeq + 1);
    }
    const cmd = p.payload[0]!;
    try {
      this.command(cmd, p);
    } catch (err) {
      // A command wicket cannot read is answered, not relayed; the session goes on.
      this.reply(p, ER.UNKNOWN_ERROR, 'HY000', `wicket: malformed ${NAMES[cmd] ?? `command 0x${cmd.toString(16)}`}: ${errorMessage(err)}`);
    }
  }

  private send(p: LogicalPacket, cmd: PendingCommand): void {
    this.tracker.sent(cmd);
    this.toUpstream(p);
  }

  private command(cmd: number, p: LogicalPacket): void {
    const body = p.payload.subarray(1);
    switch (cmd) {
      case COM.QUIT:
        this.toUpstream(p);
        this.state = 'closing';
        this.flushUpstream();
        return this.close(null);
      case COM.QUERY:
      case COM.STMT_PREPARE: {
        const sql = body.toString('utf8');
        const v = this.decide(sql);
        if (!v.ok) return this.refuse(p, sql, v.reason);
        const extra = this.extraChecks(v.statements);
        if (extra) return this.refuse(p, sql, extra.reason, extra.code);
        if (cmd === COM.QUERY) return this.send(p, { expect: 'results', step: 'query', statements: v.statements });
        return this.send(p, {
          expect: 'prepare', step: 'prepare', statements: [sql],
          onPrepared: (id, numParams) => {
            this.stmts.set(id, { sql, numParams, types: null, longData: new Map(), longBytes: new Map() });
            this.lastPrepared = id;
          },
        });
      }
      case COM.STMT_EXECUTE: {
        // MariaDB: id 0xFFFFFFFF means the statement prepared last (pipelined prepare + execute).
        const id = stmtIdOf(body) === 0xffffffff ? this.lastPrepared : stmtIdOf(body);
        const st = this.stmts.get(id);
        if (!st) return this.send(p, { expect: 'results', step: 'stmt_execute', statements: [`<statement ${id} unknown to wicket>`], statement: String(id) });
        const req = decodeExecute(body, st.numParams, st.types, st.longData.size ? st.longData : null);
        st.types = req.types;
        const params: QueryParam[] = req.params.map((q, i) => this.withLongDataSize(st, i, q));
        st.longData.clear();
        st.longBytes.clear();
        return this.send(p, { expect: 'results', step: 'stmt_execute', statements: [st.sql], statement: String(id), params });
      }
      case COM.STMT_SEND_LONG_DATA: {
        const ld = decodeLongData(body);
        const st = this.stmts.get(ld.stmtId);
        if (st) {
          const chunks = st.longData.get(ld.paramId) ?? [];
          const have = chunks.reduce((n, b) => n + b.length, 0);
          if (have < LONG_DATA_KEEP) chunks.push(Buffer.from(ld.data.subarray(0, LONG_DATA_KEEP - have)));
          st.longData.set(ld.paramId, chunks);
          st.longBytes.set(ld.paramId, (st.longBytes.get(ld.paramId) ?? 0) + ld.data.length);
        }
        return this.send(p, { expect: 'none', step: 'other', statements: [], quiet: true });
      }
      case COM.STMT_CLOSE:
        this.stmts.delete(stmtIdOf(body));
        return this.send(p, { expect: 'none', step: 'other', statements: [], quiet: true });
      case COM.STMT_RESET: {
        const st = this.stmts.get(stmtIdOf(body));
        st?.longData.clear();
        st?.longBytes.clear();
        return this.send(p, { expect: 'single', step: 'other', statements: [], quiet: true });
      }
      case COM.STMT_FETCH:
        return this.send(p, { expect: 'fetch', step: 'other', statements: [], quiet: true });
      case COM.INIT_DB: {
        const db = body.toString('utf8');
        if (this.o.databases.length > 0 && !this.o.databases.includes(db)) {
          return this.refuse(p, `USE ${db}`, `database "${db}" is not allowed on ${this.o.target} (allowed: ${this.o.databases.join(', ')})`, ER.BAD_DB, '42000');
        }
        return this.send(p, { expect: 'single', step: 'init_db', statements: [`USE \`${db.replace(/`/g, '``')}\``] });
      }
      case COM.PING:
      case COM.STATISTICS:
      case COM.SET_OPTION:
        return this.send(p, { expect: 'single', step: 'other', statements: [], quiet: true });
      case COM.FIELD_LIST: {
        const table = body.subarray(0, Math.max(0, body.indexOf(0))).toString('utf8');
        return this.send(p, { expect: 'fields', step: 'other', statements: [`COM_FIELD_LIST ${table}`] });
      }
      case COM.PROCESS_KILL: {
        const id = body.length >= 4 ? body.readUInt32LE(0) : -1;
        if (id !== this.o.threadId) return this.refuse(p, `KILL ${id}`, `only this session's own connection (${this.o.threadId}) may be killed through wicket`);
        return this.send(p, { expect: 'single', step: 'other', statements: [`KILL ${id}`] });
      }
      case COM.RESET_CONNECTION:
        return this.send(p, {
          expect: 'single', step: 'other', statements: ['COM_RESET_CONNECTION'],
          onDone: (ok) => {
            if (!ok) return;
            this.stmts.clear();
            // A reset drops session settings: a read-only session must become read-only again before anything else runs.
            if (this.o.policy.access === 'read') this.internal('SET SESSION TRANSACTION READ ONLY', (done) => this.afterReadOnly(done));
          },
        });
      case COM.CHANGE_USER:
        return this.refuse(p, 'COM_CHANGE_USER', `COM_CHANGE_USER is not supported through wicket; open a new connection as <user>@${this.o.target}`);
      default:
        if (FORBIDDEN.has(cmd)) return this.refuse(p, NAMES[cmd] ?? `command 0x${cmd.toString(16)}`, `${NAMES[cmd] ?? 'this command'} is not allowed through wicket`);
        this.reply(p, ER.UNKNOWN_COM, '08S01', `wicket: unknown command 0x${cmd.toString(16)}`);
    }
  }

  /** Statements for the record and the policy verdict; without an active rule only the (cheap) splitter runs. */
  private decide(sql: string): Verdict {
    if (policyActive(this.o.policy)) return decideSql(sql, analyzeMysql(sql), this.o.policy);
    const statements = splitMysqlStatements(sql);
    return { ok: true, statements: statements.length ? statements : [sql] };
  }

  private afterReadOnly(ok: boolean): void {
    const done = this.internalDone;
    this.internalDone = null;
    if (!ok) {
      done?.();
      return this.fatalToClient(ER.UNKNOWN_ERROR, 'HY000', 'wicket: could not make the session read-only again after a reset', 0);
    }
    done?.();
  }

  /** Checks the analyzer does not make: LOAD DATA LOCAL without local_infile, KILL of other connections. */
  private extraChecks(statements: readonly string[]): { reason: string; code: number } | null {
    const why = this.extraReason(statements);
    if (!why) return null;
    return { reason: why, code: why.startsWith('database ') ? ER.BAD_DB : ER.SPECIFIC_ACCESS_DENIED };
  }

  private extraReason(statements: readonly string[]): string | null {
    for (const s of statements) {
      const plain = s.replace(/\/\*[\s\S]*?\*\//g, ' ');
      if (!this.o.policy.localInfile && /^\s*LOAD\s+(?:DATA|XML)\b/i.test(plain) && /\bLOCAL\b/i.test(plain)) {
        return `LOAD DATA LOCAL INFILE is not allowed by rule ${this.o.policy.rule} (local_infile)`;
      }
      const use = /^\s*USE\s+(?:`((?:[^`]|``)+)`|([^\s;`]+))\s*$/i.exec(plain);
      if (use && this.o.databases.length > 0) {
        const db = use[1] !== undefined ? use[1].replace(/``/g, '`') : use[2]!;
        if (!this.o.databases.includes(db)) return `database "${db}" is not allowed on ${this.o.target} (allowed: ${this.o.databases.join(', ')})`;
      }
      if (/^\s*KILL\b/i.test(plain)) {
        const m = KILL.exec(plain);
        if (!m || Number(m[1]) !== this.o.threadId) return `only this session's own connection (${this.o.threadId}) may be killed through wicket`;
      }
    }
    return null;
  }

  private withLongDataSize(st: Prepared, i: number, q: QueryParam): QueryParam {
    const total = st.longBytes.get(i);
    if (total === undefined || total <= LONG_DATA_KEEP || q.value === null) return q;
    return { ...q, value: `${q.value.replace(/…\[truncated by wicket: \d+ bytes total\]$/, '')}…[truncated by wicket: ${total} bytes total]` };
  }

  private onUpstream(chunk: Buffer): void {
    if (this.state === 'closed' || this.state === 'killed') return;
    try {
      this.fromUpstream.push(chunk, (p) => this.upstreamPacket(p));
    } catch (err) {
      this.flushClient();
      return this.fatalToClient(ER.UNKNOWN_ERROR, 'HY000', `wicket: upstream protocol violation: ${errorMessage(err)}`, 0);
    }
    this.flushClient();
  }

  private upstreamPacket(p: LogicalPacket): void {
    const wasInternal = this.tracker.internalHead;
    const action = this.tracker.packet(p);
    if (action === 'forward') {
      if (!p.complete && p.raw === null) throw new PacketError('a packet too large to relay arrived in pieces');
      this.out.push(p.raw ?? encodePacket(p.seq, p.payload).bytes);
    } else if (action === 'infile') {
      if (this.o.policy.localInfile) {
        this.out.push(p.raw ?? encodePacket(p.seq, p.payload).bytes);
        this.state = 'infile';
      } else {
        // The client never sees the request: the server gets an empty file.
        const file = p.payload.subarray(1).toString('utf8').slice(0, 512);
        this.o.session.emit({ type: 'refused', at: Date.now(), what: `LOCAL INFILE request for ${file}`, rule: this.o.policy.rule, message: 'the server asked for a client file; the rule does not allow local_infile' });
        this.o.upstream.write(encodePacket((p.lastSeq + 1) & 0xff, Buffer.alloc(0)).bytes);
      }
    }
    if (wasInternal && !this.tracker.internalHead && this.internalDone && this.tracker.pending === 0) {
      const done = this.internalDone;
      this.internalDone = null;
      done();
    }
  }

  private flushClient(): void {
    if (this.out.length === 0) return;
    const c = this.o.client;
    const bufs = this.out;
    this.out = [];
    // One write: over TLS each write is its own record (encryption, framing, a syscall), so small
    // responses (most of them: a few packets) are joined first; big ones go out as they are.
    const size = bufs.reduce((n, b) => n + b.length, 0);
    let ok = true;
    if (bufs.length === 1 || size <= 256 * 1024) {
      ok = c.write(bufs.length === 1 ? bufs[0]! : Buffer.concat(bufs, size));
    } else {
      c.cork();
      for (const b of bufs) ok = c.write(b) && ok;
      c.uncork();
    }
    if (!ok) {
      const up = this.o.upstream;
      up.pause();
      c.once('drain', () => {
        if (this.state !== 'closed') up.resume();
      });
    }
  }

  /** The broker ends this session: the client hears why (now if it waits for a response, else at its next command). */
  terminate(reason: string): void {
    if (this.state === 'closed' || this.state === 'closing' || this.state === 'killed') return;
    const { client, upstream } = this.o;
    upstream.removeAllListeners('data');
    upstream.destroy();
    this.killReason = reason;
    if (this.tracker.pending > 0) {
      this.fatalToClient(ER.CONNECTION_KILLED, '70100', `terminated by wicket: ${reason}`, this.lastClientSeq + 1);
      return;
    }
    this.state = 'killed';
    this.notify(`terminated by wicket: ${reason}`);
    this.held = [];
    this.clientPause.clear();
    client.resume();
    setTimeout(() => this.close(null), KILL_GRACE_MS).unref();
  }

  /** One ERR to the client, then close. */
  private fatalToClient(code: number, sqlState: string, message: string, seq: number): void {
    if (this.state === 'closed') return;
    const { client } = this.o;
    if (!client.destroyed && client.writable) client.end(encodePacket(seq & 0xff, errPayload(code, sqlState, message)).bytes);
    setTimeout(() => client.destroy(), 2000).unref();
    this.close(message);
  }

  private close(reason: string | null): void {
    if (this.state === 'closed') return;
    const wasRunning = this.state === 'command' || this.state === 'infile';
    if (reason && wasRunning) this.o.log(`mysql session ${this.o.session.id}: ${reason}`);
    this.state = 'closed';
    this.o.upstream.destroy();
    if (!this.o.client.destroyed) this.o.client.end();
    this.notify(reason);
  }

  private notify(reason: string | null): void {
    if (this.notified) return;
    this.notified = true;
    this.o.onClose(reason);
  }
}
