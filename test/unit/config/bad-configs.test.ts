/** Each bad config must fail with the exact `file:line: path: message` text a person will read. */
import { describe, it } from 'vitest';
import { BASE, expectConfigError as bad } from './helpers.js';

const PG = `  - name: orders-db
    segment: payments
    protocol: postgres
`; // lines 9-11 after BASE

describe('loadConfig rejects', () => {
  it('a YAML syntax error, with yaml message on one line', () => {
    bad(`${BASE}  - name: web
    segment: [sandbox
    protocol: ssh
`, ['wicket.yaml:11: Flow sequence in block collection must be sufficiently indented and end with a ]']);
  });

  it('a duplicate key in one mapping (YAML level)', () => {
    bad(`${BASE}  - name: x
    name: y
`, ['wicket.yaml:10: Map keys must be unique']);
  });

  it('a bad host:port in listen and in a target', () => {
    bad(`listen:
  web: localhost
  ssh: 127.0.0.1:99999
${BASE}${PG}    address: db.internal
    user: app
`, [
      'wicket.yaml:2: listen.web: expected host:port',
      'wicket.yaml:3: listen.ssh: expected host:port',
      'wicket.yaml:15: targets[1].address: expected host:port',
    ]);
  });

  it('an unknown protocol', () => {
    bad(`${BASE}  - name: old-box
    segment: sandbox
    protocol: telnet
`, ['wicket.yaml:11: targets[1].protocol: expected one of postgres, mysql, ssh, shell']);
  });

  it('an unknown key (typo), which also leaves the real key missing', () => {
    bad(`${BASE}  - name: web
    segmnt: sandbox
    protocol: shell
    command: [sh]
`, [
      'wicket.yaml:9: targets[1].segment: required',
      'wicket.yaml:10: targets[1].segmnt: unknown key',
    ]);
  });

  it('several unknown keys, one message each, at top level too', () => {
    bad(`${BASE}colour: blue
listen: { web: 127.0.0.1:8080, http: 127.0.0.1:80, grpc: 127.0.0.1:90 }
`, [
      'wicket.yaml:9: colour: unknown key',
      'wicket.yaml:10: listen.http: unknown key',
      'wicket.yaml:10: listen.grpc: unknown key',
    ]);
  });

  it('a duplicate target name', () => {
    bad(`${BASE}  - { name: sandbox, segment: sandbox, protocol: shell, command: [sh] }
`, ['wicket.yaml:9: targets[1].name: duplicate target name "sandbox"']);
  });

  it('a target in an undeclared segment', () => {
    bad(`${BASE}  - { name: web-1, segment: web-prod, protocol: shell, command: [sh] }
`, ['wicket.yaml:9: targets[1].segment: unknown segment "web-prod"']);
  });

  it('a user with an undeclared role', () => {
    bad(`${BASE}roles:
  - name: developer
users:
  - name: alice
    roles: [developer, dba]
`, ['wicket.yaml:13: users[0].roles[1]: unknown role "dba"']);
  });

  it('a rule naming an undeclared segment or target, and approve naming an undeclared segment', () => {
    bad(`${BASE}roles:
  - name: developer
    allow:
      - segments: ['*']
        targets: [sandbox, web-9]
      - segments: [sandbox, payments-prod]
    approve: [payments, pci]
`, [
      'wicket.yaml:13: roles[0].allow[0].targets[1]: unknown target "web-9"',
      'wicket.yaml:14: roles[0].allow[1].segments[1]: unknown segment "payments-prod"',
      'wicket.yaml:15: roles[0].approve[1]: unknown segment "pci"',
    ]);
  });

  it('a bad duration, access value, deny_sql class and approvals count', () => {
    bad(`${BASE}roles:
  - name: developer
    allow:
      - segments: [payments]
        max_duration: 2 hours
        access: rw
        deny_sql: [ddl, drop_table]
        approvals: 7
`, [
      'wicket.yaml:13: roles[0].allow[0].max_duration: expected a duration such as 30m, 2h or 1d',
      'wicket.yaml:14: roles[0].allow[0].access: expected read or write',
      'wicket.yaml:15: roles[0].allow[0].deny_sql[1]: expected one of ddl, delete_without_where, update_without_where, truncate, copy_program',
      'wicket.yaml:16: roles[0].allow[0].approvals: expected a whole number from 1 to 5',
    ]);
  });

  it('approvals of 0 and a fraction', () => {
    bad(`${BASE}roles:
  - name: developer
    allow:
      - { segments: [payments], approvals: 0 }
      - { segments: [payments], approvals: 1.5 }
`, [
      'wicket.yaml:12: roles[0].allow[0].approvals: expected a whole number from 1 to 5',
      'wicket.yaml:13: roles[0].allow[1].approvals: expected a whole number from 1 to 5',
    ]);
  });

  it('a postgres target without address or user (reported at the target line)', () => {
    bad(`${BASE}${PG}`, [
      'wicket.yaml:9: targets[1].address: required for postgres targets',
      'wicket.yaml:9: targets[1].user: required for postgres targets',
    ]);
  });

  it('an ssh target without host_key/known_hosts or credentials', () => {
    bad(`${BASE}  - name: web-1
    segment: sandbox
    protocol: ssh
    address: 10.0.0.5:22
    user: deploy
`, [
      'wicket.yaml:9: targets[1].private_key: ssh targets need private_key or password',
      'wicket.yaml:9: targets[1].host_key: ssh targets need host_key or known_hosts',
    ]);
  });

  it('a shell target without command', () => {
    bad(`${BASE}  - { name: box, segment: sandbox, protocol: shell }
`, ['wicket.yaml:9: targets[1].command: required for shell targets']);
  });

  it('command on a postgres target and database on a shell target', () => {
    bad(`${BASE}${PG}    address: 127.0.0.1:5432
    user: app
    command: [psql]
  - { name: box, segment: sandbox, protocol: shell, command: [sh], database: x, tls: require }
`, [
      'wicket.yaml:14: targets[1].command: only valid for shell targets',
      'wicket.yaml:15: targets[2].database: only valid for postgres and mysql targets',
      'wicket.yaml:15: targets[2].tls: only valid for postgres and mysql targets',
    ]);
  });

  it('an env: secret whose variable is not set', () => {
    bad(`${BASE}${PG}    address: 127.0.0.1:5432
    user: app
    password: env:ORDERS_PW
`, ['wicket.yaml:14: targets[1].password: environment variable ORDERS_PW is not set'], { OTHER: 'x' });
  });

  it('a file: secret that cannot be read (relative path as written)', () => {
    bad(`${BASE}  - name: web-1
    segment: sandbox
    protocol: ssh
    address: 10.0.0.5:22
    user: deploy
    private_key: file:keys/deploy
    known_hosts: /etc/ssh/ssh_known_hosts
`, ['wicket.yaml:14: targets[1].private_key: cannot read file keys/deploy: ENOENT']);
  });

  it('a ca that is neither a reference nor a PEM certificate', () => {
    bad(`${BASE}${PG}    address: 127.0.0.1:5432
    user: app
    tls: verify
    ca: certs/ca.pem
`, ['wicket.yaml:15: targets[1].ca: expected file:PATH, env:NAME or an inline PEM certificate']);
  });

  it('a bad ssh public key line', () => {
    bad(`${BASE}users:
  - name: alice
    ssh_keys:
      - "ssh-ed25519 AAAAC3Nza alice@laptop"
      - "AAAAC3NzaC1lZDI1NTE5 alice@laptop"
`, ['wicket.yaml:13: users[0].ssh_keys[1]: expected an OpenSSH public key line: "ssh-ed25519 AAAA... comment"']);
  });

  it('a string where a list is expected, and a list where a mapping is', () => {
    bad(`${BASE}roles:
  - name: developer
    allow:
      - segments: sandbox
    approve: payments
users:
  - { name: alice, roles: developer }
listen: [127.0.0.1:8080]
`, [
      'wicket.yaml:12: roles[0].allow[0].segments: expected a list of segment names or \'*\'',
      'wicket.yaml:13: roles[0].approve: expected a list of segment names or \'*\'',
      'wicket.yaml:15: users[0].roles: expected a list of role names',
      'wicket.yaml:16: listen: expected a mapping',
    ]);
  });

  it('generic type errors in plain words', () => {
    bad(`data_dir: 5
store: mysql://db
recording: { on_failure: log }
segments:
  - { name: s, description: [a] }
targets:
  - oops
`, [
      'wicket.yaml:1: data_dir: expected a string',
      'wicket.yaml:2: store: expected sqlite or a postgres:// URL',
      'wicket.yaml:3: recording.on_failure: expected refuse (wicket never runs a session unrecorded)',
      'wicket.yaml:5: segments[0].description: expected a string',
      'wicket.yaml:7: targets[0]: expected a mapping',
    ]);
  });

  it('several errors at once, sorted by line whatever order the schema checks them in', () => {
    bad(`users:
  - { name: alice, roles: [developer], mail: a@b.c }
roles:
  - { name: developer, allow: [{ segments: [sandbox], access: all }] }
targets:
  - { name: box, segment: sandbox, protocol: shell, command: sh }
listen: { web: ':8080' }
data_dir: ''
`, [
      'wicket.yaml:2: users[0].mail: unknown key',
      "wicket.yaml:4: roles[0].allow[0].access: expected read or write",
      'wicket.yaml:6: targets[0].command: expected a list of strings: [program, arg, ...]',
      'wicket.yaml:7: listen.web: expected host:port',
      'wicket.yaml:8: data_dir: must not be empty',
    ]);
  });

  it('cross-reference errors together, sorted by line', () => {
    bad(`users:
  - { name: alice, roles: [dev] }
${BASE.replace('  - name: payments\n', '  - name: sandbox\n')}`, [
      'wicket.yaml:2: users[0].roles[0]: unknown role "dev"',
      'wicket.yaml:5: segments[1].name: duplicate segment name "sandbox"',
    ]);
  });

  it('an empty file and a top level that is not a mapping', () => {
    bad('# nothing here\n', ['wicket.yaml:1: the file is empty; see examples/wicket.yaml']);
    bad('\n- a\n- b\n', ['wicket.yaml:2: expected a mapping']);
  });
});
