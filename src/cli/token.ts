/** `wicket token create NAME [--ttl 8h]`, `token list NAME`, `token revoke ID`. */
import type { Command } from 'commander';
import { WicketError } from '../errors.js';
import { createToken } from '../auth/tokens.js';
import { parseDuration } from '../util/duration.js';
import { print, withContext, type GlobalOptions } from './context.js';
import { requireConfigUser } from './user.js';

const iso = (ms: number | null): string => (ms === null ? 'never' : new Date(ms).toISOString());

export function registerToken(program: Command): void {
  const token = program.command('token').description('personal access tokens');
  token
    .command('create')
    .argument('<user>')
    .option('--ttl <duration>', 'lifetime, e.g. 8h, 30d', '8h')
    .option('--name <label>', 'a label to recognise it by')
    .description('create a token (printed once)')
    .action(async (name: string, opts: { ttl: string; name?: string }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const ttlMs = parseDuration(opts.ttl);
      if (ttlMs === null) throw new WicketError('WICKET_ERR_USAGE', `--ttl: expected a duration such as 8h or 30d, got "${opts.ttl}"`);
      await withContext(g, async (ctx) => {
        requireConfigUser(ctx, name);
        const { token: secret, record } = await createToken(ctx.store, name, { name: opts.name ?? null, ttlMs, now: ctx.now() });
        await ctx.record('token.create', { user: name, tokenId: record.id, name: record.name, expiresAt: record.expiresAt });
        print(ctx.json, `${secret}\n(token ${record.id} for ${name}, expires ${iso(record.expiresAt)}; it is shown only now)`, {
          token: secret, id: record.id, user: name, expiresAt: iso(record.expiresAt),
        });
      });
    });
  token
    .command('list')
    .argument('<user>')
    .description("a user's tokens (never the secrets)")
    .action(async (name: string, _o: unknown, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      await withContext(g, async (ctx) => {
        const now = ctx.now();
        const rows = (await ctx.store.listTokens(name)).map((t) => ({
          id: t.id, name: t.name, createdAt: iso(t.createdAt), expiresAt: iso(t.expiresAt), lastUsedAt: t.lastUsedAt === null ? null : iso(t.lastUsedAt),
          state: t.revokedAt !== null ? 'revoked' : t.expiresAt !== null && t.expiresAt <= now ? 'expired' : 'active',
        }));
        print(ctx.json, rows.length ? rows.map((r) => `${r.id}  ${r.state.padEnd(7)}  expires ${r.expiresAt}  ${r.name ?? ''}`).join('\n') : `no tokens for ${name}`, rows);
      });
    });
  token
    .command('revoke')
    .argument('<id>')
    .description('revoke a token now')
    .action(async (id: string, _o: unknown, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      await withContext(g, async (ctx) => {
        const t = await ctx.store.getToken(id);
        if (!t) throw new WicketError('WICKET_ERR_NOT_FOUND', `no token ${id}`);
        await ctx.store.revokeToken(id, ctx.now());
        await ctx.record('token.revoke', { user: t.user, tokenId: id });
        print(ctx.json, `revoked token ${id} of ${t.user}`, { id, user: t.user, revoked: true });
      });
    });
}
