/**
 * Just-in-time access from the broker host (DESIGN.md §4):
 *   wicket request TARGET|SEGMENT --for 1h --reason TEXT --as USER [--wait]
 *   wicket requests [--state S] [--user U]
 *   wicket approve ID [--comment T] | deny ID [--comment T] | cancel ID | revoke ID [--reason T]   (--as USER)
 * A running broker sees grants and revocations through the store within a second.
 */
import type { Command } from 'commander';
import { AccessService, REQUEST_STATES, approversOfRequest, grantExpiresAt, requestSubject } from '../access/service.js';
import { WicketError } from '../errors.js';
import type { Grant } from '../policy/types.js';
import type { AccessRequestRecord, RequestState } from '../store/types.js';
import { formatDuration, parseDuration } from '../util/duration.js';
import { print, withContext, type Context, type GlobalOptions } from './context.js';
import { isoTime } from './time.js';

function service(ctx: Context): AccessService {
  return new AccessService({
    config: () => ctx.config,
    store: ctx.store,
    audit: async (e) => void (await ctx.audit.appendNow(e)),
    clock: ctx.now,
  });
}

/** The wicket user acting: --as USER (the OS account is no wicket user, so it cannot request or decide). */
function who(ctx: Context, as: string | undefined): string {
  const name = ctx.actor(as);
  if (ctx.config.users.some((u) => u.name === name)) return name;
  if (as === undefined) throw new WicketError('WICKET_ERR_USAGE', '--as USER is required: name the wicket user you act as');
  throw new WicketError('WICKET_ERR_UNKNOWN_USER', `unknown user "${name}": add it under users: in ${ctx.config.path}`);
}

