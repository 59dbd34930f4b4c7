/** The main-thread handle on the audit worker (audit-worker.ts). Started lazily, on the first request. */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { WicketError } from '../../errors.js';
import type { PreparedAuditInput } from '../../audit/prepared.js';
import { workerMain, type AppendRequest, type WorkerReply, type WorkerRequest } from './audit-worker.js';
import { storeError } from './db.js';

interface Pending {
  readonly append: boolean;
  readonly resolve: (r: WorkerReply & { ok: true }) => void;
  readonly reject: (err: Error) => void;
}

export interface Chained {
  /** seq of the first event */
  readonly first: number;
  /** prevHash of the first event */
  readonly prev: string;
  /** the events' hashes, concatenated (64 hex each) */
  readonly hashes: string;
}

const sqliteModule = createRequire(import.meta.url).resolve('better-sqlite3');

export class AuditWorker {
  private worker: Worker | null = null;
  private dead: Error | null = null;
  private nextId = 1;
  private lastAppendId = 0;
  private appendsInFlight = 0;
  private readonly pending = new Map<number, Pending>();

  constructor(private readonly path: string) {}

  async append(events: readonly PreparedAuditInput[]): Promise<Chained> {
    const id = this.nextId++;
    const req: AppendRequest = {
      op: 'append',
      id,
      // Chained behind the previous append while that one is in flight: if it fails, this one is not applied.
      after: this.appendsInFlight > 0 ? this.lastAppendId : 0,
      ts: events.map((e) => e.ts),
      kind: events.map((e) => e.kind),
      actor: events.map((e) => e.actor),
      sid: events.map((e) => e.sessionId),
      target: events.map((e) => e.target),
      data: events.map((e) => e.dataJson),
    };
    this.lastAppendId = id;
    const r = await this.send(req, true);
    if (r.first === undefined || r.prev === undefined || r.hashes === undefined) throw new WicketError('WICKET_ERR_STORE', 'store: malformed append reply');
    return { first: r.first, prev: r.prev, hashes: r.hashes };
  }

  /** Resolves once every event committed before the call is in the search index. */
  async catchUpSearch(): Promise<void> {
    await this.send({ op: 'index', id: this.nextId++ }, false);
  }

  private send(req: Exclude<WorkerRequest, 'close'>, append: boolean): Promise<WorkerReply & { ok: true }> {
    if (this.dead) return Promise.reject(this.dead);
    const w = this.worker ?? this.start();
    return new Promise((resolve, reject) => {
      // Keep the process alive only while a request is in flight.
      if (this.pending.size === 0) w.ref();
      this.pending.set(req.id, { append, resolve, reject });
      if (append) this.appendsInFlight++;
      w.postMessage(req);
    });
  }

  private start(): Worker {
    const w = new Worker(`(${workerMain.toString()})()`, { eval: true, workerData: { path: this.path, sqlite: sqliteModule } });
    w.unref();
    w.on('message', (m: WorkerReply) => this.settle(m));
    w.on('error', (err) => this.die(storeError(err)));
    w.on('exit', (code) => this.die(new WicketError('WICKET_ERR_STORE', `store: audit worker exited (${code})`)));
    this.worker = w;
    return w;
  }

  private settle(m: WorkerReply): void {
    const p = this.pending.get(m.id);
    if (p === undefined) return;
    this.pending.delete(m.id);
    if (p.append) this.appendsInFlight--;
    if (this.pending.size === 0) this.worker?.unref();
    if (m.ok) p.resolve(m);
    else if (m.code === 'WICKET_ERR_AUDIT_TAMPERED') p.reject(new WicketError('WICKET_ERR_AUDIT_TAMPERED', m.message));
    else p.reject(storeError(Object.assign(new Error(m.message), { code: m.code ?? undefined })));
  }

  private die(err: Error): void {
    this.dead ??= err;
    for (const p of this.pending.values()) p.reject(this.dead);
    this.pending.clear();
    this.appendsInFlight = 0;
    this.worker = null;
  }

  /** Lets queued requests finish, then closes the worker's connection. */
  async close(): Promise<void> {
    const w = this.worker;
    this.dead ??= new WicketError('WICKET_ERR_STORE', 'store: closed');
    if (w === null) return;
    const exited = new Promise<void>((resolve) => w.once('exit', () => resolve()));
    w.ref();
    w.postMessage('close' satisfies WorkerRequest);
    await exited;
  }
}
