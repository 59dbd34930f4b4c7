/**
 * SSH user authentication for one connection: the login name is
 * `<wicket user>@<target>` (split at the last `@` or `#`), and the person
 * proves who they are with one of their `ssh_keys` (signature verified here:
 * ssh2 hands the signature over unchecked), their wicket password or a
 * personal token (method `password`, or `keyboard-interactive` with one
 * hidden prompt). `none` and empty passwords never succeed. Failures are
 * throttled per user and per source host as for the database adapters.
 *
 * The target is not checked here: policy (unknown target, denied, locked,
 * approval required) is decided when a channel opens, so the person sees the
 * reason as a message instead of a bare "Permission denied".
 */
import ssh2 from '../../src/util/ssh2.js';
import type { AuthContext, ParsedKey } from 'ssh2';
import { authenticateSecret } from '../../src/auth/authenticate.js';
import { throttleKeys } from '../../src/auth/throttle.js';
import type { SessionRequest } from '../../src/session.js';
import { splitLogin } from '../../src/util/login.js';
import type { SshDeps } from './deps.js';

export type SshAuthMethod = Extract<SessionRequest['authMethod'], 'password' | 'token' | 'publickey'>;

export interface Authenticated {
  readonly user: string;
  readonly target: string;
  readonly method: SshAuthMethod;
  /** The key's fingerprint-ish label (its comment in the config) for publickey logins. */
  readonly key: string | null;
}

const METHODS: ('publickey' | 'password' | 'keyboard-interactive')[] = ['publickey', 'password', 'keyboard-interactive'];
/** Failed attempts (not key probes) one connection may make before it is closed. */
export const MAX_FAILURES = 6;

/** The user's configured keys, parsed once per config object. */
const keyCache = new WeakMap<object, Map<string, { key: ParsedKey; label: string }[]>>();

function userKeys(deps: SshDeps, user: string): { key: ParsedKey; label: string }[] {
  const config = deps.config();
  let byUser = keyCache.get(config);
  if (!byUser) keyCache.set(config, (byUser = new Map()));
  let keys = byUser.get(user);
  if (!keys) {
    keys = [];
    for (const line of config.users.find((u) => u.name === user)?.ssh_keys ?? []) {
      const parsed = ssh2.utils.parseKey(line);
      if (parsed instanceof Error) continue; // the config checks report unparseable keys
      const key = Array.isArray(parsed) ? parsed[0] : parsed;
      if (key) keys.push({ key, label: line.split(' ').slice(2).join(' ') || `${line.split(' ')[0]} key` });
    }
    byUser.set(user, keys);
  }
  return keys;
}

export class SshAuth {
  private failures = 0;
  private result: Authenticated | null = null;

  constructor(
    private readonly deps: SshDeps,
    private readonly addr: string,
    /** Called when the connection should be closed (too many failures). */
    private readonly onGiveUp: (why: string) => void,
  ) {}

  get authenticated(): Authenticated | null {
    return this.result;
  }

  handle(ctx: AuthContext): void {
    void this.check(ctx).catch((err: unknown) => {
      this.deps.log(`ssh ${this.addr}: authentication error: ${err instanceof Error ? err.message : String(err)}`);
      try {
        ctx.reject(METHODS);
      } catch {
        // the connection is gone
      }
    });
  }

  private async check(ctx: AuthContext): Promise<void> {
    const login = splitLogin(ctx.username);
    if (ctx.method === 'none' || ctx.method === 'hostbased') return ctx.reject(METHODS);
    if (!login) {
      // No target in the name: tell the person how to log in, in the one place OpenSSH shows text during auth.
      if (ctx.method === 'keyboard-interactive') {
        return ctx.prompt([], 'wicket', `log in as <wicket user>@<target>, e.g. ssh -p PORT alice@web-1@HOST (got "${ctx.username.slice(0, 100)}")`, () => ctx.reject(METHODS));
      }
      return ctx.reject(METHODS);
    }
    const { user, target } = login;
    const keys = throttleKeys(user, this.addr.replace(/:\d+$/, ''));
    const now = Date.now();
    if (this.deps.throttle.retryAfter(keys, now) > 0) {
      this.fail(user, target, 'throttled', false);
      return ctx.reject(METHODS);
    }
    const known = this.deps.config().users.some((u) => u.name === user);
    switch (ctx.method) {
      case 'publickey': {
        const match = known ? userKeys(this.deps, user).find((k) => k.key.getPublicSSH().equals(ctx.key.data)) : undefined;
        // A key the user does not have is a probe (clients offer every key they hold): not a failure.
        if (!match) return ctx.reject(METHODS);
        if (!ctx.signature || !ctx.blob) return ctx.accept(); // "would this key do?" - yes
        if (match.key.verify(ctx.blob, ctx.signature, ctx.hashAlgo) !== true) {
          this.fail(user, target, 'bad signature', true);
          return ctx.reject(METHODS);
        }
        return this.ok(ctx, { user, target, method: 'publickey', key: match.label }, keys);
      }
      case 'password':
        return this.secret(ctx, user, target, ctx.password, keys);
      case 'keyboard-interactive':
        return new Promise<void>((resolve) => {
          ctx.prompt([{ prompt: `Password or token for ${user}: `, echo: false }], 'wicket', '', (answers) => {
            void this.secret(ctx, user, target, answers[0] ?? '', keys).then(resolve, (err: unknown) => {
              this.deps.log(`ssh ${this.addr}: authentication error: ${err instanceof Error ? err.message : String(err)}`);
              ctx.reject(METHODS);
              resolve();
            });
          });
        });
    }
  }

  private async secret(ctx: AuthContext, user: string, target: string, secret: string, keys: string[]): Promise<void> {
    const r = await authenticateSecret(this.deps.config(), this.deps.store, user, secret, Date.now());
    if (!r.ok) {
      this.fail(user, target, r.why === 'unknown_user' ? 'unknown user' : r.why === 'no_password' ? 'no password set' : 'bad password', true);
      return ctx.reject(METHODS);
    }
    return this.ok(ctx, { user, target, method: r.method, key: null }, keys);
  }

  private ok(ctx: AuthContext, who: Authenticated, keys: string[]): void {
    this.deps.throttle.succeed(keys);
    this.result = who;
    this.deps.audit.append({
      ts: Date.now(), kind: 'auth.ok', actor: who.user, target: who.target,
      data: { protocol: 'ssh', clientAddr: this.addr, method: who.method, ...(who.key ? { key: who.key } : {}) },
    });
    ctx.accept();
  }

  private fail(user: string, target: string, reason: string, counts: boolean): void {
    if (counts) this.deps.throttle.fail(throttleKeys(user, this.addr.replace(/:\d+$/, '')), Date.now());
    this.deps.audit.append({ ts: Date.now(), kind: 'auth.fail', actor: user, target, data: { protocol: 'ssh', clientAddr: this.addr, reason } });
    if (++this.failures >= MAX_FAILURES) this.onGiveUp('too many authentication failures');
  }
}
