/**
 * The relay between an authenticated client and its upstream. Both
 * directions are framed, so the client only ever receives whole messages
 * (which is what lets a kill append a clean FATAL at any moment), refused
 * statements can be swapped, and the tracker sees every message. Unchanged
 * frames are forwarded as slices of the chunk they arrived in, one write per
 * contiguous run: no copies on the DataRow path.
 *
 * Backpressure: a client that reads slowly pauses the upstream, a slow
 * upstream pauses the client, and a full audit queue pauses the client
 * (the source of new statements). Memory per session is bounded by the
 * socket buffers plus at most one partial frame per direction (capped).
 */
import type { Socket } from 'node:net';
import { FrameParser } from './framing.js';
import { errorResponse } from './backend.js';
import { FRONTEND, decodeFrontend, encodeBind, encodeClose, encodeExecute, encodeParse, encodeQuery } from './frontend.js';
import { REFUSAL_NAME, StatementTracker } from './tracker.js';
import { checkSql, refusalSql, stripRefusalContext, type SqlPolicy } from './guard.js';
import type { ActiveSession } from '../../src/broker.js';
import { errorMessage } from '../../src/errors.js';

/** Gathers output for one socket: contiguous slices of one buffer become one write. */
class Batch {
  private buf: Buffer | null = null;
  private start = 0;
  private end = 0;
  private readonly parts: Buffer[] = [];

  add(buf: Buffer, start: number, end: number): void {
    if (this.buf === buf && this.end === start) {
      this.end = end;
      return;
    }
    this.cut();
    this.buf = buf;
    this.start = start;
    this.end = end;
  }

  addOwned(b: Buffer): void {
    this.cut();
    this.parts.push(b);
  }

  private cut(): void {
    if (this.buf && this.end > this.start) this.parts.push(this.buf.subarray(this.start, this.end));
    this.buf = null;
  }

  /** Writes everything gathered; returns false when the socket asked us to wait. */
  flush(sock: Socket): boolean {
    this.cut();
    if (this.parts.length === 0) return true;
    let ok = true;
    if (this.parts.length === 1) ok = sock.write(this.parts[0]!);
    else {
      sock.cork();
      for (const p of this.parts) ok = sock.write(p) && ok;
      sock.uncork();
    }
    this.parts.length = 0;
    return ok;
  }
}

/** Sends a FATAL ErrorResponse as the last thing on `sock`, then closes it (forcibly after `graceMs` if the peer lingers). */
export function endWithFatal(sock: Socket, code: string, message: string, graceMs: number): void {
  if (!sock.destroyed && sock.writable) sock.end(errorResponse({ severity: 'FATAL', code, message }));
  setTimeout(() => sock.destroy(), graceMs).unref();
}

type RelayState = 'running' | 'closing' | 'closed';

export interface RelayOptions {
  readonly client: Socket;
  readonly upstream: Socket;
  readonly session: ActiveSession;
  readonly policy: SqlPolicy;
  readonly maxMessageBytes: number;
  readonly log: (line: string) => void;
  /** Called once; `reason` is null when the client ended the session normally. */
  readonly onClose: (reason: string | null) => void;
}

export class Relay {
  private state: RelayState = 'running';
  private readonly fromClient: FrameParser;
  private readonly fromUpstream: FrameParser;
  private readonly tracker: StatementTracker;
  private readonly toUpstream = new Batch();
  private readonly toClient = new Batch();
  /** Why the client socket is paused (upstream write buffer full, audit queue full). */
  private readonly clientPause = new Set<'upstream' | 'audit'>();

  constructor(private readonly o: RelayOptions) {
    this.fromClient = new FrameParser({ maxMessageBytes: o.maxMessageBytes });
    this.fromUpstream = new FrameParser({ maxMessageBytes: o.maxMessageBytes });
    this.tracker = new StatementTracker((ev) => {
      if (!o.session.emit(ev)) this.pauseClient('audit', o.session.drained());
    });
  }

  start(leftover: Buffer): void {
    const { client, upstream } = this.o;
    client.on('data', (c: Buffer) => this.onClient(c));
    upstream.on('data', (c: Buffer) => this.onUpstream(c));
    client.on('close', () => this.close(null));
    upstream.on('close', () => this.close(this.state === 'running' ? 'upstream closed the connection' : null));
    client.on('error', () => this.close(null));
    upstream.on('error', (e) => this.close(`upstream connection lost: ${e.message}`));
    if (leftover.length) this.onUpstream(leftover);
    client.resume();
    upstream.resume();
  }

