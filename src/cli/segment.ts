/** `wicket segment lock NAME --reason TEXT` / `unlock NAME`: every broker ends the segment's sessions within a second. */
import type { Command } from 'commander';
import { WicketError } from '../errors.js';
import { print, withContext, type Context, type GlobalOptions } from './context.js';

function requireSegment(ctx: Context, name: string): void {
  if (!ctx.config.segments.some((s) => s.name === name)) throw new WicketError('WICKET_ERR_UNKNOWN_SEGMENT', `unknown segment "${name}"`);
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
        requireSegment(ctx, name);
        const actor = ctx.actor(opts.as);
        const now = ctx.now();
        const fresh = await ctx.store.lockSegment({ segment: name, reason: opts.reason, lockedBy: actor, lockedAt: now });
        await ctx.store.pushControl({ kind: 'lock', ts: now, actor, segment: name, reason: opts.reason });
        await ctx.record('segment.lock', { segment: name, reason: opts.reason, alreadyLocked: !fresh }, { actor });
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
        requireSegment(ctx, name);
        const actor = ctx.actor(opts.as);
        const was = await ctx.store.unlockSegment(name);
        await ctx.store.pushControl({ kind: 'unlock', ts: ctx.now(), actor, segment: name, reason: 'unlock' });
        await ctx.record('segment.unlock', { segment: name, wasLocked: was }, { actor });
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
