/** `wicket policy check` (one decision and the rule that made it) and `wicket policy audit` (standing access report). */
import type { Command } from 'commander';
import { PROTOCOLS, type Protocol } from '../config/schema.js';
import { WicketError } from '../errors.js';
import { decide } from '../policy/decide.js';
import { explain } from '../policy/explain.js';
import { formatPolicyReport, policyAudit, type SessionUsage } from '../policy/report.js';
import type { SessionFilter, Store } from '../store/types.js';
import { print, withContext, type GlobalOptions } from './context.js';

/** What one listSessions call asks for; the store may return fewer (SQLite caps a page at 1000). */
export const SESSION_PAGE = 1000;

/**
 * Every session ever recorded, newest first, reduced to what the audit reads.
 * Paged with `before` because listSessions caps its limit: one big `limit`
 * would silently drop older sessions, and with them the grants they used and
 * the last use of rarely used rules.
 */
export async function readSessionUsage(store: Pick<Store, 'listSessions'>, pageSize = SESSION_PAGE): Promise<SessionUsage[]> {
  const out: SessionUsage[] = [];
  let before: SessionFilter['before'];
  for (;;) {
    const page = await store.listSessions(before === undefined ? { limit: pageSize } : { limit: pageSize, before });
    if (page.length === 0) return out;
    for (const s of page) out.push({ user: s.user, target: s.target, segment: s.segment, rule: s.rule, grantId: s.grantId, startedAt: s.startedAt });
    const last = page[page.length - 1]!;
    // A store that ignored `before` would hand back the same page forever.
    if (before !== undefined && last.startedAt === before.startedAt && last.id === before.id) return out;
    before = { startedAt: last.startedAt, id: last.id };
  }
}

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
    .description('standing access per segment, unused rules, unreachable targets, segments without an approver, grants and their sessions, standing rules that could be just-in-time')
    .action(async (_o: unknown, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      await withContext(g, async (ctx) => {
        const now = ctx.now();
        const [sessions, grants] = await Promise.all([readSessionUsage(ctx.store), ctx.store.listGrants()]);
        const report = policyAudit(ctx.config, { sessions, grants }, now);
        print(ctx.json, formatPolicyReport(report), report);
      });
    });
}
