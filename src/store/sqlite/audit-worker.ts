/**
 * The audit write path runs on its own thread with its own connection:
 * appending to the hash chain and maintaining the session search index.
 *
 * Why a thread: better-sqlite3 is synchronous, and chaining + inserting an
 * event (B-tree work for the table and its session/kind indexes, the commit's
 * fsync, checkpoints) costs ~10 us of CPU. On the main thread that came on
 * top of serialising the event and everything else the broker does, and
 * capped AuditWriter at 45-60k events/s on a 2-core machine. Requests that
 * queue up during a commit are group-committed (one transaction, one fsync).
 *
 * Why the search index lives here too: FTS5 trigram indexing costs ~30 us
 * per event, 3x the append itself, so appends do not index. The index is
 * filled behind them, on this thread and connection (a second writer
 * connection would fight the appends for SQLite's write lock):
 * - after appends pause for IDLE_MS, a catch-up indexes in chunks, one
 *   chunk per event-loop turn so arriving appends go first;
 * - under sustained load (no pause for MAX_LAG_MS) one chunk per
 *   BUSY_EVERY_MS, so the backlog stays bounded without starving appends;
 * - listSessions with `q` asks for a catch-up up to the current last event
 *   and waits for it, so a search sees every committed event.
 * search_state.indexed_upto is the last seq considered, advanced in the
 * chunk's own IMMEDIATE transaction (processes sharing the file never index
 * an event twice).
 *
 * The worker is started from the source text of workerMain (an eval worker),
 * so the same code runs from dist/ and under vitest (which executes the .ts
 * sources). workerMain must therefore be self-contained: no imports, no
 * references to anything outside its own body, and no syntax a transpiler
 * would lower through a module-level helper (e.g. class fields).
 *
 * Protocol (requests are handled in arrival order):
 *   -> { op: 'append', id, after, ts[], kind[], actor[], sid[], target[], data[] }  (data = canonical JSON)
 *   <- { id, ok: true, first, prev, hashes }   first = seq of the first event, prev = its
 *      prevHash, hashes = the events' hashes concatenated (64 hex each)
 *   -> { op: 'index', id }  <- { id, ok: true } once everything committed before it is indexed
 *   <- { id, ok: false, message, code }
 *   -> 'close'
 */

export interface AppendRequest {
  readonly op: 'append';
  readonly id: number;
  /** The append this one was queued behind (0: none in flight). If that one failed, this one fails unapplied. */
  readonly after: number;
  readonly ts: number[];
  readonly kind: string[];
  readonly actor: string[];
  readonly sid: (string | null)[];
  readonly target: (string | null)[];
  readonly data: string[];
}

export interface IndexRequest {
  readonly op: 'index';
  readonly id: number;
}

export type WorkerRequest = AppendRequest | IndexRequest | 'close';

export type WorkerReply =
  | { readonly id: number; readonly ok: true; readonly first?: number; readonly prev?: string; readonly hashes?: string }
  | { readonly id: number; readonly ok: false; readonly message: string; readonly code: string | null };

