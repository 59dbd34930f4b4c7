/**
 * Just-in-time access end to end with real clients: refused login that
 * names the `wicket request` command -> request -> approval by another user
 * -> the client works -> revoke or expiry ends the live session with a
 * message. PostgreSQL (pg driver), MySQL (mysql2) and SSH (the inline wait,
 * driven in a pty). Also segment lockdown isolation.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loginError, machineDb, pgConnect, startBroker, waitFor, type Broker } from '../support/wicket-pg.js';
import { machineMysqlDb, mysql2Connect, startMysqlBroker, type MyBroker } from '../support/wicket-mysql.js';
import { startSshWorld, type SshWorld } from '../support/wicket-ssh.js';
import { spawnPty } from '../support/pty.js';

const PW = 'jit password 1';

describe('JIT with PostgreSQL', () => {
  let b: Broker;
  let db: Awaited<ReturnType<typeof machineDb>>;
  beforeAll(async () => {
    db = await machineDb('wjit');
    b = await startBroker([
      'data_dir: ./data',
      'listen: { postgres: "127.0.0.1:0" }',
      'segments: [{ name: prod }, { name: other }]',
      'targets:',
      `  - { name: orders, segment: prod, protocol: postgres, address: "127.0.0.1:5432", user: postgres, database: ${db.name}, tls: disable }`,
      `  - { name: side, segment: other, protocol: postgres, address: "127.0.0.1:5432", user: postgres, database: ${db.name}, tls: disable }`,
      'roles:',
      '  - { name: dev, allow: [{ segments: [prod], approval: required, max_duration: 1h }, { segments: [other] }] }',
      '  - { name: approver, approve: [prod] }',
      '  - { name: admin, admin: true }',
      'users:',
      '  - { name: alice, roles: [dev] }',
      '  - { name: carol, roles: [approver] }',
      '',
    ].join('\n'), { alice: PW, carol: PW });
  }, 60_000);
  afterAll(async () => {
    await b?.stop();
    await db?.drop();
  });

  it('refused -> request -> approved by another user -> works -> revoked ends the live session with a message', async () => {
    const refused = await loginError(b, { user: 'alice@orders', password: PW });
    expect(refused.message).toMatch(/requires an approved request.*run: wicket request orders --for 1h --reason/);
    const access = b.running.access!;
    const req = await access.request({ user: 'alice', target: 'orders', durationMs: 3_600_000, reason: 'INC-1 fix stuck order' });
    await expect(access.approve(req.id, 'alice')).rejects.toMatchObject({ code: 'WICKET_ERR_FORBIDDEN' });
    const { grant } = await access.approve(req.id, 'carol', 'ok');
    expect(grant).not.toBeNull();
    const c = await pgConnect(b, { user: 'alice@orders', password: PW });
    expect((await c.query('select 1 as x')).rows[0].x).toBe(1);
    const t0 = Date.now();
    await access.revoke(req.id, 'carol', 'done');
    await c.ended;
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(c.errors.map((e) => e.message).join(' ')).toMatch(/terminated by wicket: access to orders revoked/);
    expect((await loginError(b, { user: 'alice@orders', password: PW })).message).toMatch(/requires an approved request/);
  });

  it('a short grant ends the live session when it expires', async () => {
    const access = b.running.access!;
    const req = await access.request({ user: 'alice', target: 'orders', durationMs: 2000, reason: 'short look' });
    await access.approve(req.id, 'carol');
    const c = await pgConnect(b, { user: 'alice@orders', password: PW });
    await c.ended;
    expect(c.errors.map((e) => e.message).join(' ')).toMatch(/access to orders expired/);
    await waitFor(async () => ((await access.get(req.id))?.state === 'expired' ? true : (await access.expireDue(), null)), 5000, 'request expired');
  });

  it('segment lockdown ends only the locked segment\'s sessions, within a second', async () => {
    const access = b.running.access!;
    const req = await access.request({ user: 'alice', target: 'orders', durationMs: 3_600_000, reason: 'lock test' });
    await access.approve(req.id, 'carol');
    const inProd = await pgConnect(b, { user: 'alice@orders', password: PW });
    const inOther = await pgConnect(b, { user: 'alice@side', password: PW });
    const t0 = Date.now();
    await b.running.store.lockSegment({ segment: 'prod', reason: 'INC-99 breach', lockedBy: 'admin', lockedAt: t0 });
    await b.running.store.pushControl({ kind: 'lock', ts: t0, actor: 'admin', segment: 'prod', reason: 'INC-99 breach' });
    await inProd.ended;
    expect(Date.now() - t0).toBeLessThan(1500);
    expect((await inOther.query('select 2 as y')).rows[0].y).toBe(2);
    expect((await loginError(b, { user: 'alice@orders', password: PW })).message).toMatch(/locked/);
    await inOther.end();
    await b.running.store.unlockSegment('prod');
  });
});

describe('JIT with MySQL', () => {
  let b: MyBroker;
  let db: Awaited<ReturnType<typeof machineMysqlDb>>;
  beforeAll(async () => {
    db = await machineMysqlDb('wjit');
    b = await startMysqlBroker([
      'data_dir: ./data',
      'listen: { mysql: "127.0.0.1:0" }',
      'segments: [{ name: prod }]',
      'targets:',
      `  - { name: shop, segment: prod, protocol: mysql, address: "127.0.0.1:3306", user: root, database: ${db.name}, tls: disable }`,
      'roles:',
      '  - { name: dev, allow: [{ segments: [prod], approval: required, approvals: 2, max_duration: 1h }] }',
      '  - { name: approver, approve: [prod] }',
      'users:',
      '  - { name: alice, roles: [dev] }',
      '  - { name: carol, roles: [approver] }',
      '  - { name: dave, roles: [approver] }',
      '',
    ].join('\n'), { alice: PW });
  }, 60_000);
  afterAll(async () => {
    await b?.stop();
    await db?.drop();
  });

  it('needs two distinct approvers; then mysql2 works until the grant is revoked', async () => {
    await expect(mysql2Connect(b, { user: 'alice@shop', password: PW })).rejects.toMatchObject({ errno: 1045, message: expect.stringMatching(/wicket request shop/) });
    const access = b.running.access!;
    const req = await access.request({ user: 'alice', target: 'shop', durationMs: 600_000, reason: 'two approvers' });
    expect((await access.approve(req.id, 'carol')).grant).toBeNull();
    await expect(access.approve(req.id, 'carol')).rejects.toMatchObject({ code: 'WICKET_ERR_CONFLICT' });
    await expect(mysql2Connect(b, { user: 'alice@shop', password: PW })).rejects.toMatchObject({ errno: 1045 });
    expect((await access.approve(req.id, 'dave')).grant).not.toBeNull();
    const c = await mysql2Connect(b, { user: 'alice@shop', password: PW });
    await c.query('SELECT 1');
    await access.revoke(req.id, 'carol');
    await expect(c.query('SELECT SLEEP(3)')).rejects.toMatchObject({ message: expect.stringMatching(/access to shop revoked|closed/) });
    c.destroy();
  });
});

/** OpenSSH with alice's key, then keyboard-interactive for the request dialog (BatchMode off: it prompts). */
const sshInteractive = (w: SshWorld): string[] => [
  '-F', '/dev/null', '-p', String(w.port), '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', // LogLevel INFO (the default): OpenSSH prints keyboard-interactive instructions at INFO
  '-o', 'LogLevel=INFO',
  '-o', 'IdentityAgent=none', '-i', w.aliceKey, '-o', 'IdentitiesOnly=yes', '-o', 'PreferredAuthentications=publickey,keyboard-interactive',
];