  private pauseClient(reason: 'upstream' | 'audit', until: Promise<void>): void {
    if (this.clientPause.has(reason)) return;
    this.clientPause.add(reason);
    this.o.client.pause();
    until.then(
      () => {
        this.clientPause.delete(reason);
        if (this.clientPause.size === 0 && this.state === 'running') this.o.client.resume();
      },
      () => this.close('recording failed'),
    );
  }

  private onClient(chunk: Buffer): void {
    if (this.state !== 'running') return;
    try {
      this.fromClient.pushSpans(chunk, (type, buf, start, end) => this.clientFrame(type, buf, start, end));
    } catch (err) {
      return this.fatal('08P01', `protocol violation: ${errorMessage(err)}`);
    }
    if (!this.toUpstream.flush(this.o.upstream)) {
      this.pauseClient('upstream', new Promise((r) => this.o.upstream.once('drain', r)));
    }
  }

  private clientFrame(type: number, buf: Buffer, start: number, end: number): void {
    if (type === FRONTEND.CopyData) {
      this.tracker.frontend({ type: 'copy_data', bytes: end - start - 5 });
      return this.toUpstream.add(buf, start, end);
    }
    const msg = decodeFrontend(type, buf.subarray(start + 5, end));
    switch (msg.type) {
      case 'query': {
        const v = checkSql(msg.sql, this.o.policy);
        this.tracker.query(v.statements);
        if (v.ok) return this.toUpstream.add(buf, start, end);
        this.refused(msg.sql, v.reason);
        return this.toUpstream.addOwned(encodeQuery(refusalSql(v.reason)));
      }
      case 'parse': {
        const v = checkSql(msg.sql, this.o.policy);
        if (v.ok) {
          this.tracker.frontend(msg);
          return this.toUpstream.add(buf, start, end);
        }
        this.refused(msg.sql, v.reason);
        this.tracker.refusedParse(msg.statement, msg.sql);
        // Raise the error at this point of the pipeline (the server then skips to Sync, as after a failed
        // Parse), under wicket's own statement/portal name so the client's unnamed statement survives.
        this.toUpstream.addOwned(encodeClose('S', REFUSAL_NAME));
        this.toUpstream.addOwned(encodeClose('P', REFUSAL_NAME));
        this.toUpstream.addOwned(encodeParse(REFUSAL_NAME, refusalSql(v.reason), []));
        this.toUpstream.addOwned(encodeBind(REFUSAL_NAME, REFUSAL_NAME, [], [], []));
        return this.toUpstream.addOwned(encodeExecute(REFUSAL_NAME, 0));
      }
      case 'password':
        throw new Error('unexpected password message after authentication');
      case 'unknown':
        throw new Error(`unknown message type ${String.fromCharCode(msg.code)}`);
      case 'terminate':
        this.toUpstream.add(buf, start, end);
        this.state = 'closing';
        return;
      default:
        this.tracker.frontend(msg);
        return this.toUpstream.add(buf, start, end);
    }
  }

  private refused(sql: string, reason: string): void {
    this.o.session.emit({ type: 'refused', at: Date.now(), what: sql, rule: this.o.policy.rule, message: reason });
  }

  private onUpstream(chunk: Buffer): void {
    if (this.state === 'closed') return;
    try {
      this.fromUpstream.pushSpans(chunk, (type, buf, start, end) => {
        if (!this.tracker.backend(type, buf, start, end)) return;
        const clean = type === 0x45 ? stripRefusalContext(buf.subarray(start, end)) : null;
        if (clean) this.toClient.addOwned(clean);
        else this.toClient.add(buf, start, end);
      });
    } catch (err) {
      this.toClient.flush(this.o.client);
      return this.fatal('08P01', `upstream protocol violation: ${errorMessage(err)}`);
    }
    if (!this.toClient.flush(this.o.client)) {
      const up = this.o.upstream;
      up.pause();
      this.o.client.once('drain', () => {
        if (this.state !== 'closed') up.resume();
      });
    }
  }

  /** Ends the session with a FATAL the client shows (`terminated by wicket: ...` on kill). */
  fatal(code: string, message: string): void {
    if (this.state === 'closed') return;
    this.state = 'closing';
    const { client, upstream } = this.o;
    upstream.removeAllListeners('data');
    upstream.destroy();
    endWithFatal(client, code, message, 2000);
    this.close(message);
  }

  private close(reason: string | null): void {
    if (this.state === 'closed') return;
    if (reason && this.state === 'running') this.o.log(`postgres session ${this.o.session.id}: ${reason}`);
    this.state = 'closed';
    this.o.upstream.destroy();
    if (!this.o.client.destroyed) this.o.client.end();
    this.o.onClose(reason);
  }
}