/* eslint-disable @typescript-eslint/no-require-imports */
export function workerMain(): void {
  type Db = import('better-sqlite3').Database;
  const { parentPort, workerData, receiveMessageOnPort } = require('node:worker_threads') as typeof import('node:worker_threads');
  const { hash } = require('node:crypto') as typeof import('node:crypto');
  const Database = require((workerData as { sqlite: string }).sqlite) as typeof import('better-sqlite3');
  const port = parentPort!;
  const GENESIS = '0'.repeat(64);
  const CHUNK = 500; // events per index transaction (~15 ms)
  const IDLE_MS = 250;
  const MAX_LAG_MS = 5000;
  const BUSY_EVERY_MS = 100;
  const MAX_TEXT = 64 * 1024; // index text per event: search finds sessions, one huge statement must not bloat it
  const db: Db = new Database((workerData as { path: string }).path);
  // The same PRAGMAs as the main connection (db.ts explains them).
  db.pragma('busy_timeout = 5000');
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma('wal_autocheckpoint = 4000');
  const q = (sql: string): import('better-sqlite3').Statement => db.prepare(sql);
  const last = q('SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1');
  const state = q('SELECT count, last_seq, last_hash FROM audit_state WHERE id = 1');
  const insert = q('INSERT INTO audit_events (seq, ts, kind, actor, session_id, target, data, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)');
  const setState = q('UPDATE audit_state SET count = ?, last_seq = ?, last_hash = ? WHERE id = 1');
  const getUpto = q('SELECT indexed_upto AS upto FROM search_state WHERE id = 1');
  const unindexed = q('SELECT seq, session_id, data FROM audit_events WHERE seq > ? AND session_id IS NOT NULL ORDER BY seq LIMIT ?');
  const maxSeq = q('SELECT coalesce(max(seq), 0) AS m FROM audit_events');
  const ftsInsert = q('INSERT OR REPLACE INTO audit_fts (rowid, text, session_id) VALUES (?, ?, ?)');
  const setUpto = q('UPDATE search_state SET indexed_upto = ? WHERE id = 1');

  type Ok = { first: number; prev: string; hashes: string };
  const appendOne = (r: AppendRequest): Ok => {
    const tail = last.get() as { seq: number; hash: string } | undefined;
    const st = state.get() as { count: number; last_seq: number; last_hash: string };
    const lastSeq = tail?.seq ?? 0;
    const lastHash = tail?.hash ?? GENESIS;
    // The tail must be what the store last wrote. If rows were deleted from
    // (or rewritten at) the end behind its back, chaining onto the new tail
    // would launder the deletion: refuse, and the writer fails closed.
    if (st.last_seq !== lastSeq || st.last_hash !== lastHash) {
      const msg = `audit log tail changed outside wicket: expected event #${st.last_seq}, found #${lastSeq}; run \`wicket audit verify\``;
      throw Object.assign(new Error(msg), { code: 'WICKET_ERR_AUDIT_TAMPERED' });
    }
    let prev = lastHash;
    let seq = lastSeq;
    let hashes = '';
    for (let i = 0; i < r.data.length; i++) {
      seq++;
      const sid = r.sid[i] ?? null;
      const target = r.target[i] ?? null;
      // canonicalJSON({seq, ts, kind, actor, sessionId, target, data}), keys in
      // sorted order, data already canonical; the store tests pin it to chainHash().
      const body =
        `{"actor":${JSON.stringify(r.actor[i])},"data":${r.data[i]},"kind":${JSON.stringify(r.kind[i])},"seq":${seq}` +
        `,"sessionId":${sid === null ? 'null' : JSON.stringify(sid)}` +
        `,"target":${target === null ? 'null' : JSON.stringify(target)},"ts":${String(r.ts[i])}}`;
      const h = hash('sha256', prev + body, 'hex');
      insert.run(seq, r.ts[i], r.kind[i], r.actor[i], sid, target, r.data[i], prev, h);
      hashes += h;
      prev = h;
    }
    setState.run(st.count + r.data.length, seq, prev);
    return { first: lastSeq + 1, prev: lastHash, hashes };
  };
  // IMMEDIATE: the write lock is taken before the tail is read, so appends from
  // several processes serialise and each chains onto the true tail.
  const appendAll = db.transaction((rs: AppendRequest[]): Ok[] => rs.map(appendOne));

  const searchText = (data: unknown): string => {
    const parts: string[] = [];
    let size = 0;
    const walk = (v: unknown, depth: number): void => {
      if (size >= MAX_TEXT || depth > 16) return;
      if (typeof v === 'string') {
        parts.push(v);
        size += v.length + 1;
      } else if (typeof v === 'object' && v !== null) {
        for (const x of Array.isArray(v) ? v : Object.values(v)) walk(x, depth + 1);
      }
    };
    walk(data, 0);
    return parts.join('\n').slice(0, MAX_TEXT);
  };
  /** Indexes up to CHUNK events past indexed_upto. Returns [events considered, new indexed_upto]. */
  const indexChunk = db.transaction((): [number, number] => {
    const upto = (getUpto.get() as { upto: number }).upto;
    const rows = unindexed.all(upto, CHUNK) as { seq: number; session_id: string; data: string }[];
    for (const r of rows) {
      let data: unknown = r.data; // a hand-edited, unparseable row is indexed as its raw text
      try {
        data = JSON.parse(r.data);
      } catch {
        // keep raw
      }
      ftsInsert.run(r.seq, searchText(data), r.session_id);
    }
    // With a full chunk continue after its last row; otherwise everything up to
    // the end has been seen (this transaction holds the write lock meanwhile).
    const next = rows.length === CHUNK ? rows[rows.length - 1]!.seq : (maxSeq.get() as { m: number }).m;
    if (next <= upto) return [0, upto];
    setUpto.run(next);
    return [Math.max(1, rows.length), next];
  });

  let closed = false;
  let lastFailed = -1;
  let lastError = { message: '', code: null as string | null };
  let lastAppend = 0;
  let firstPending = 0;
  let timer: NodeJS.Timeout | null = null;
  let indexing = false;
  let waiters: { id: number; target: number }[] = [];
  const fail = (err: unknown): { message: string; code: string | null } => {
    const e = err as { message?: unknown; code?: unknown };
    return { message: String(e.message ?? err), code: typeof e.code === 'string' ? e.code : null };
  };
  const arm = (ms: number): void => {
    timer = setTimeout(onTimer, ms);
  };
  const onTimer = (): void => {
    timer = null;
    if (closed || indexing) return;
    const now = Date.now();
    if (now - lastAppend >= IDLE_MS) return startIndexing();
    if (now - firstPending < MAX_LAG_MS) return arm(IDLE_MS);
    try {
      indexChunk.immediate();
    } catch {
      // best effort: a search retries and reports
    }
    arm(BUSY_EVERY_MS);
  };
  const startIndexing = (): void => {
    if (indexing || closed) return;
    indexing = true;
    firstPending = 0;
    setImmediate(step);
  };
  /** One chunk per turn: appends that arrive meanwhile are handled between chunks. */
  const step = (): void => {
    if (closed) return;
    let n: number;
    let upto: number;
    try {
      [n, upto] = indexChunk.immediate();
    } catch (err) {
      indexing = false;
      for (const w of waiters) port.postMessage({ id: w.id, ok: false, ...fail(err) });
      waiters = [];
      return;
    }
    // n = 0: nothing left to index (a target beyond the end can only mean rows were deleted).
    const still = n === 0 ? [] : waiters.filter((w) => w.target > upto);
    for (const w of waiters) if (!still.includes(w)) port.postMessage({ id: w.id, ok: true });
    waiters = still;
    // Keep going while a search waits, or while appends stay quiet.
    if (n > 0 && (waiters.length > 0 || Date.now() - lastAppend >= IDLE_MS)) return void setImmediate(step);
    indexing = false;
    if (n > 0 && timer === null) arm(IDLE_MS);
  };

  port.on('message', (first: WorkerRequest) => {
    const msgs: WorkerRequest[] = [first];
    for (let m = receiveMessageOnPort(port); m !== undefined; m = receiveMessageOnPort(port)) msgs.push(m.message as WorkerRequest);
    const group: AppendRequest[] = [];
    for (const r of msgs) {
      if (r === 'close' || r.op !== 'append') continue;
      if (r.after !== 0 && r.after === lastFailed) {
        // Queued behind a failed append: applying it would leave a hole where that one's events belong.
        lastFailed = r.id;
        port.postMessage({ id: r.id, ok: false, ...lastError });
      } else {
        group.push(r);
      }
    }
    if (group.length > 0) {
      try {
        const results = appendAll.immediate(group);
        for (let i = 0; i < group.length; i++) port.postMessage({ id: group[i]!.id, ok: true, ...results[i]! });
      } catch (err) {
        lastFailed = group[group.length - 1]!.id;
        lastError = fail(err);
        for (const r of group) port.postMessage({ id: r.id, ok: false, ...lastError });
      }
      lastAppend = Date.now();
      if (firstPending === 0) firstPending = lastAppend;
      if (timer === null && !indexing) arm(IDLE_MS);
    }
    for (const r of msgs) {
      if (r === 'close' || r.op !== 'index') continue;
      waiters.push({ id: r.id, target: (maxSeq.get() as { m: number }).m });
      startIndexing();
    }
    if (msgs.includes('close')) {
      closed = true;
      if (timer !== null) clearTimeout(timer);
      for (const w of waiters) port.postMessage({ id: w.id, ok: false, message: 'store: closed', code: null });
      db.close();
      port.close();
    }
  });
}
/* eslint-enable @typescript-eslint/no-require-imports */
