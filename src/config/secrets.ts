/**
 * Secret references in target fields and in `notify[]`: `env:NAME` (from the
 * environment), `file:PATH` (relative to the config file's folder), or a
 * literal (accepted with a warning). Target secrets are resolved at load, so
 * a bad reference fails at start, not at the first connection; `notify[]`
 * ones when the broker starts (src/notify/config.ts), so a CLI command never
 * needs a webhook's secret. Messages name the reference, never the value.
 */
import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { isWebhookUrl, type NotifyConfig, type TargetConfig } from './schema.js';
import type { ConfigProblem } from './locate.js';

export const SECRET_FIELDS = ['password', 'private_key', 'ca'] as const;
export type SecretField = (typeof SECRET_FIELDS)[number];

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export interface SecretResult {
  readonly targets: TargetConfig[];
  readonly problems: ConfigProblem[];
  /** Paths of fields holding literal secrets (the loader turns them into warnings). */
  readonly literals: ConfigProblem[];
}

/** The errno code of a failed fs call (`ENOENT`), never its message (which repeats the path). */
export function fsCode(e: unknown): string {
  if (e !== null && typeof e === 'object' && 'code' in e && typeof e.code === 'string') return e.code;
  return 'unreadable';
}

/** `{ value }` when resolved; `{ problem }` when not; `{ literal }` when the text is the secret itself. */
type Resolved = { value: string } | { problem: string } | { literal: true; value: string };

/** Target secret fields plus the two of `notify[]` (`secret`, and `url` when given as env:/file:). */
type AnySecretField = SecretField | 'secret' | 'url';

function resolveOne(field: AnySecretField, ref: string, baseDir: string, env: NodeJS.ProcessEnv): Resolved {
  if (ref.startsWith('env:')) {
    const name = ref.slice(4);
    if (!ENV_NAME.test(name)) return { problem: 'expected env:NAME with NAME made of letters, digits and _' };
    const value = env[name];
    if (value === undefined) return { problem: `environment variable ${name} is not set` };
    if (value === '') return { problem: `environment variable ${name} is empty` };
    return { value };
  }
  if (ref.startsWith('file:')) {
    const path = ref.slice(5);
    if (path === '') return { problem: 'expected file:PATH' };
    let text: string;
    try {
      text = readFileSync(isAbsolute(path) ? path : resolve(baseDir, path), 'utf8');
    } catch (e) {
      return { problem: `cannot read file ${path}: ${fsCode(e)}` };
    }
    // Password, HMAC-secret and URL files conventionally end with a newline that is not part of the value.
    return { value: field === 'password' || field === 'secret' || field === 'url' ? text.replace(/\r?\n$/, '') : text };
  }
  if (field === 'ca') {
    // A CA certificate is public, so an inline PEM is fine; anything else is
    // most likely a path missing its `file:` prefix.
    if (ref.trimStart().startsWith('-----BEGIN ')) return { value: ref };
    return { problem: 'expected file:PATH, env:NAME or an inline PEM certificate' };
  }
  if (field === 'url') return { value: ref }; // a plain URL, validated by the schema
  return { literal: true, value: ref };
}

/** Returns copies of the targets with every secret reference replaced by its value. */
export function resolveSecrets(
  targets: readonly TargetConfig[],
  baseDir: string,
  env: NodeJS.ProcessEnv,
): SecretResult {
  const problems: ConfigProblem[] = [];
  const literals: ConfigProblem[] = [];
  const out = targets.map((t, i) => {
    const copy: TargetConfig = { ...t };
    for (const field of SECRET_FIELDS) {
      const ref = t[field];
      if (ref === undefined) continue;
      const r = resolveOne(field, ref, baseDir, env);
      const path = ['targets', i, field];
      if ('problem' in r) {
        problems.push({ path, message: r.problem });
        continue;
      }
      if ('literal' in r) {
        literals.push({ path, message: 'literal secret in config file; use env:NAME or file:PATH' });
      }
      copy[field] = r.value;
    }
    return copy;
  });
  return { targets: out, problems, literals };
}

export interface NotifySecretResult {
  readonly notify: NotifyConfig[];
  readonly problems: ConfigProblem[];
  /** Paths of `notify[].secret` fields holding literal secrets (warnings). */
  readonly literals: ConfigProblem[];
}

/**
 * Like resolveSecrets, for `notify[]`: `secret` (env:/file:/literal with a
 * warning) and `url` when it is an env:/file: reference (a Slack incoming
 * webhook URL is itself a credential); a referenced URL must be http(s).
 */
export function resolveNotifySecrets(
  notify: readonly NotifyConfig[],
  baseDir: string,
  env: NodeJS.ProcessEnv,
): NotifySecretResult {
  const problems: ConfigProblem[] = [];
  const literals: ConfigProblem[] = [];
  const out = notify.map((n, i) => {
    const copy: NotifyConfig = { ...n };
    const url = resolveOne('url', n.url, baseDir, env);
    if ('problem' in url) problems.push({ path: ['notify', i, 'url'], message: url.problem });
    else if (url.value !== n.url && !isWebhookUrl(url.value.trim())) {
      problems.push({ path: ['notify', i, 'url'], message: `${n.url.startsWith('env:') ? 'the environment variable' : 'the file'} does not hold an http:// or https:// URL` });
    } else copy.url = url.value.trim();
    if (n.secret !== undefined) {
      const r = resolveOne('secret', n.secret, baseDir, env);
      if ('problem' in r) problems.push({ path: ['notify', i, 'secret'], message: r.problem });
      else {
        if ('literal' in r) literals.push({ path: ['notify', i, 'secret'], message: 'literal secret in config file; use env:NAME or file:PATH' });
        copy.secret = r.value;
      }
    }
    return copy;
  });
  return { notify: out, problems, literals };
}
