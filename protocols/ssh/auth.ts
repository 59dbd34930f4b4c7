/**
 * SSH user authentication for one connection: the login name is
 * `<wicket user>@<target>` (split at the last `@` or `#`), and the person
 * proves who they are with one of their `ssh_keys` (signature verified here:
 * ssh2 hands the signature over unchecked), their wicket password or a
 * personal token (method `password`, or `keyboard-interactive` with one
 * hidden prompt). `none` and empty passwords never succeed. Failures are
 * throttled per user and per source host as for the database adapters.
 *
 * The target is mostly not checked here: policy (unknown target, denied,
 * locked) is decided when a channel opens, so the person sees the reason as
 * a message instead of a bare "Permission denied". The exception is a target
 * that needs an approved request: the person is asked for a reason right in
 * the login (keyboard-interactive, after their key or password was accepted:
 * partial success), the request is created, and the login waits
 * ("request #17 for web-1 created, waiting for approval (Ctrl-C to cancel)")
 * until an approver decides. Approved: the login completes and the session
 * runs under the new grant. Denied, expired or Ctrl-C: the login ends (a
 * disconnect while waiting cancels the request). The wait is capped at
 * INLINE_WAIT_MS; the request itself stays pending.
 */
import ssh2 from '../../src/util/ssh2.js';
import type { AuthContext, KeyboardAuthContext, ParsedKey } from 'ssh2';
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
  /** The personal access token used as the password, if one was (its revocation ends the sessions). */
  readonly tokenId: string | null;
}

