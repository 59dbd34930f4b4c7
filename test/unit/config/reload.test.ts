import { writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ConfigHolder, type ReloadResult } from '../../../src/config/reload.js';
import { loadConfig } from '../../../src/config/load.js';
import { BASE, writeConfig } from './helpers.js';

const WITH_USER = `${BASE}roles:
  - name: developer
    allow: [{ segments: [sandbox] }]
users:
  - { name: alice, roles: [developer] }
`;

describe('ConfigHolder', () => {
  it('loads from a path or takes a loaded config', () => {
    const path = writeConfig(BASE);
    expect(new ConfigHolder(path, {}).current.path).toBe(path);
    const config = loadConfig(path, {});
    expect(new ConfigHolder(config, {}).current).toBe(config);
  });

  it('reports an unchanged file as unchanged and keeps the same object', () => {
    const holder = new ConfigHolder(writeConfig(BASE), {});
    const before = holder.current;
    expect(holder.reload()).toEqual({ ok: true, config: before, changed: false });
    expect(holder.current).toBe(before);
  });

  it('picks up a good change', () => {
    const path = writeConfig(BASE);
    const holder = new ConfigHolder(path, {});
    const oldHash = holder.current.hash;
    writeFileSync(path, WITH_USER);
    const r = holder.reload();
    expect(r.ok && r.changed).toBe(true);
    expect(holder.current.users.map((u) => u.name)).toEqual(['alice']);
    expect(holder.current.hash).not.toBe(oldHash);
  });

  it('notices a changed env: secret even when the file is the same', () => {
    const path = writeConfig(`${BASE}  - { name: db, segment: payments, protocol: mysql, address: 'db:3306', user: root, password: env:PW }
`);
    const env: NodeJS.ProcessEnv = { PW: 'one' };
    const holder = new ConfigHolder(path, env);
    env['PW'] = 'two';
    const r = holder.reload();
    expect(r.ok && r.changed).toBe(true);
    expect(holder.current.targets[1]?.password).toBe('two');
  });

  it('keeps the old config on a bad file and says why', () => {
    const path = writeConfig(WITH_USER);
    const holder = new ConfigHolder(path, {});
    const before = holder.current;
    writeFileSync(path, WITH_USER.replace('roles: [developer]', 'roles: [dba]'));
    expect(holder.reload()).toEqual({ ok: false, error: 'wicket.yaml:13: users[0].roles[0]: unknown role "dba"' });
    expect(holder.current).toBe(before);

    writeFileSync(path, 'targets: [\n');
    const r = holder.reload();
    expect(r.ok).toBe(false);
    expect(!r.ok && r.error).toMatch(/^wicket\.yaml:2: /);
    expect(holder.current).toBe(before);
  });

  it('reloads on SIGHUP while the handler is installed', async () => {
    const path = writeConfig(BASE);
    const holder = new ConfigHolder(path, {});
    const listenersBefore = process.listenerCount('SIGHUP');
    const results: ReloadResult[] = [];
    let wake: () => void = () => undefined;
    const uninstall = holder.watchSighup((r) => {
      results.push(r);
      wake();
    });
    try {
      writeFileSync(path, WITH_USER);
      const got = new Promise<void>((res) => { wake = res; });
      process.kill(process.pid, 'SIGHUP');
      await got;
      expect(results).toHaveLength(1);
      expect(results[0]).toMatchObject({ ok: true, changed: true });
      expect(holder.current.users).toHaveLength(1);
    } finally {
      uninstall();
    }
    expect(process.listenerCount('SIGHUP')).toBe(listenersBefore);
  });
});
