/**
 * Every working CLI command, run as a subprocess against a real data dir,
 * with a broker running in this process on the same store (as on a broker
 * host): kills and locks reach it through the store within a second.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { tmpDir, wicket, wicketAsync } from '../support/cli.js';
import { testHandle } from '../support/wicket-api.js';
import { startWicket, type Running } from '../../src/runtime.js';
import type { ActiveSession } from '../../src/broker.js';
import { openStore } from '../../src/store/open.js';

const CONFIG = `
data_dir: ./data
listen: { web: 127.0.0.1:0 }
segments:
  - { name: sandbox }
  - { name: payments-prod, description: Card data }
targets:
  - { name: sandbox, segment: sandbox, protocol: shell, command: [/bin/sh] }
  - { name: orders-db, segment: payments-prod, protocol: postgres, address: 127.0.0.1:5432, user: postgres, database: postgres }
roles:
  - { name: admin, admin: true, audit: true, approve: ['*'], allow: [{ segments: ['*'] }] }
  - name: developer
    allow:
      - { segments: [sandbox] }
      - { segments: [payments-prod], protocols: [postgres], access: read, approval: required, max_duration: 2h }
users:
  - { name: admin, roles: [admin] }
  - { name: alice, roles: [developer] }
`;

describe('wicket CLI', () => {
  const dir = tmpDir();
  const cfg = join(dir, 'wicket.yaml');
  let adminPassword = '';
  let running: Running | null = null;

  afterAll(async () => {
    await running?.stop('test over');
  });

  it('init writes config, keys, cert and an admin with a one-time password', () => {
    const r = wicket(['init', dir, '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as { password: string; sshHostKey: string; config: string };
    adminPassword = out.password;
    expect(adminPassword).toMatch(/^[A-Za-z0-9]{24}$/);
    expect(out.sshHostKey).toMatch(/^ssh-ed25519 AAAA/);
    for (const f of ['wicket.yaml', 'data/ssh_host_ed25519_key', 'data/tls/cert.pem', 'data/tls/key.pem', 'data/wicket.db']) {
      expect(existsSync(join(dir, f)), f).toBe(true);
    }
    expect(readFileSync(cfg, 'utf8')).toContain('protocol: shell');
  });

  it('init refuses to overwrite an existing config', () => {
    const r = wicket(['init', dir]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`wicket: ${cfg} already exists (use --force to overwrite)\n`);
  });

  it('policy check on the starter config allows admin to sandbox and names the rule', () => {
    const r = wicket(['policy', 'check', '--config', cfg, '--user', 'admin', '--target', 'sandbox']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^allow admin → sandbox \(shell, segment sandbox\) by admin\.allow\[0\]/);
  });

  it('a bad config exits 1 with the file, line and path', () => {
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'segments:\n  - { name: a }\ntargets:\n  - { name: t, segment: a, protocol: postgres, address: nope, user: u }\n');
    const r = wicket(['policy', 'check', '--config', bad, '--user', 'x', '--target', 't']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('wicket: bad.yaml:4: targets[0].address: expected host:port\n');
  });

  describe('with the full test config', () => {
    beforeAll(() => writeFileSync(cfg, CONFIG));

    it('policy check: read-only JIT rule needs approval; --json gives the decision', () => {
      const deny = wicket(['policy', 'check', '--config', cfg, '--user', 'alice', '--target', 'orders-db']);
      expect(deny.code).toBe(0);
      expect(deny.stdout).toContain('deny alice → orders-db');
      expect(deny.stdout).toContain('developer.allow[1]');
      const j = JSON.parse(wicket(['policy', 'check', '--config', cfg, '--user', 'alice', '--target', 'sandbox', '--json']).stdout) as { type: string; rule: { label: string } };
      expect(j).toMatchObject({ type: 'allow', rule: { label: 'developer.allow[0]' } });
      const unknown = wicket(['policy', 'check', '--config', cfg, '--user', 'alice', '--target', 'nope']);
      expect(unknown.stdout).toContain('deny alice → nope');
      const badProto = wicket(['policy', 'check', '--config', cfg, '--user', 'alice', '--target', 'sandbox', '--protocol', 'ftp']);
      expect(badProto.code).toBe(2);
      expect(badProto.stderr).toBe('wicket: --protocol: expected one of postgres, mysql, ssh, shell\n');
    });

    it('user passwd reads stdin, refuses short passwords and unknown users', () => {
      expect(wicket(['user', 'passwd', 'alice', '--config', cfg], { input: 'correct horse battery\n' })).toMatchObject({ code: 0, stdout: 'password set for alice\n' });
      expect(wicket(['user', 'passwd', 'alice', '--config', cfg], { input: 'short\n' })).toMatchObject({ code: 2, stderr: 'wicket: password must be at least 12 characters\n' });
      const r = wicket(['user', 'passwd', 'mallory', '--config', cfg], { input: 'correct horse battery\n' });
      expect(r.code).toBe(1);
      expect(r.stderr).toBe(`wicket: unknown user "mallory": add it under users: in ${cfg}\n`);
      const list = wicket(['user', 'list', '--config', cfg, '--json']);
      expect(JSON.parse(list.stdout)).toEqual([
        { name: 'admin', roles: ['admin'], password: 'set', sshKeys: 0 },
        { name: 'alice', roles: ['developer'], password: 'set', sshKeys: 0 },
      ]);
    });

    it('token create prints the token once; list never shows it; revoke', () => {
      const c = wicket(['token', 'create', 'alice', '--ttl', '1h', '--config', cfg, '--json']);
      expect(c.code).toBe(0);
      const t = JSON.parse(c.stdout) as { token: string; id: string };
      expect(t.token).toMatch(/^wkt_[0-9a-f]{16}_[A-Za-z0-9_-]{32}$/);
      const l = wicket(['token', 'list', 'alice', '--config', cfg]);
      expect(l.stdout).toContain(t.id);
      expect(l.stdout).toContain('active');
      expect(l.stdout).not.toContain(t.token);
      expect(wicket(['token', 'revoke', t.id, '--config', cfg]).stdout).toBe(`revoked token ${t.id} of alice\n`);
      expect(wicket(['token', 'list', 'alice', '--config', cfg]).stdout).toContain('revoked');
      expect(wicket(['token', 'create', 'alice', '--ttl', 'soon', '--config', cfg]).stderr).toBe('wicket: --ttl: expected a duration such as 8h or 30d, got "soon"\n');
    });

    it('policy audit reports standing access, unreachable targets and approvers', () => {
      const r = wicket(['policy', 'audit', '--config', cfg]);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/standing/i);
      expect(r.stdout).toContain('sandbox');
      const j = JSON.parse(wicket(['policy', 'audit', '--config', cfg, '--json']).stdout) as { orphanTargets: unknown[] };
      expect(j.orphanTargets).toEqual([]);
    });

    it('policy audit lists grants with the sessions that used them and standing rules that could be just-in-time', async () => {
      // A data dir of its own: the sessions and grants planted here must not show up in the broker tests below.
      const d = tmpDir();
      const c = join(d, 'wicket.yaml');
      writeFileSync(c, CONFIG);
      const store = await openStore('sqlite', join(d, 'data'));
      const t0 = Date.UTC(2026, 0, 5, 9, 0, 0);
      const H = 3_600_000;
      await store.createGrant({ id: 'g-used', requestId: '1', user: 'alice', target: 'orders-db', segment: 'payments-prod', validFrom: t0, expiresAt: t0 + 2 * H, revokedAt: t0 + H });
      await store.createGrant({ id: 'g-idle', requestId: null, user: 'alice', target: null, segment: 'payments-prod', validFrom: t0 + 3 * H, expiresAt: t0 + 4 * H, revokedAt: null });
      for (const [id, at, grantId] of [['s1', t0 + 60_000, 'g-used'], ['s2', t0 + 120_000, 'g-used'], ['s3', t0 + 3 * H + 60_000, null]] as const) {
        await store.createSession({
          id, user: 'alice', target: 'orders-db', segment: 'payments-prod', protocol: 'postgres', clientAddr: '127.0.0.1:1', brokerId: 'b',
          rule: 'developer.allow[1]', access: 'read', grantId, startedAt: at, endedAt: at + 1000, status: 'ended', endReason: null,
          recordingPath: null, recordingSha256: null, recordingBytes: null, meta: {},
        });
      }
      await store.close();
      const text = wicket(['policy', 'audit', '--config', c]);
      expect(text.code).toBe(0);
      expect(text.stdout).toContain('  g-used alice → orders-db (revoked): used by 2 sessions, last 2026-01-05T09:02:00Z; segment payments-prod, valid 2026-01-05T09:00:00Z to 2026-01-05T11:00:00Z, revoked 2026-01-05T10:00:00Z, request 1\n');
      expect(text.stdout).toContain('  g-idle alice → segment payments-prod (expired): unused; valid 2026-01-05T12:00:00Z to 2026-01-05T13:00:00Z, not revoked\n');
      expect(text.stdout).toContain('  admin.allow[0] gives admin standing access to payments-prod: segment name suggests production; other rules require approval for it; it grants write (no access: given, so write) where read rules exist\n'
        + '    role admin; gated by developer.allow[1]; read rules developer.allow[1]; suggestion: add approval: required (and a max_duration) to admin.allow[0] so payments-prod is reached through an approved, time-boxed request; it covers every segment, so a separate gated rule for payments-prod may fit better\n');
      expect(text.stdout).toContain('  note: production is guessed from names: ');
      const j = JSON.parse(wicket(['policy', 'audit', '--config', c, '--json']).stdout) as {
        grantsUsed: { grantId: string; sessions: number; state: string }[];
        justInTimeCandidates: { rule: string; role: string; segment: string; reasons: string[]; suggestion: string }[];
        productionHeuristic: string;
      };
      expect(j.grantsUsed.map((g) => [g.grantId, g.state, g.sessions])).toEqual([['g-used', 'revoked', 2], ['g-idle', 'expired', 0]]);
      expect(j.justInTimeCandidates.map((x) => [x.rule, x.role, x.segment, x.reasons])).toEqual([['admin.allow[0]', 'admin', 'payments-prod', ['prod_name', 'gated_elsewhere', 'write_beside_read']]]);
      expect(j.productionHeuristic).toContain('"prod" or "production"');
    });

    describe('with a broker running on the same store', () => {
      let shell: ActiveSession;
      let db: ActiveSession;
      const shellHandle = testHandle();
      const dbHandle = testHandle();

      beforeAll(async () => {
        running = await startWicket(cfg, { log: () => undefined, pollMs: 100 });
        shell = await running.broker.open({ user: 'alice', target: 'sandbox', protocol: 'shell', clientAddr: '127.0.0.1:5555', authMethod: 'password' }, shellHandle, { cols: 80, rows: 24 });
        shell.terminal!.output(Buffer.from('$ '));
        shell.terminal!.input(Buffer.from('echo hi\r'));
        shell.terminal!.output(Buffer.from('echo hi\r\nhi\r\n$ '));
        shell.emit({ type: 'command', at: Date.now(), source: 'typed', command: 'echo hi' });
        db = await running.broker.open({ user: 'admin', target: 'orders-db', protocol: 'postgres', clientAddr: '127.0.0.1:5556', authMethod: 'password' }, dbHandle);
        db.emit({ type: 'query', step: 'query', startedAt: Date.now(), durationMs: 1.5, sql: 'SELECT 42', rows: 1, tag: 'SELECT 1' });
        db.emit({ type: 'query', step: 'bind', startedAt: Date.now(), durationMs: 0.2, sql: 'SELECT $1::int', params: [{ type: 23, format: 'text', value: '7' }] });
        await running.audit.flush();
      });

      it('healthz answers on the web listener', async () => {
        const res = await fetch(`http://${running!.addresses.web}/healthz`);
        expect(res.status).toBe(200);
        expect(await res.json()).toMatchObject({ status: 'ok', live_sessions: 2 });
      });

      it('sessions lists live sessions with filters', () => {
        const all = wicket(['sessions', '--config', cfg]);
        expect(all.stdout).toContain(`${shell.id}`);
        expect(all.stdout).toContain('LIVE');
        const j = JSON.parse(wicket(['sessions', '--config', cfg, '--user', 'admin', '--json']).stdout) as { id: string }[];
        expect(j.map((s) => s.id)).toEqual([db.id]);
        const q = JSON.parse(wicket(['sessions', '--config', cfg, '-q', 'SELECT 42', '--json']).stdout) as { id: string }[];
        expect(q.map((s) => s.id)).toEqual([db.id]);
      });

      it('kill ends a live session on the running broker within a second', async () => {
        const endedAt = dbHandle.terminated.then(() => Date.now());
        const r = await wicketAsync(['kill', db.id, '--reason', 'INC-1 test kill', '--config', cfg]);
        expect(r.stdout).toContain(`kill sent for ${db.id}`);
        expect(await dbHandle.terminated).toBe('INC-1 test kill');
        // Within a second of the CLI writing the signal (not of spawning the CLI: node's start-up varies with load).
        const sent = (await running!.store.readControl(0)).find((c) => c.kind === 'kill' && c.sessionId === db.id)!;
        expect((await endedAt) - sent.ts).toBeLessThan(1000);
        await db.end({ status: 'ended' });
        const s = await running!.store.getSession(db.id);
        expect(s).toMatchObject({ status: 'terminated', endReason: 'INC-1 test kill' });
        expect(wicket(['kill', db.id, '--config', cfg]).stderr).toBe(`wicket: session ${db.id} is not live (terminated)\n`);
      });

      it('segment lock ends the sessions in that segment only, and refuses new ones', async () => {
        const other = testHandle();
        const prod = await running!.broker.open({ user: 'admin', target: 'orders-db', protocol: 'postgres', clientAddr: '127.0.0.1:1', authMethod: 'token' }, other);
        const r = wicket(['segment', 'lock', 'payments-prod', '--reason', 'INC-99 breach', '--config', cfg]);
        expect(r.stdout).toBe('locked payments-prod: INC-99 breach\n');
        expect(await other.terminated).toBe('segment payments-prod locked: INC-99 breach');
        await prod.end({ status: 'ended' });
        expect(shellHandle.reasons).toEqual([]);
        await expect(running!.broker.open({ user: 'admin', target: 'orders-db', protocol: 'postgres', clientAddr: '127.0.0.1:1', authMethod: 'token' }, testHandle()))
          .rejects.toMatchObject({ code: 'WICKET_ERR_SEGMENT_LOCKED' });
        expect(wicket(['segment', 'unlock', 'payments-prod', '--config', cfg]).stdout).toBe('unlocked payments-prod\n');
      });

      it('replay shows the terminal output and the DB statement list', async () => {
        shell.terminal!.output(Buffer.from('bye\r\n'));
        await shell.end({ status: 'ended' });
        const t = wicket(['replay', shell.id, '--config', cfg, '--text']);
        expect(t.code).toBe(0);
        expect(t.stdout).toContain('echo hi\r\nhi\r\n$ bye');
        const q = wicket(['replay', db.id, '--config', cfg]);
        expect(q.stdout).toContain('SELECT 42');
        expect(q.stdout).toContain('SELECT $1::int');
        expect(q.stdout).toContain("'7'");
      });

      it('audit export prints every admin action and session event as JSON lines', async () => {
        await running!.audit.flush();
        const r = wicket(['audit', 'export', '--config', cfg]);
        const kinds = r.stdout.trim().split('\n').map((l) => (JSON.parse(l) as { kind: string }).kind);
        for (const k of ['init', 'user.passwd', 'token.create', 'token.revoke', 'broker.start', 'session.start', 'command', 'query', 'session.kill', 'segment.lock', 'segment.unlock', 'session.end', 'policy.deny']) {
          expect(kinds, k).toContain(k);
        }
        const since = wicket(['audit', 'export', '--since', '2999-01-01', '--config', cfg]);
        expect(since.stdout).toBe('');
      });

      it('audit verify is OK, then names the row an edit broke', async () => {
        await running!.audit.flush();
        // Async: a blocking spawn would freeze this process's broker, which must keep sealing the head.
        const ok = await wicketAsync(['audit', 'verify', '--config', cfg]);
        expect(ok.stdout).toMatch(/^OK/);
        expect(ok.code).toBe(0);
        await running!.stop('test over');
        running = null;
        const raw = new Database(join(dir, 'data', 'wicket.db'));
        raw.prepare("UPDATE audit_events SET data = json_set(data, '$.reason', 'nothing to see') WHERE seq = 3").run();
        raw.close();
        const bad = wicket(['audit', 'verify', '--config', cfg]);
        expect(bad.code).toBe(1);
        expect(bad.stdout).toMatch(/^FAILED/);
        expect(bad.stdout).toContain('#3');
      });
    });
  });

  it('serve answers /healthz, reloads on SIGHUP keeping a good policy, and stops cleanly on SIGTERM', async () => {
    const d = tmpDir();
    const c = join(d, 'wicket.yaml');
    const port = 20000 + Math.floor(Math.random() * 20000);
    writeFileSync(c, CONFIG.replace('127.0.0.1:0', `127.0.0.1:${port}`));
    const { spawn } = await import('node:child_process');
    const { CLI } = await import('../support/cli.js');
    const child = spawn(process.execPath, [CLI, 'serve', '--config', c], { stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    child.stderr.on('data', (b: Buffer) => (log += b.toString()));
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    let status = 0;
    // Up to 30 s: under the full suite's load on two cores, a cold `node` start of the broker can take a while.
    for (let i = 0; i < 300 && status !== 200; i++) {
      await new Promise((r) => setTimeout(r, 100));
      status = await fetch(`http://127.0.0.1:${port}/healthz`).then((res) => res.status, () => 0);
    }
    expect(status, `serve did not answer /healthz; its log:\n${log}`).toBe(200);
    writeFileSync(c, 'segments: nope\n');
    child.kill('SIGHUP');
    for (let i = 0; i < 50 && !log.includes('config reload failed'); i++) await new Promise((r) => setTimeout(r, 100));
    expect(log).toContain('config reload failed, keeping the running policy');
    expect(log).toContain('wicket.yaml:1: segments:');
    expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(log).toContain('stopped');
  }, 60_000);
});
