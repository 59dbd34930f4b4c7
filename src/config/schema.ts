/**
 * The config file's schema (DESIGN.md §3). Every message here is user-facing:
 * the loader prefixes it with `file:line: path:`. Unknown keys are errors so a
 * typo (`segmnt:`) never silently widens or narrows access.
 */
import { z } from 'zod';
import { parseDuration } from '../util/duration.js';

export const PROTOCOLS = ['postgres', 'mysql', 'ssh', 'shell'] as const;
export type Protocol = (typeof PROTOCOLS)[number];

export const DENY_SQL_CLASSES = [
  'ddl',
  'delete_without_where',
  'update_without_where',
  'truncate',
  'copy_program',
] as const;
export type DenySqlClass = (typeof DENY_SQL_CLASSES)[number];

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const HOST_PORT = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):(\d{1,5})$/;

const name = (what: string) =>
  z.string({ error: `expected a ${what} name` }).regex(NAME, {
    error: `expected a ${what} name: letters, digits, '.', '_' or '-', at most 64 characters`,
  });

const hostPort = z
  .string({ error: 'expected host:port' })
  .refine((s) => {
    const m = HOST_PORT.exec(s);
    return m !== null && Number(m[1]) <= 65535;
  }, { error: 'expected host:port' });

const duration = z
  .string({ error: 'expected a duration such as 30m, 2h or 1d' })
  .refine((s) => parseDuration(s) !== null, { error: 'expected a duration such as 30m, 2h or 1d' });

/** `env:NAME`, `file:PATH`, or a literal (accepted with a warning by the loader). */
const secret = z.string({ error: 'expected a secret: env:NAME, file:PATH or a literal' }).min(1, {
  error: 'expected a secret: env:NAME, file:PATH or a literal',
});

const segmentOrStar = z.union([z.literal('*'), name('segment')], {
  error: "expected a segment name or '*'",
});

const APPROVALS = 'expected a whole number from 1 to 5';

/** Event kinds a `notify:` webhook can subscribe to (derived from the audit log, src/notify/events.ts). */
export const NOTIFY_EVENTS = [
  'request.created',
  'request.approved',
  'request.denied',
  'request.cancelled',
  'request.expired',
  'grant.revoked',
  'grant.expired',
  'segment.locked',
  'segment.unlocked',
  'session.denied',
  'session.terminated',
] as const;
export type NotifyEvent = (typeof NOTIFY_EVENTS)[number];
export const NOTIFY_FORMATS = ['json', 'slack'] as const;

const NOTIFY_URL = 'expected an http:// or https:// URL, env:NAME or file:PATH';
const NOTIFY_EVENT = `expected '*' or one of ${NOTIFY_EVENTS.join(', ')}`;

/** A literal http(s) URL with a host (credentials in it are refused: use env:/file: for a secret URL). */
export function isWebhookUrl(s: string): boolean {
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    return false;
  }
  return (u.protocol === 'http:' || u.protocol === 'https:') && u.hostname !== '' && u.username === '' && u.password === '';
}

/**
 * One webhook. `url` may itself be a secret reference (Slack's incoming
 * webhook URLs are credentials); src/config/secrets.ts resolves it and `secret`.
 */
const webhook = z.strictObject({
  name: name('webhook').optional(),
  url: z.string({ error: NOTIFY_URL })
    .refine((s) => s.startsWith('env:') || s.startsWith('file:') || isWebhookUrl(s), { error: NOTIFY_URL }),
  events: z.array(z.union([z.literal('*'), z.enum(NOTIFY_EVENTS)], { error: NOTIFY_EVENT }), {
    error: `expected a list of event kinds or ['*']`,
  }).min(1, { error: `expected a list of event kinds or ['*']` }),
  secret: secret.optional(),
  format: z.enum(NOTIFY_FORMATS, { error: 'expected json or slack' }).default('json'),
});

const segment = z.strictObject({
  name: name('segment'),
  description: z.string().optional(),
});

const target = z.strictObject({
  name: name('target'),
  segment: name('segment'),
  protocol: z.enum(PROTOCOLS, { error: `expected one of ${PROTOCOLS.join(', ')}` }),
  description: z.string().optional(),
  address: hostPort.optional(),
  database: z.string().min(1).optional(),
  databases: z.array(z.string().min(1)).optional(),
  /** Upstream account for postgres/mysql/ssh; the local account to run as for shell. */
  user: z.string().min(1).optional(),
  password: secret.optional(),
  private_key: secret.optional(),
  host_key: z.string().min(1).optional(),
  known_hosts: z.string().min(1).optional(),
  tls: z.enum(['disable', 'prefer', 'require', 'verify'], {
    error: 'expected one of disable, prefer, require, verify',
  }).optional(),
  ca: secret.optional(),
  command: z.array(z.string().min(1), { error: 'expected a list of strings: [program, arg, ...]' })
    .min(1, { error: 'expected a list of strings: [program, arg, ...]' }).optional(),
  cwd: z.string().min(1).optional(),
});

