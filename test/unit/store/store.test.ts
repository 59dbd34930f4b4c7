import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { chainHash, GENESIS_HASH } from '../../../src/audit/canonical.js';
import { isWicketError } from '../../../src/errors.js';
import { openStore } from '../../../src/store/open.js';
import { SqliteStore } from '../../../src/store/sqlite/store.js';
import { MIGRATIONS } from '../../../src/store/sqlite/migrations.js';
import type { AccessRequestRecord, PasswordCredential, TokenRecord } from '../../../src/store/types.js';
import { freshStore, session, tempDir } from './helpers.js';

const cred: PasswordCredential = {
  hash: 'scrypt$16384$8$1$c2FsdA==$aGFzaA==',
  scram: { salt: 'c2FsdA==', iterations: 4096, storedKey: 'c3Q=', serverKey: 'c2s=' },
};

describe('openStore', () => {
  it('creates the data dir and database, and migrations are idempotent', async () => {
    const dir = `${tempDir()}/nested/data`;
    const store = await openStore('sqlite', dir);
    await store.migrate();
    await store.close();
    const db = new Database(`${dir}/wicket.db`, { readonly: true });
    const v = db.prepare('SELECT max(version) AS v, count(*) AS n FROM schema_migrations').get() as { v: number; n: number };
    expect(v).toEqual({ v: MIGRATIONS.length, n: MIGRATIONS.length });
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    db.close();
  });

  it('refuses postgres:// with the documented message and unknown settings', async () => {
    await expect(openStore('postgres://u@h/db', tempDir())).rejects.toMatchObject({
      code: 'WICKET_ERR_STORE',
      message: 'store: postgres:// (cluster mode) is not available in this version; use store: sqlite',
    });
    await expect(openStore('mysql', tempDir())).rejects.toMatchObject({ code: 'WICKET_ERR_STORE' });
  });

  it('refuses a database whose schema is newer than this build', async () => {
    const { store, dbPath } = await freshStore();
    await store.close();
    const db = new Database(dbPath);
    db.prepare('INSERT INTO schema_migrations (version, applied_at) VALUES (?, 0)').run(MIGRATIONS.length + 1);
    db.close();
    const again = new SqliteStore(dbPath);
    await expect(again.migrate()).rejects.toMatchObject({ code: 'WICKET_ERR_STORE', message: expect.stringContaining('newer') });
    await again.close();
  });

  it('fails calls on a closed store with WICKET_ERR_STORE', async () => {
    const { store } = await freshStore();
    await store.close();
    await expect(store.listUsers()).rejects.toMatchObject({ code: 'WICKET_ERR_STORE' });
    await expect(store.appendAudit([{ ts: 1, kind: 'x', actor: 'a', data: {} }])).rejects.toMatchObject({ code: 'WICKET_ERR_STORE' });
  });
});

describe('users and tokens', () => {
  it('upserts users, keeping createdAt', async () => {
    const { store } = await freshStore();
    expect(await store.getUser('alice')).toBeNull();
    await store.upsertUser('alice', cred, true, 100);
    await store.upsertUser('bob', null, false, 150);
    await store.upsertUser('alice', null, false, 200);
    expect(await store.getUser('alice')).toEqual({ name: 'alice', password: null, mustChangePassword: false, createdAt: 100, updatedAt: 200 });
    await store.upsertUser('alice', cred, false, 300);
    expect((await store.getUser('alice'))?.password).toEqual(cred);
    expect((await store.listUsers()).map((u) => u.name)).toEqual(['alice', 'bob']);
  });

  it('creates, lists, revokes and touches tokens', async () => {
    const { store } = await freshStore();
    const t: TokenRecord = {
      id: 'abc', user: 'alice', name: 'laptop', hash: 'f'.repeat(64), scram: cred.scram,
      createdAt: 10, expiresAt: 1000, revokedAt: null, lastUsedAt: null,
    };
    await store.createToken(t);
    await store.createToken({ ...t, id: 'def', name: null, scram: null, createdAt: 20, expiresAt: null });
    await store.createToken({ ...t, id: 'zzz', user: 'bob' });
    expect(await store.getToken('abc')).toEqual(t);
    expect(await store.getToken('nope')).toBeNull();
    expect((await store.listTokens('alice')).map((x) => x.id)).toEqual(['abc', 'def']);
    await expect(store.createToken(t)).rejects.toMatchObject({ code: 'WICKET_ERR_CONFLICT' });
    expect(await store.revokeToken('abc', 50)).toBe(true);
    expect(await store.revokeToken('abc', 60)).toBe(false);
    expect(await store.revokeToken('nope', 60)).toBe(false);
    await store.touchToken('def', 77);
    expect(await store.getToken('abc')).toMatchObject({ revokedAt: 50 });
    expect(await store.getToken('def')).toMatchObject({ lastUsedAt: 77, expiresAt: null, scram: null });
  });
});