const METHODS: ('publickey' | 'password' | 'keyboard-interactive')[] = ['publickey', 'password', 'keyboard-interactive'];
/** Longest an SSH login waits for an approval; the request stays pending after that. */
export const INLINE_WAIT_MS = 30 * 60_000;
/** The duration asked for inline: the rule's max_duration, at most this. */
const INLINE_DURATION_MS = 60 * 60_000;
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
  /** Proved who they are, but the target needs an approved request: the next keyboard-interactive round asks for it. */
  private gated: { who: Authenticated; keys: string[]; maxDurationMs: number | null } | null = null;
  private readonly waiting = new AbortController();
  private pendingRequest: number | null = null;

  constructor(
    private readonly deps: SshDeps,
    private readonly addr: string,
    /** Called when the connection should be closed (too many failures). */
    private readonly onGiveUp: (why: string) => void,
    /** Called with true while the login waits for an approval (no auth timeout then), false after. */
    private readonly onWaiting: (waiting: boolean) => void = () => undefined,
  ) {}

  /** The connection closed: stop waiting and withdraw a request made in this login. */
  dispose(): void {
    this.waiting.abort();
    const id = this.pendingRequest;
    const who = this.gated?.who;
    this.pendingRequest = null;
    if (id !== null && who && this.deps.access) {
      void this.deps.access.cancel(id, who.user).catch(() => undefined);
    }
  }

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
    if (this.gated && ctx.method === 'keyboard-interactive' && this.gated.who.user === user && this.gated.who.target === target) {
      return this.requestInline(ctx, this.gated);
    }
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
        return this.ok(ctx, { user, target, method: 'publickey', key: match.label, tokenId: null }, keys);
      }
      case 'password':
        return this.secret(ctx, user, target, ctx.password, keys);
      case 'keyboard-interactive':
        if (this.gated) return ctx.reject(['keyboard-interactive'], true);
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
    return this.ok(ctx, { user, target, method: r.method, key: null, tokenId: r.tokenId }, keys);
  }

  private async ok(ctx: AuthContext, who: Authenticated, keys: string[]): Promise<void> {
    this.deps.throttle.succeed(keys);
    if (this.deps.access) {
      const protocol = this.deps.config().targets.find((t) => t.name === who.target)?.protocol === 'shell' ? 'shell' : 'ssh';
      const d = await this.deps.broker.authorize(who.user, who.target, protocol);
      if (d.type === 'deny' && d.reason === 'approval_required') {
        // Partial success: the key or password was right; keyboard-interactive comes next for the request.
        this.gated = { who, keys, maxDurationMs: d.approval?.maxDurationMs ?? null };
        return ctx.reject(['keyboard-interactive'], true);
      }
    }
    this.accepted(ctx, who);
  }

  private accepted(ctx: AuthContext, who: Authenticated): void {
    this.result = who;
    this.deps.audit.append({
      ts: Date.now(), kind: 'auth.ok', actor: who.user, target: who.target,
      data: { protocol: 'ssh', clientAddr: this.addr, method: who.method, ...(who.key ? { key: who.key } : {}) },
    });
    ctx.accept();
  }

  /** The inline request: a reason, the request, the wait, then accept or reject with the outcome shown. */
  private async requestInline(ctx: KeyboardAuthContext, g: NonNullable<SshAuth['gated']>): Promise<void> {
    const access = this.deps.access!;
    const { who } = g;
    const ask = (prompts: { prompt: string; echo: boolean }[], instructions: string): Promise<string[]> =>
      new Promise((resolve) => ctx.prompt(prompts, 'wicket', instructions, (answers) => resolve(answers)));
    const say = async (text: string): Promise<void> => void (await ask([], text));
    /** The dialog is over without access: say why, then end the connection (a bare rejection would let the client retry). */
    const end = async (text: string): Promise<void> => {
      await say(text);
      ctx.reject([]);
      this.onGiveUp(`login ended: ${text}`);
    };
    const durationMs = Math.min(g.maxDurationMs ?? INLINE_DURATION_MS, INLINE_DURATION_MS);
    const answers = await ask(
      [{ prompt: 'Reason: ', echo: true }],
      `access to ${who.target} needs an approved request. Give a reason to request ${Math.round(durationMs / 60_000)} min of access now (Ctrl-C to stop).`,
    );
    const reason = (answers[0] ?? '').trim();
    if (!reason) return end('no reason given; no request was made');
    let id: number;
    try {
      id = (await access.request({ user: who.user, target: who.target, durationMs, reason })).id;
    } catch (err) {
      return end(`request refused: ${err instanceof Error ? err.message : String(err)}`);
    }
    this.pendingRequest = id;
    this.onWaiting(true);
    // The client shows this and answers at once (no prompts); the login then waits here.
    await say(`request #${id} for ${who.target} created, waiting for approval (Ctrl-C to cancel)`);
    const timeout = AbortSignal.timeout(INLINE_WAIT_MS);
    const signal = AbortSignal.any([this.waiting.signal, timeout]);
    let outcome: Awaited<ReturnType<typeof access.waitDecided>> | null = null;
    try {
      outcome = await access.waitDecided(id, signal);
    } catch {
      outcome = null;
    } finally {
      this.onWaiting(false);
    }
    if (this.waiting.signal.aborted) return; // the connection is gone (dispose cancelled the request)
    this.pendingRequest = null;
    if (!outcome) return end(`request #${id} is still pending after ${INLINE_WAIT_MS / 60_000} min; connect again once it is approved`);
    if (outcome.state !== 'approved') {
      const last = outcome.decisions[outcome.decisions.length - 1];
      const by = last && outcome.state === 'denied' ? ` by ${last.by}${last.comment ? `: ${last.comment}` : ''}` : '';
      return end(`request #${id} was ${outcome.state}${by}`);
    }
    this.gated = null;
    this.accepted(ctx, who);
  }

  private fail(user: string, target: string, reason: string, counts: boolean): void {
    if (counts) this.deps.throttle.fail(throttleKeys(user, this.addr.replace(/:\d+$/, '')), Date.now());
    this.deps.audit.append({ ts: Date.now(), kind: 'auth.fail', actor: user, target, data: { protocol: 'ssh', clientAddr: this.addr, reason } });
    if (++this.failures >= MAX_FAILURES) this.onGiveUp('too many authentication failures');
  }
}
