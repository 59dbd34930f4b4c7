/** `wicket user passwd NAME`, `wicket user list`. Users are declared in the config; the store keeps their secrets. */
import type { Command } from 'commander';
import { WicketError } from '../errors.js';
import { makePasswordCredential, passwordProblem } from '../auth/password.js';
import { userScramSalt } from '../auth/tokens.js';
import { print, withContext, type Context, type GlobalOptions } from './context.js';
import { readNewSecret } from './prompt.js';

export function requireConfigUser(ctx: Context, name: string): void {
  if (!ctx.config.users.some((u) => u.name === name)) {
    throw new WicketError('WICKET_ERR_UNKNOWN_USER', `unknown user "${name}": add it under users: in ${ctx.config.path}`);
  }
}

export function registerUser(program: Command): void {
  const user = program.command('user').description('manage users\u2019 passwords');
  user
    .command('passwd')
    .argument('<name>')
    .description('set a password (reads stdin when not a TTY)')
    .action(async (name: string, _o: unknown, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      await withContext(g, async (ctx) => {
        requireConfigUser(ctx, name);
        const secret = await readNewSecret('password');
        const problem = passwordProblem(secret);
        if (problem) throw new WicketError('WICKET_ERR_USAGE', problem);
        // Keep the user's SCRAM salt so existing tokens keep working with SCRAM.
        const cred = await makePasswordCredential(secret, await userScramSalt(ctx.store, name));
        await ctx.store.upsertUser(name, cred, false, ctx.now());
        await ctx.record('user.passwd', { user: name });
        print(ctx.json, `password set for ${name}`, { user: name, ok: true });
      });
    });
  user
    .command('list')
    .description('users in the config, with their roles and whether a password is set')
    .action(async (_o: unknown, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      await withContext(g, async (ctx) => {
        const stored = new Map((await ctx.store.listUsers()).map((u) => [u.name, u]));
        const rows = ctx.config.users.map((u) => ({
          name: u.name,
          roles: u.roles,
          password: stored.get(u.name)?.password ? 'set' : 'not set',
          sshKeys: u.ssh_keys?.length ?? 0,
        }));
        print(ctx.json, rows.map((r) => `${r.name.padEnd(16)} roles=${r.roles.join(',') || '-'}  password ${r.password}  ssh_keys=${r.sshKeys}`).join('\n'), rows);
      });
    });
}