describe('sessions', () => {
  it('creates, ends and gets sessions', async () => {
    const { store } = await freshStore();
    const s = session('s1', { recordingPath: 'recordings/s1.cast' });
    await store.createSession(s);
    expect(await store.getSession('s1')).toEqual(s);
    await expect(store.createSession(s)).rejects.toMatchObject({ code: 'WICKET_ERR_CONFLICT' });
    await store.endSession('s1', { endedAt: 2000, status: 'terminated', endReason: 'kill', recordingSha256: 'ab', recordingBytes: 12 });
    expect(await store.getSession('s1')).toMatchObject({ endedAt: 2000, status: 'terminated', endReason: 'kill', recordingSha256: 'ab', recordingBytes: 12 });
    await expect(store.endSession('nope', { endedAt: 1, status: 'ended', endReason: null, recordingSha256: null, recordingBytes: null }))
      .rejects.toMatchObject({ code: 'WICKET_ERR_NOT_FOUND' });
    expect(await store.getSession('nope')).toBeNull();
  });

  it('filters by every SessionFilter field and pages newest first', async () => {
    const { store } = await freshStore();
    await store.createSession(session('a', { user: 'alice', target: 'orders-db', segment: 'pay', protocol: 'postgres', startedAt: 100 }));
    await store.createSession(session('b', { user: 'bob', target: 'web-1', segment: 'web', protocol: 'ssh', startedAt: 200, status: 'ended', endedAt: 250 }));
    await store.createSession(session('c', { user: 'alice', target: 'web-1', segment: 'web', protocol: 'ssh', startedAt: 300 }));
    await store.createSession(session('d', { user: 'carol', target: 'orders-mysql', segment: 'pay', protocol: 'mysql', startedAt: 300 }));
    const ids = async (f: Parameters<typeof store.listSessions>[0]): Promise<string[]> => (await store.listSessions(f)).map((s) => s.id);
    expect(await ids({})).toEqual(['d', 'c', 'b', 'a']);
    expect(await ids({ user: 'alice' })).toEqual(['c', 'a']);
    expect(await ids({ target: 'web-1' })).toEqual(['c', 'b']);
    expect(await ids({ segment: 'pay' })).toEqual(['d', 'a']);
    expect(await ids({ protocol: 'ssh' })).toEqual(['c', 'b']);
    expect(await ids({ live: true })).toEqual(['d', 'c', 'a']);
    expect(await ids({ live: false })).toEqual(['b']);
    expect(await ids({ since: 200 })).toEqual(['d', 'c', 'b']);
    expect(await ids({ user: 'alice', protocol: 'ssh', live: true })).toEqual(['c']);
    // keyset pagination: the (startedAt, id) tie at 300 is broken by id, descending
    const seen: string[] = [];
    let before: { startedAt: number; id: string } | undefined;
    for (;;) {
      const page = await store.listSessions({ limit: 1, before });
      if (page.length === 0) break;
      seen.push(page[0]!.id);
      before = { startedAt: page[0]!.startedAt, id: page[0]!.id };
    }
    expect(seen).toEqual(['d', 'c', 'b', 'a']);
    expect(await ids({ limit: 2, before: { startedAt: 300, id: 'd' } })).toEqual(['c', 'b']);
  });

  it('searches the string values of a session\'s audit events (q)', async () => {
    const { store } = await freshStore();
    for (const id of ['s1', 's2', 's3']) await store.createSession(session(id));
    await store.appendAudit([
      { ts: 1, kind: 'query', actor: 'alice', sessionId: 's1', data: { sql: 'SELECT * FROM "Orders" WHERE total > 100' } },
      { ts: 2, kind: 'command', actor: 'alice', sessionId: 's2', data: { command: 'rm -rf /var/tmp/50%_off' } },
      { ts: 3, kind: 'query', actor: 'alice', sessionId: 's3', data: { sql: 'DROP TABLE payments', params: [{ value: 'x"y' }] } },
      { ts: 4, kind: 'auth.ok', actor: 'alice', data: { note: 'DROP TABLE payments' } }, // no session: not searched
    ]);
    const q = async (text: string): Promise<string[]> => (await store.listSessions({ q: text })).map((s) => s.id).sort();
    expect(await q('from "orders"')).toEqual(['s1']); // case-insensitive substring, quotes literal
    expect(await q('drop table')).toEqual(['s3']);
    expect(await q('50%_')).toEqual(['s2']); // LIKE wildcards are literal
    expect(await q('%')).toEqual(['s2']); // short input: LIKE path, escaped
    expect(await q('_')).toEqual(['s2']);
    expect(await q('x"y')).toEqual(['s3']); // FTS quote escaping, in params too
    expect(await q('NEAR(a b) OR *')).toEqual([]); // FTS syntax is not interpreted
    expect(await q('nothing like this')).toEqual([]);
    expect(await q('  ')).toEqual(['s1', 's2', 's3']); // blank q = no filter
    // events appended after a search are found by the next one
    await store.appendAudit([{ ts: 5, kind: 'query', actor: 'alice', sessionId: 's1', data: { sql: 'VACUUM FULL' } }]);
    expect(await q('vacuum')).toEqual(['s1']);
    expect((await store.listSessions({ q: 'table', user: 'nobody' })).length).toBe(0);
  });
});

