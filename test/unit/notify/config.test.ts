/** `notify:` in wicket.yaml: schema errors with file:line: path, and secret references resolved like target secrets. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/load.js';
import { isWicketError, type WicketError } from '../../../src/errors.js';
import { resolveWebhooks } from '../../../src/notify/config.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function write(text: string, files: Record<string, string> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'wicket-notify-config-'));
  dirs.push(dir);
  for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, name), content);
  const path = join(dir, 'wicket.yaml');
  writeFileSync(path, text);
  return path;
}

function thrown(f: () => unknown): WicketError {
  try {
    f();
  } catch (e) {
    expect(isWicketError(e, 'WICKET_ERR_CONFIG')).toBe(true);
    return e as WicketError;
  }
  throw new Error('expected a WICKET_ERR_CONFIG error');
}

const BASE = `segments:
  - name: payments
notify:
`; // entries start on line 4

describe('notify: schema', () => {
  it('accepts a full entry and defaults format to json', () => {
    const c = loadConfig(write(`${BASE}  - name: soc
    url: https://hooks.example.com/wicket
    events: [segment.locked, session.terminated]
    secret: env:HOOK_SECRET
  - url: http://127.0.0.1:9000/x
    events: ['*']
    format: slack
`), {});
    expect(c.notify).toEqual([
      { name: 'soc', url: 'https://hooks.example.com/wicket', events: ['segment.locked', 'session.terminated'], secret: 'env:HOOK_SECRET', format: 'json' },
      { url: 'http://127.0.0.1:9000/x', events: ['*'], format: 'slack' },
    ]);
  });

  it('no notify key = no webhooks', () => {
    expect(loadConfig(write('segments: [{ name: a }]\n'), {}).notify).toEqual([]);
  });

  it('rejects a bad url, an unknown event kind, an empty list, a bad format and an unknown key, naming each path and line', () => {
    const err = thrown(() => loadConfig(write(`${BASE}  - url: ftp://files.example.com/
    events: [segment.locked]
  - url: https://ok.example.com/
    events: [segment.locked, segment.lockd]
  - url: https://ok.example.com/
    events: []
    format: teams
  - url: not a url
    event: [segment.locked]
  - url: https://user:pw@ok.example.com/
    events: ['*']
`), {}));
    expect(err.message.split('\n')).toEqual([
      'wicket.yaml:4: notify[0].url: expected an http:// or https:// URL, env:NAME or file:PATH',
      `wicket.yaml:7: notify[1].events[1]: expected '*' or one of request.created, request.approved, request.denied, request.cancelled, request.expired, grant.revoked, grant.expired, segment.locked, segment.unlocked, session.denied, session.terminated`,
      `wicket.yaml:9: notify[2].events: expected a list of event kinds or ['*']`,
      'wicket.yaml:10: notify[2].format: expected json or slack',
      'wicket.yaml:11: notify[3].url: expected an http:// or https:// URL, env:NAME or file:PATH',
      'wicket.yaml:11: notify[3].events: required',
      'wicket.yaml:12: notify[3].event: unknown key',
      'wicket.yaml:13: notify[4].url: expected an http:// or https:// URL, env:NAME or file:PATH',
    ]);
  });

  it('rejects notify that is not a list', () => {
    const err = thrown(() => loadConfig(write('notify: https://x.example.com/\n'), {}));
    expect(err.message).toBe('wicket.yaml:1: notify: expected a list of webhooks');
  });
});

describe('notify: secrets (resolved when the broker starts)', () => {
  const yaml = `${BASE}  - name: a
    url: https://a.example.com/
    events: ['*']
    secret: env:HOOK_A
  - name: b
    url: file:slack.url
    events: ['*']
    secret: file:hook.secret
    format: slack
`;

  it('a CLI load does not need them; resolveWebhooks reads env: and file: (trailing newline dropped)', () => {
    const path = write(yaml, { 'hook.secret': 's3cret-b\n', 'slack.url': 'https://hooks.slack.com/services/T/B/X\n' });
    const config = loadConfig(path, {});
    const { specs, warnings } = resolveWebhooks(config, { HOOK_A: 's3cret-a' });
    expect(warnings).toEqual([]);
    expect(specs).toEqual([
      { label: 'a', url: 'https://a.example.com/', events: ['*'], format: 'json', secret: 's3cret-a' },
      { label: 'b', url: 'https://hooks.slack.com/services/T/B/X', events: ['*'], format: 'slack', secret: 's3cret-b' },
    ]);
  });

  it('an unresolvable reference names the path and line, never a value', () => {
    const path = write(yaml, { 'slack.url': 'ftp://nope/secret-looking-value\n' });
    const config = loadConfig(path, {});
    const err = thrown(() => resolveWebhooks(config, {}));
    expect(err.message.split('\n')).toEqual([
      'wicket.yaml:7: notify[0].secret: environment variable HOOK_A is not set',
      'wicket.yaml:9: notify[1].url: the file does not hold an http:// or https:// URL',
      'wicket.yaml:11: notify[1].secret: cannot read file hook.secret: ENOENT',
    ]);
    expect(err.message).not.toContain('secret-looking-value');
  });

  it('a literal secret works with a warning that does not repeat it', () => {
    const config = loadConfig(write(`${BASE}  - url: https://a.example.com/
    events: ['*']
    secret: hunter2-literal
`), {});
    const { specs, warnings } = resolveWebhooks(config, {});
    expect(specs[0]!.secret).toBe('hunter2-literal');
    expect(warnings).toEqual(['wicket.yaml:6: notify[0].secret: literal secret in config file; use env:NAME or file:PATH']);
  });
});
