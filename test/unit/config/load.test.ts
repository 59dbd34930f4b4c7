import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/load.js';
import { resolveConfigPath } from '../../../src/config/find.js';
import { isWicketError } from '../../../src/errors.js';
import { BASE, configError, writeConfig } from './helpers.js';

const SSH = `${BASE}  - name: web-1
    segment: payments
    protocol: ssh
    address: 10.0.0.5:22
    user: deploy
    private_key: file:keys/deploy
    host_key: "ssh-ed25519 AAAAC3Nza"
  - name: orders-db
    segment: payments
    protocol: postgres
    address: 127.0.0.1:5432
    user: app
    password: env:ORDERS_PW
    tls: verify
    ca: file:certs/ca.pem
`;

describe('examples/wicket.yaml', () => {
  it('loads with no errors and no warnings, data in the repo\'s ./data', () => {
    const config = loadConfig('examples/wicket.yaml', {});
    expect(config.warnings).toEqual([]);
    expect(config.path).toBe(resolve('examples/wicket.yaml'));
    expect(config.dataDir).toBe(resolve('data'));
    expect(config.store).toBe('sqlite');
    expect(config.listen).toEqual({
      postgres: '127.0.0.1:15432', mysql: '127.0.0.1:13306', ssh: '127.0.0.1:2222', web: '127.0.0.1:8080',
    });
    expect(config.targets.map((t) => [t.name, t.protocol, t.segment])).toEqual([
      ['sandbox', 'shell', 'sandbox'], ['demo-pg', 'postgres', 'demo-db'], ['demo-mysql', 'mysql', 'demo-db'],
    ]);
    expect(config.users.map((u) => [u.name, u.roles])).toEqual([
      ['admin', ['admin']], ['alice', ['developer']], ['sam', ['security']],
    ]);
    const dev = config.roles.find((r) => r.name === 'developer');
    expect(dev?.allow?.[1]).toMatchObject({
      segments: ['demo-db'], access: 'read', approval: 'required', max_duration: '2h', deny_sql: ['ddl', 'delete_without_where'],
    });
  });
});

describe('loadConfig on good configs', () => {
  it('fills defaults, resolves data_dir against the file\'s folder, hashes the bytes', () => {
    const path = writeConfig(BASE);
    const config = loadConfig(path, {});
    expect(config.path).toBe(path);
    expect(config.dataDir).toBe(join(dirname(path), 'data'));
    expect(config.hash).toBe(createHash('sha256').update(readFileSync(path)).digest('hex'));
    expect(config.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(config).toMatchObject({ data_dir: './data', store: 'sqlite', listen: {}, recording: { on_failure: 'refuse' } });
    expect(config.roles).toEqual([]);
    expect(config.users).toEqual([]);
  });

  it('keeps an absolute data_dir and resolves ../ relative to the file', () => {
    expect(loadConfig(writeConfig(`data_dir: /var/lib/wicket\n${BASE}`), {}).dataDir).toBe('/var/lib/wicket');
    const path = writeConfig(`data_dir: ../state\n${BASE}`);
    expect(loadConfig(path, {}).dataDir).toBe(resolve(dirname(path), '..', 'state'));
  });

  it('resolves env: and file: secrets (file: relative to the config folder)', () => {
    const path = writeConfig(SSH, {
      'keys/deploy': '-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----\n',
      'certs/ca.pem': '-----BEGIN CERTIFICATE-----\nxyz\n-----END CERTIFICATE-----\n',
    });
    const config = loadConfig(path, { ORDERS_PW: 's3cret' });
    const [, web, db] = config.targets;
    expect(web?.private_key).toBe('-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----\n');
    expect(db?.password).toBe('s3cret');
    expect(db?.ca).toContain('BEGIN CERTIFICATE');
    expect(config.warnings).toEqual([]);
  });

  it('drops the trailing newline of a password file', () => {
    const path = writeConfig(`${BASE}  - { name: db, segment: payments, protocol: mysql, address: 'db:3306', user: root,
      password: file:pw.txt }
`, { 'pw.txt': 'hunter2\n' });
    expect(loadConfig(path, {}).targets[1]?.password).toBe('hunter2');
  });

  it('accepts a literal secret with a warning that never repeats it', () => {
    const path = writeConfig(`${BASE}  - name: db
    segment: payments
    protocol: postgres
    address: 127.0.0.1:5432
    user: app
    password: correct-horse
`);
    const config = loadConfig(path, {});
    expect(config.targets[1]?.password).toBe('correct-horse');
    expect(config.warnings).toEqual([
      'wicket.yaml:14: targets[1].password: literal secret in config file; use env:NAME or file:PATH',
    ]);
    expect(config.warnings.join('\n')).not.toContain('correct-horse');
  });

  it('never puts a secret value in an error message', () => {
    const err = configError(`${BASE}  - name: db
    segment: payments
    protocol: postgres
    address: nowhere
    password: correct-horse
    ca: not-a-pem-but-secretish
`, {});
    expect(err.message).not.toContain('correct-horse');
    expect(err.message).not.toContain('not-a-pem-but-secretish');
    expect(err.message).not.toContain('nowhere');
  });

  it('accepts an inline PEM ca without a warning, and trust upstreams without a password', () => {
    const path = writeConfig(`${BASE}  - name: db
    segment: payments
    protocol: postgres
    address: '[::1]:5432'
    user: postgres
    ca: |
      -----BEGIN CERTIFICATE-----
      abc
      -----END CERTIFICATE-----
`);
    const config = loadConfig(path, {});
    expect(config.warnings).toEqual([]);
    expect(config.targets[1]?.password).toBeUndefined();
  });

  it('reports a missing config file with a hint', () => {
    const missing = resolve('/nonexistent-wicket-dir/wicket.yaml');
    try {
      loadConfig(missing, {});
      expect.unreachable();
    } catch (e) {
      expect(isWicketError(e, 'WICKET_ERR_CONFIG')).toBe(true);
      expect((e as Error).message).toBe(
        `${missing}: cannot read config file: ENOENT (pass --config FILE, set WICKET_CONFIG, or run wicket init)`,
      );
    }
  });

  it('lists every error in details.errors', () => {
    const err = configError(`data_dir: 1\nstore: 2\n`);
    expect(err.details?.['errors']).toEqual([
      'wicket.yaml:1: data_dir: expected a string',
      'wicket.yaml:2: store: expected sqlite or a postgres:// URL',
    ]);
  });
});

describe('resolveConfigPath', () => {
  it('prefers --config, then $WICKET_CONFIG, then ./wicket.yaml, always absolute', () => {
    expect(resolveConfigPath('conf/w.yaml', { WICKET_CONFIG: '/etc/wicket.yaml' })).toBe(resolve('conf/w.yaml'));
    expect(resolveConfigPath(undefined, { WICKET_CONFIG: 'rel/w.yaml' })).toBe(resolve('rel/w.yaml'));
    expect(resolveConfigPath(undefined, {})).toBe(resolve('wicket.yaml'));
    expect(resolveConfigPath('', { WICKET_CONFIG: '' })).toBe(resolve('wicket.yaml'));
  });
});