describe('audit storage', () => {
  it('appends in order with seq, prevHash and hash as the chain defines them', async () => {
    const { store } = await freshStore();
    expect(await store.auditHead()).toEqual({ count: 0, lastSeq: 0, lastHash: GENESIS_HASH });
    const first = await store.appendAudit([
      { ts: 10, kind: 'auth.ok', actor: 'alice', data: { method: 'password' } },
      { ts: 11.9, kind: 'query', actor: 'alice', sessionId: 's1', target: 'orders-db', data: { sql: 'SELECT \'ü\' -- "x"\n', rows: null, n: -0, big: 1e21 } },
    ]);
    const second = await store.appendAudit([{ ts: 12, kind: 'query', actor: 'alice', sessionId: 's1', target: null, data: { z: 1, a: [1, 'two', { b: true }] } }]);
    const all = [...first, ...second];
    expect(all.map((e) => e.seq)).toEqual([1, 2, 3]);
    expect(all[1]!.ts).toBe(11); // whole milliseconds
    expect(all[0]!.prevHash).toBe(GENESIS_HASH);
    for (let i = 0; i < all.length; i++) {
      const e = all[i]!;
      if (i > 0) expect(e.prevHash).toBe(all[i - 1]!.hash);
      expect(e.hash).toBe(chainHash(e.prevHash, e));
    }
    const read = await store.readAudit(0, 10);
    expect(read).toEqual(all.map((e) => ({ ...e, sessionId: e.sessionId ?? null, target: e.target ?? null, data: JSON.parse(JSON.stringify(e.data)) as object })));
    for (const e of read) expect(e.hash).toBe(chainHash(e.prevHash, e));
    expect((await store.readAudit(1, 1)).map((e) => e.seq)).toEqual([2]);
    expect((await store.sessionEvents('s1')).map((e) => e.seq)).toEqual([2, 3]);
    // In pages: seq > afterSeq, at most limit.
    expect((await store.sessionEvents('s1', { afterSeq: 0, limit: 1 })).map((e) => e.seq)).toEqual([2]);
    expect((await store.sessionEvents('s1', { afterSeq: 2, limit: 5 })).map((e) => e.seq)).toEqual([3]);
    expect(await store.sessionEvents('s1', { afterSeq: 3, limit: 5 })).toEqual([]);
    expect(await store.sessionEvents('s1', { afterSeq: 0, limit: 0 })).toEqual([]);
    expect(await store.auditHead()).toEqual({ count: 3, lastSeq: 3, lastHash: all[2]!.hash });
  });

  it('is all-or-nothing per call: an unserialisable event appends nothing', async () => {
    const { store } = await freshStore();
    await expect(
      store.appendAudit([
        { ts: 1, kind: 'ok', actor: 'a', data: {} },
        { ts: 2, kind: 'bad', actor: 'a', data: { n: Number.NaN } },
      ]),
    ).rejects.toThrow(/non-finite/);
    expect(await store.readAudit(0, 10)).toEqual([]);
  });

  it('chains correctly when two connections (processes) share the file', async () => {
    const { store, dbPath } = await freshStore();
    const other = new SqliteStore(dbPath);
    await other.migrate();
    for (let i = 0; i < 20; i++) {
      const s = i % 2 === 0 ? store : other;
      await Promise.all([
        s.appendAudit([{ ts: i, kind: 'a', actor: `p${i % 2}`, data: { i } }]),
        (i % 2 === 0 ? other : store).appendAudit([{ ts: i, kind: 'b', actor: 'x', data: { i } }]),
      ]);
    }
    await other.close();
    const rows = await store.readAudit(0, 100);
    expect(rows.map((r) => r.seq)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    let prev = GENESIS_HASH;
    for (const r of rows) {
      expect(r.prevHash).toBe(prev);
      expect(r.hash).toBe(chainHash(r.prevHash, r));
      prev = r.hash;
    }
  });

  it('refuses to chain onto a tail that was deleted behind its back', async () => {
    const { store, dbPath } = await freshStore();
    await store.appendAudit([1, 2, 3].map((i) => ({ ts: i, kind: 'k', actor: 'a', data: { i } })));
    const db = new Database(dbPath);
    db.prepare('DELETE FROM audit_events WHERE seq = 3').run();
    db.close();
    await expect(store.appendAudit([{ ts: 4, kind: 'k', actor: 'a', data: {} }])).rejects.toMatchObject({ code: 'WICKET_ERR_AUDIT_TAMPERED' });
  });
});

describe('access requests, grants, locks, control', () => {
  const req = (over: Partial<Omit<AccessRequestRecord, 'id'>> = {}): Omit<AccessRequestRecord, 'id'> => ({
    user: 'alice', target: null, segment: 'payments-prod', durationMs: 3_600_000, reason: 'incident 42', state: 'pending',
    approvalsRequired: 1, decisions: [], createdAt: 1, pendingUntil: 100, updatedAt: 1, grantId: null, ...over,
  });

  it('creates, lists and compare-and-sets requests', async () => {
    const { store } = await freshStore();
    const a = await store.createRequest(req());
    const b = await store.createRequest(req({ user: 'bob', target: 'orders-db', state: 'denied' }));
    expect(a.id).toBe(1);
    expect(await store.getRequest(a.id)).toEqual(a);
    expect(await store.getRequest(99)).toBeNull();
    expect((await store.listRequests({})).map((r) => r.id)).toEqual([a.id, b.id]);
    expect((await store.listRequests({ user: 'bob' })).map((r) => r.id)).toEqual([b.id]);
    expect((await store.listRequests({ state: 'pending' })).map((r) => r.id)).toEqual([a.id]);
    const decision = { by: 'sec', at: 5, verdict: 'approve' as const, comment: 'ok' };
    const next = { state: 'approved' as const, decisions: [decision], updatedAt: 5, grantId: 'g1' };
    // two approvers race: exactly one wins
    const [r1, r2] = await Promise.all([store.updateRequest(a.id, 'pending', next), store.updateRequest(a.id, 'pending', next)]);
    expect([r1, r2].filter((r) => r !== null)).toHaveLength(1);
    expect(await store.getRequest(a.id)).toEqual({ ...a, ...next });
    expect(await store.updateRequest(a.id, 'pending', { state: 'denied' })).toBeNull();
    expect(await store.updateRequest(999, 'pending', { state: 'denied' })).toBeNull();
    expect(await store.updateRequest(a.id, 'approved', {})).toEqual({ ...a, ...next });
  });

  it('compare-and-sets on the number of decisions too, so intermediate approvals from two processes never overwrite each other', async () => {
    const { store } = await freshStore();
    const a = await store.createRequest(req({ approvalsRequired: 2 }));
    const one = { decisions: [{ by: 'carol', at: 1, verdict: 'approve' as const, comment: null }], updatedAt: 1 };
    const other = { decisions: [{ by: 'dave', at: 1, verdict: 'approve' as const, comment: null }], updatedAt: 1 };
    // Both read the request with 0 decisions; only the first write may land.
    expect(await store.updateRequest(a.id, 'pending', one, 0)).toMatchObject(one);
    expect(await store.updateRequest(a.id, 'pending', other, 0)).toBeNull();
    expect((await store.getRequest(a.id))!.decisions).toEqual(one.decisions);
    expect(await store.updateRequest(a.id, 'pending', { decisions: [...one.decisions, ...other.decisions] }, 1)).not.toBeNull();
  });

  it('filters active grants (revoked, expired and not-yet-valid ones are not active)', async () => {
    const { store } = await freshStore();
    const g = { id: 'g1', requestId: '1', user: 'alice', target: null, segment: 'pay', validFrom: 100, expiresAt: 200, revokedAt: null };
    await store.createGrant(g);
    await store.createGrant({ ...g, id: 'g2', target: 'orders-db', expiresAt: 300 });
    await store.createGrant({ ...g, id: 'g3', validFrom: 150 });
    await store.createGrant({ ...g, id: 'g4', user: 'bob' });
    await expect(store.createGrant(g)).rejects.toMatchObject({ code: 'WICKET_ERR_CONFLICT' });
    expect((await store.activeGrants('alice', 120)).map((x) => x.id)).toEqual(['g1', 'g2']);
    expect((await store.activeGrants('alice', 160)).map((x) => x.id)).toEqual(['g1', 'g3', 'g2']);
    expect((await store.activeGrants('alice', 200)).map((x) => x.id)).toEqual(['g2']); // expiresAt is exclusive
    expect(await store.revokeGrant('g2', 130)).toBe(true);
    expect(await store.revokeGrant('g2', 140)).toBe(false);
    expect((await store.activeGrants('alice', 200)).map((x) => x.id)).toEqual([]);
    expect((await store.listGrants()).find((x) => x.id === 'g2')).toEqual({ ...g, id: 'g2', target: 'orders-db', expiresAt: 300, revokedAt: 130 });
    expect(await store.listGrants()).toHaveLength(4);
  });

  it('locks and unlocks segments', async () => {
    const { store } = await freshStore();
    const lock = { segment: 'pay', reason: 'incident', lockedBy: 'sec', lockedAt: 5 };
    expect(await store.lockSegment(lock)).toBe(true);
    expect(await store.lockSegment({ ...lock, reason: 'again' })).toBe(false);
    expect(await store.listLocks()).toEqual([lock]);
    expect(await store.unlockSegment('pay')).toBe(true);
    expect(await store.unlockSegment('pay')).toBe(false);
    expect(await store.listLocks()).toEqual([]);
  });

  it('queues control signals with increasing ids', async () => {
    const { store } = await freshStore();
    expect(await store.lastControlId()).toBe(0);
    const k = await store.pushControl({ kind: 'kill', ts: 1, actor: 'sec', sessionId: 's1', reason: 'bye' });
    const l = await store.pushControl({ kind: 'lock', ts: 2, actor: 'sec', segment: 'pay', reason: 'incident' });
    expect(k).toEqual({ id: 1, kind: 'kill', ts: 1, actor: 'sec', sessionId: 's1', segment: null, grantId: null, reason: 'bye' });
    expect(await store.readControl(0)).toEqual([k, l]);
    expect(await store.readControl(k.id)).toEqual([l]);
    expect(await store.lastControlId()).toBe(l.id);
    expect(isWicketError(new Error('x'))).toBe(false);
  });
});
