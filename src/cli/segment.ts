/** `wicket segment lock NAME --reason TEXT` / `unlock NAME`: every broker ends the segment's sessions within a second. */
import type { Command } from 'commander';
import { WicketError } from '../errors.js';
import { lockSegment, unlockSegment, type LockdownDeps } from '../access/lockdown.js';
import { print, withContext, type Context, type GlobalOptions } from './context.js';

function lockdownDeps(ctx: Context): LockdownDeps {
  return { config: () => ctx.config, store: ctx.store, audit: async (e) => void (await ctx.audit.appendNow(e)), clock: ctx.now };
}

export function registerSegment(program: Command): void {
  const segment = program.command('segment').description('segment lockdown');
  segment
    .command('lock')
    .argument('<name>')
    .requiredOption('--reason <text>', 'why (kept in the audit log and shown to users)')
    .option('--as <user>', 'act as this wicket user')
    .description('end every live session in the segment and refuse new ones until unlocked')
    .action(async (name: string, opts: { reason: string; as?: string }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      if (opts.reason.trim() === '') throw new WicketError('WICKET_ERR_USAGE', '--reason must not be empty');
      await withContext(g, async (ctx) => {
        const { fresh } = await lockSegment(lockdownDeps(ctx), { segment: name, reason: opts.reason, actor: ctx.actor(opts.as) });
        print(ctx.json, fresh ? `locked ${name}: ${opts.reason}` : `${name} was already locked; live sessions were ended again`, { segment: name, locked: true });
      });
    });
  segment
    .command('unlock')
    .argument('<name>')
    .option('--as <user>', 'act as this wicket user')
    .description('allow sessions in the segment again')
    .action(async (name: string, opts: { as?: string }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      await withContext(g, async (ctx) => {
        const { wasLocked: was } = await unlockSegment(lockdownDeps(ctx), { segment: name, actor: ctx.actor(opts.as) });
        print(ctx.json, was ? `unlocked ${name}` : `${name} was not locked`, { segment: name, locked: false });
      });
    });
  segment
    .command('list')
    .description('segments with their lock state')
    .action(async (_o: unknown, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      await withContext(g, async (ctx) => {
        const locks = new Map((await ctx.store.listLocks()).map((l) => [l.segment, l]));
        const rows = ctx.config.segments.map((s) => ({ name: s.name, description: s.description ?? '', lock: locks.get(s.name) ?? null }));
        print(ctx.json, rows.map((r) => `${r.name.padEnd(20)} ${r.lock ? `LOCKED by ${r.lock.lockedBy}: ${r.lock.reason}` : 'open'}  ${r.description}`).join('\n'), rows);
      });
    });
}
