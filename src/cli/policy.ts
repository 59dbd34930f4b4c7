/** `wicket policy check` (one decision and the rule that made it) and `wicket policy audit` (standing access report). */
import type { Command } from 'commander';
import { PROTOCOLS, type Protocol } from '../config/schema.js';
import { WicketError } from '../errors.js';
import { decide } from '../policy/decide.js';
import { explain } from '../policy/explain.js';
import { formatPolicyReport, policyAudit } from '../policy/report.js';
import { print, withContext, type GlobalOptions } from './context.js';

const DAY = 86_400_000;

export function registerPolicy(program: Command): void {
  const policy = program.command('policy').description('inspect the policy');
  policy
    .command('check')
    .requiredOption('--user <user>')
    .requiredOption('--target <target>')
    .option('--protocol <protocol>', `one of ${PROTOCOLS.join(', ')} (default: the target's)`)
    .description('would this user be let in to this target now, and by which rule?')
    .action(async (opts: { user: string; target: string; protocol?: string }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      if (opts.protocol !== undefined && !(PROTOCOLS as readonly string[]).includes(opts.protocol)) {
        throw new WicketError('WICKET_ERR_USAGE', `--protocol: expected one of ${PROTOCOLS.join(', ')}`);
      }
      await withContext(g, async (ctx) => {
        const now = ctx.now();
        const [grants, locks] = await Promise.all([ctx.store.activeGrants(opts.user, now), ctx.store.listLocks()]);
        const d = decide({ config: ctx.config, user: opts.user, target: opts.target, protocol: opts.protocol as Protocol | undefined, now, grants, locks });
        print(ctx.json, explain(d), d);
      });
    });
  policy
    .command('audit')
    .description('standing access per segment, unused rules and grants, unreachable targets, segments without an approver')
    .action(async (_o: unknown, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      await withContext(g, async (ctx) => {
        const now = ctx.now();
        const sessions = await ctx.store.listSessions({ since: now - 30 * DAY, limit: 1_000_000 });
        const grants = await ctx.store.listGrants();
        const report = policyAudit(ctx.config, { sessions: sessions.map((s) => ({ user: s.user, target: s.target, segment: s.segment, rule: s.rule, startedAt: s.startedAt })), grants }, now);
        print(ctx.json, formatPolicyReport(report), report);
      });
    });
}