function parseId(text: string): number {
  const t = text.replace(/^#/, '');
  if (!/^[1-9][0-9]{0,14}$/.test(t)) throw new WicketError('WICKET_ERR_USAGE', `expected a request id such as 17, got "${text}"`);
  return Number(t);
}

/** A request as --json shows it: the record plus readable times. */
function view(r: AccessRequestRecord, grant: Grant | null = null): Record<string, unknown> {
  return {
    ...r,
    duration: formatDuration(r.durationMs),
    approvals: approversOfRequest(r).length,
    grantExpiresAt: grant?.expiresAt ?? grantExpiresAt(r),
  };
}

function waitingFor(access: AccessService, r: AccessRequestRecord): string {
  const left = r.approvalsRequired - approversOfRequest(r).length;
  const who = left === 1 ? `an approver of ${r.segment}` : `${left} approvers of ${r.segment}`;
  const others = access.approvers(r.segment).filter((u) => u !== r.user && !approversOfRequest(r).includes(u));
  const note = others.length < left ? ` (note: only ${others.length} configured user(s) can approve it: ${others.join(', ') || 'none'})` : '';
  return `waiting for approval by ${who}${note}`;
}

const HEADER = ['ID', 'STATE', 'USER', 'TARGET', 'SEGMENT', 'FOR', 'APPROVALS', 'CREATED', 'UNTIL', 'REASON'];

/** UNTIL: when a pending request lapses, or when an approved request's grant ends. */
function tableRow(r: AccessRequestRecord): string[] {
  const until = r.state === 'pending' ? r.pendingUntil : r.state === 'approved' ? grantExpiresAt(r) : null;
  const reason = r.reason.replace(/\s+/g, ' ');
  return [
    `#${r.id}`, r.state, r.user, r.target ?? '*', r.segment, formatDuration(r.durationMs),
    `${approversOfRequest(r).length}/${r.approvalsRequired}`, isoTime(r.createdAt), isoTime(until),
    reason.length > 60 ? `${reason.slice(0, 59)}…` : reason,
  ];
}

function table(rows: readonly string[][]): string {
  const widths = HEADER.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  return [HEADER, ...rows].map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n');
}

function decided(r: AccessRequestRecord): string {
  const last = r.decisions[r.decisions.length - 1];
  switch (r.state) {
    case 'approved': return `request #${r.id} approved: ${r.user} may use ${requestSubject(r)} until ${isoTime(grantExpiresAt(r))}`;
    case 'denied': return `request #${r.id} denied${last ? ` by ${last.by}${last.comment ? `: ${last.comment}` : ''}` : ''}`;
    default: return `request #${r.id} is ${r.state}`;
  }
}

export function registerRequest(program: Command): void {
  program
    .command('request')
    .argument('<target>', 'a target name, or a segment name for the whole segment')
    .requiredOption('--for <duration>', 'how long the access is needed (e.g. 30m, 1h); at most the rule\u2019s max_duration')
    .requiredOption('--reason <text>', 'why (shown to approvers and kept in the audit log)')
    .option('--as <user>', 'request as this wicket user')
    .option('--wait', 'wait until the request is approved, denied or expires')
    .description('ask for just-in-time access to a target or a whole segment')
    .action(async (target: string, o: { for: string; reason: string; as?: string; wait?: boolean }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const durationMs = parseDuration(o.for);
      if (durationMs === null) throw new WicketError('WICKET_ERR_USAGE', `--for: expected a duration such as 30m, 1h or 1d, got "${o.for}"`);
      await withContext(g, async (ctx) => {
        const access = service(ctx);
        let r = await access.request({ user: who(ctx, o.as), target, durationMs, reason: o.reason });
        const created = `request #${r.id} for ${requestSubject(r)} (${formatDuration(r.durationMs)}) created; ${waitingFor(access, r)}`;
        if (!o.wait) return print(ctx.json, created, view(r));
        if (!ctx.json) process.stdout.write(`${created}\n`);
        const stop = new AbortController();
        const onSignal = (): void => stop.abort(new WicketError('WICKET_ERR_CONFLICT', `stopped waiting; request #${r.id} is still pending (wicket cancel ${r.id} to withdraw it)`));
        process.once('SIGINT', onSignal);
        try {
          r = await access.waitDecided(r.id, stop.signal);
        } finally {
          process.off('SIGINT', onSignal);
        }
        print(ctx.json, decided(r), view(r));
        if (r.state !== 'approved') process.exitCode = 1;
      });
    });

  program
    .command('requests')
    .option('--state <state>', `only requests in this state (${REQUEST_STATES.join(', ')})`)
    .option('--user <user>', 'only requests made by this user')
    .description('list access requests (lapsed ones are marked expired first)')
    .action(async (o: { state?: string; user?: string }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      if (o.state !== undefined && !(REQUEST_STATES as readonly string[]).includes(o.state)) {
        throw new WicketError('WICKET_ERR_USAGE', `--state: expected one of ${REQUEST_STATES.join(', ')}`);
      }
      await withContext(g, async (ctx) => {
        const access = service(ctx);
        await access.expireDue();
        const list = await access.list({ user: o.user, state: o.state as RequestState | undefined });
        print(ctx.json, list.length ? table(list.map(tableRow)) : 'no requests', list.map((r) => view(r)));
      });
    });

  program
    .command('approve')
    .argument('<id>', 'request id')
    .option('--comment <text>', 'kept with the decision')
    .option('--as <user>', 'approve as this wicket user')
    .description('approve a pending request (the grant is issued once enough distinct approvers agree)')
    .action(async (id: string, o: { comment?: string; as?: string }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const n = parseId(id);
      await withContext(g, async (ctx) => {
        const access = service(ctx);
        const { request: r, grant } = await access.approve(n, who(ctx, o.as), o.comment);
        const human = grant
          ? `approved request #${r.id}: ${r.user} may use ${requestSubject(r)} for ${formatDuration(r.durationMs)}, until ${isoTime(grant.expiresAt)} (grant ${grant.id})`
          : `approval ${approversOfRequest(r).length} of ${r.approvalsRequired} recorded for request #${r.id}; ${waitingFor(access, r)}`;
        print(ctx.json, human, { request: view(r, grant), grant });
      });
    });

  program
    .command('deny')
    .argument('<id>', 'request id')
    .option('--comment <text>', 'kept with the decision and shown to the requester')
    .option('--as <user>', 'deny as this wicket user')
    .description('deny a pending request')
    .action(async (id: string, o: { comment?: string; as?: string }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const n = parseId(id);
      await withContext(g, async (ctx) => {
        const r = await service(ctx).deny(n, who(ctx, o.as), o.comment);
        print(ctx.json, `denied request #${r.id} (${r.user} → ${requestSubject(r)})`, view(r));
      });
    });

  program
    .command('cancel')
    .argument('<id>', 'request id')
    .option('--as <user>', 'cancel as this wicket user (the requester, or an admin)')
    .description('withdraw a pending request')
    .action(async (id: string, o: { as?: string }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const n = parseId(id);
      await withContext(g, async (ctx) => {
        const r = await service(ctx).cancel(n, who(ctx, o.as));
        print(ctx.json, `cancelled request #${r.id} (${r.user} → ${requestSubject(r)})`, view(r));
      });
    });

  program
    .command('revoke')
    .argument('<id>', 'request id')
    .option('--reason <text>', 'why (kept in the audit log and shown to the user)')
    .option('--as <user>', 'revoke as this wicket user (an approver of the segment, or an admin)')
    .description('end an approved request\u2019s grant now; live sessions using it end within a second')
    .action(async (id: string, o: { reason?: string; as?: string }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const n = parseId(id);
      await withContext(g, async (ctx) => {
        const r = await service(ctx).revoke(n, who(ctx, o.as), o.reason);
        print(ctx.json, `revoked request #${r.id}: grant ${r.grantId ?? '-'} for ${r.user} → ${requestSubject(r)} ended; live sessions using it end within a second`, view(r));
      });
    });
}