const rule = z.strictObject({
  segments: z.array(segmentOrStar, {
    error: "expected a list of segment names or '*'",
  }).min(1, { error: "expected a list of segment names or '*'" }),
  targets: z.array(name('target'), { error: 'expected a list of target names' }).optional(),
  protocols: z.array(z.enum(PROTOCOLS, { error: `expected one of ${PROTOCOLS.join(', ')}` })).optional(),
  access: z.enum(['read', 'write'], { error: 'expected read or write' }).optional(),
  approval: z.enum(['required', 'none'], { error: 'expected required or none' }).optional(),
  approvals: z.number({ error: APPROVALS })
    .int({ error: APPROVALS }).min(1, { error: APPROVALS }).max(5, { error: APPROVALS }).optional(),
  max_duration: duration.optional(),
  deny_sql: z.array(z.enum(DENY_SQL_CLASSES, { error: `expected one of ${DENY_SQL_CLASSES.join(', ')}` })).optional(),
  forwarding: z.boolean({ error: 'expected true or false' }).optional(),
  /** MySQL `LOAD DATA LOCAL INFILE` (the client uploads a file from its machine); default false. */
  local_infile: z.boolean({ error: 'expected true or false' }).optional(),
});

const role = z.strictObject({
  name: name('role'),
  description: z.string().optional(),
  allow: z.array(rule).optional(),
  audit: z.boolean({ error: 'expected true or false' }).optional(),
  admin: z.boolean({ error: 'expected true or false' }).optional(),
  approve: z.array(segmentOrStar, { error: "expected a list of segment names or '*'" }).optional(),
});

const sshKey = z.string().regex(/^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com) [A-Za-z0-9+/=]+( .*)?$/, {
  error: 'expected an OpenSSH public key line: "ssh-ed25519 AAAA... comment"',
});

const user = z.strictObject({
  name: name('user'),
  roles: z.array(name('role'), { error: 'expected a list of role names' }).default([]),
  ssh_keys: z.array(sshKey, { error: 'expected a list of OpenSSH public key lines' }).optional(),
  email: z.string().optional(),
});

export const configSchema = z.strictObject({
  data_dir: z.string().min(1).default('./data'),
  store: z.string({ error: 'expected sqlite or a postgres:// URL' })
    .refine((s) => s === 'sqlite' || /^postgres(ql)?:\/\//.test(s), { error: 'expected sqlite or a postgres:// URL' })
    .default('sqlite'),
  listen: z.strictObject({
    postgres: hostPort.optional(),
    mysql: hostPort.optional(),
    ssh: hostPort.optional(),
    web: hostPort.optional(),
  }).default({}),
  recording: z.strictObject({
    on_failure: z.literal('refuse', { error: 'expected refuse (wicket never runs a session unrecorded)' }).default('refuse'),
  }).default({ on_failure: 'refuse' }),
  limits: z.strictObject({
    max_message_bytes: z.number({ error: 'expected a whole number of bytes, at least 1024' })
      .int({ error: 'expected a whole number of bytes, at least 1024' })
      .min(1024, { error: 'expected a whole number of bytes, at least 1024' }).optional(),
    sessions_per_user: z.number({ error: 'expected a whole number, at least 1' })
      .int({ error: 'expected a whole number, at least 1' })
      .min(1, { error: 'expected a whole number, at least 1' }).optional(),
    pending_request_ttl: duration.optional(),
  }).default({}),
  segments: z.array(segment).default([]),
  targets: z.array(target).default([]),
  roles: z.array(role).default([]),
  users: z.array(user).default([]),
  notify: z.array(webhook, { error: 'expected a list of webhooks' }).default([]),
});

export type ConfigInput = z.input<typeof configSchema>;
export type RawConfig = z.output<typeof configSchema>;
export type SegmentConfig = RawConfig['segments'][number];
export type TargetConfig = RawConfig['targets'][number];
export type RoleConfig = RawConfig['roles'][number];
export type RuleConfig = NonNullable<RoleConfig['allow']>[number];
export type UserConfig = RawConfig['users'][number];
export type NotifyConfig = RawConfig['notify'][number];

/** The validated config with derived lookups and absolute paths. */
export interface Config extends RawConfig {
  /** Absolute path of the file it was read from. */
  readonly path: string;
  /** sha256 hex of the file's bytes, logged in the audit on load and reload. */
  readonly hash: string;
  /** data_dir resolved against the config file's folder. */
  readonly dataDir: string;
  readonly warnings: readonly string[];
}
