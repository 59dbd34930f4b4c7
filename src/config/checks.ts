/**
 * Checks that span fields or entries, run after the schema accepted the
 * shape: unique names, references that must resolve (segments, roles,
 * targets), and which target fields each protocol needs or ignores. A field
 * a protocol ignores is an error, not a shrug: it is almost always a typo'd
 * target or a wrong protocol.
 */
import type { Protocol, RawConfig, TargetConfig } from './schema.js';
import type { ConfigProblem } from './locate.js';

type TargetField = keyof TargetConfig;

/** Fields that only some protocols use; absent here = every protocol may set it. */
const ONLY_FOR: Partial<Record<TargetField, readonly Protocol[]>> = {
  address: ['postgres', 'mysql', 'ssh'],
  password: ['postgres', 'mysql', 'ssh'],
  database: ['postgres', 'mysql'],
  databases: ['postgres', 'mysql'],
  tls: ['postgres', 'mysql'],
  ca: ['postgres', 'mysql'],
  private_key: ['ssh'],
  host_key: ['ssh'],
  known_hosts: ['ssh'],
  command: ['shell'],
  cwd: ['shell'],
};

const REQUIRED: Record<Protocol, readonly TargetField[]> = {
  postgres: ['address', 'user'],
  mysql: ['address', 'user'],
  ssh: ['address', 'user'],
  shell: ['command'],
};

function protocolList(ps: readonly Protocol[]): string {
  return ps.length === 1 ? ps[0]! : `${ps.slice(0, -1).join(', ')} and ${ps[ps.length - 1]!}`;
}

function duplicates(
  out: ConfigProblem[],
  list: readonly { name: string }[],
  key: string,
  what: string,
): Set<string> {
  const seen = new Set<string>();
  list.forEach((item, i) => {
    if (seen.has(item.name)) out.push({ path: [key, i, 'name'], message: `duplicate ${what} name "${item.name}"` });
    seen.add(item.name);
  });
  return seen;
}

function checkTarget(out: ConfigProblem[], t: TargetConfig, i: number, segments: Set<string>): void {
  if (!segments.has(t.segment)) {
    out.push({ path: ['targets', i, 'segment'], message: `unknown segment "${t.segment}"` });
  }
  for (const field of REQUIRED[t.protocol]) {
    if (t[field] === undefined) {
      out.push({ path: ['targets', i, field], message: `required for ${t.protocol} targets` });
    }
  }
  if (t.protocol === 'ssh') {
    if (t.private_key === undefined && t.password === undefined) {
      out.push({ path: ['targets', i, 'private_key'], message: 'ssh targets need private_key or password' });
    }
    if (t.host_key === undefined && t.known_hosts === undefined) {
      out.push({ path: ['targets', i, 'host_key'], message: 'ssh targets need host_key or known_hosts' });
    }
  }
  for (const [field, allowed] of Object.entries(ONLY_FOR) as [TargetField, readonly Protocol[]][]) {
    if (t[field] !== undefined && !allowed.includes(t.protocol)) {
      out.push({ path: ['targets', i, field], message: `only valid for ${protocolList(allowed)} targets` });
    }
  }
}

/** Every cross-field problem in an already schema-valid config. */
export function crossCheck(config: RawConfig): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  const segments = duplicates(out, config.segments, 'segments', 'segment');
  const targets = duplicates(out, config.targets, 'targets', 'target');
  const roles = duplicates(out, config.roles, 'roles', 'role');
  duplicates(out, config.users, 'users', 'user');

  config.targets.forEach((t, i) => checkTarget(out, t, i, segments));

  config.roles.forEach((role, r) => {
    (role.allow ?? []).forEach((rule, k) => {
      rule.segments.forEach((s, j) => {
        if (s !== '*' && !segments.has(s)) {
          out.push({ path: ['roles', r, 'allow', k, 'segments', j], message: `unknown segment "${s}"` });
        }
      });
      (rule.targets ?? []).forEach((t, j) => {
        if (!targets.has(t)) {
          out.push({ path: ['roles', r, 'allow', k, 'targets', j], message: `unknown target "${t}"` });
        }
      });
    });
    (role.approve ?? []).forEach((s, j) => {
      if (s !== '*' && !segments.has(s)) {
        out.push({ path: ['roles', r, 'approve', j], message: `unknown segment "${s}"` });
      }
    });
  });

  config.users.forEach((u, i) => {
    u.roles.forEach((name, j) => {
      if (!roles.has(name)) out.push({ path: ['users', i, 'roles', j], message: `unknown role "${name}"` });
    });
  });
  return out;
}