describe('JIT with SSH: the inline request', () => {
  let w: SshWorld;
  beforeAll(async () => {
    w = await startSshWorld({
      roles: ['      - { segments: [secret], approval: required, max_duration: 1h }', '  - { name: approver, approve: [secret] }'],
      users: ['  - { name: carol, roles: [approver] }'],
    });
  }, 60_000);
  afterAll(async () => {
    await w?.stop();
  });

  it('asks for a reason, creates the request, waits, and runs the command once approved', async () => {
    const t = spawnPty('ssh', [...sshInteractive(w), 'alice@vault@127.0.0.1', 'echo', 'granted-$((6*7))']);
    try {
      await t.waitFor(/Reason: /, { timeoutMs: 20_000 });
      t.write('INC-7 rotate keys\r');
      const line = await t.waitFor(/request #(\d+) for vault created, waiting for approval/, { timeoutMs: 10_000 });
      const id = Number(/#(\d+)/.exec(line)![1]);
      await new Promise((r) => setTimeout(r, 1500)); // the login really waits
      expect(t.output()).not.toMatch(/granted-42/);
      await w.running.access!.approve(id, 'carol');
      await t.waitFor(/granted-42/, { timeoutMs: 15_000 });
      expect(await t.exited).toBe(0);
      await w.running.access!.revoke(id, 'carol', 'test over'); // the next test starts without a grant
    } finally {
      t.kill();
    }
  }, 60_000);

  it('ends the login when the request is denied, saying by whom', async () => {
    const t = spawnPty('ssh', [...sshInteractive(w), 'alice@vault@127.0.0.1', 'true']);
    try {
      await t.waitFor(/Reason: /, { timeoutMs: 20_000 });
      t.write('please\r');
      const line = await t.waitFor(/request #(\d+) for vault created/, { timeoutMs: 10_000 });
      const id = Number(/#(\d+)/.exec(line)![1]);
      await w.running.access!.deny(id, 'carol', 'not today');
      await t.waitFor(/was denied by carol: not today/, { timeoutMs: 10_000 });
      expect(await t.exited).not.toBe(0);
    } finally {
      t.kill();
    }
  }, 60_000);
});
