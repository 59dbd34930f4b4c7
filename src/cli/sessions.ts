/** `wicket sessions`, `wicket replay ID`, `wicket kill ID`. */
import { join } from 'node:path';
import type { Command } from 'commander';
import { PROTOCOLS, type Protocol } from '../config/schema.js';
import { WicketError } from '../errors.js';
import type { SessionRecord } from '../store/types.js';
import { formatDuration } from '../util/duration.js';
import { castToText, playCast, readCast } from '../../recordings/reader.js';
import { formatQueryList } from '../../recordings/queries.js';
import { print, withContext, type GlobalOptions } from './context.js';
import { isoTime, parseSince } from './time.js';

function row(s: SessionRecord, now: number): string {
  const dur = formatDuration((s.endedAt ?? now) - s.startedAt);
  const status = s.status === 'live' ? 'LIVE' : s.status;
  return `${s.id}  ${isoTime(s.startedAt)}  ${dur.padStart(8)}  ${status.padEnd(10)}  ${s.protocol.padEnd(8)}  ${s.user}@${s.target} (${s.segment})${s.endReason ? `  ${s.endReason}` : ''}`;
}

export function registerSessions(program: Command): void {
  program
    .command('sessions')
    .option('--live', 'only running sessions')
    .option('--user <user>')
    .option('--target <target>')
    .option('--segment <segment>')
    .option('--protocol <protocol>')
    .option('--since <when>', 'a duration ago (1d) or a date')
    .option('-q, --query <text>', 'sessions whose queries or commands contain this text')
    .option('--limit <n>', 'at most this many', '50')
    .description('list recorded and live sessions, newest first')
    .action(async (o: { live?: boolean; user?: string; target?: string; segment?: string; protocol?: string; since?: string; query?: string; limit: string }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const limit = Number(o.limit);
      if (!Number.isSafeInteger(limit) || limit < 1) throw new WicketError('WICKET_ERR_USAGE', '--limit: expected a positive whole number');
      if (o.protocol !== undefined && !(PROTOCOLS as readonly string[]).includes(o.protocol)) {
        throw new WicketError('WICKET_ERR_USAGE', `--protocol: expected one of ${PROTOCOLS.join(', ')}`);
      }
      await withContext(g, async (ctx) => {
        const now = ctx.now();
        const list = await ctx.store.listSessions({
          live: o.live ? true : undefined, user: o.user, target: o.target, segment: o.segment, protocol: o.protocol as Protocol | undefined,
          since: o.since ? parseSince(o.since, now) : undefined, q: o.query, limit,
        });
        print(ctx.json, list.length ? list.map((s) => row(s, now)).join('\n') : 'no sessions', list);
      });
    });

  program
    .command('replay')
    .argument('<id>', 'session id')
    .option('--speed <n>', 'playback speed for terminal sessions', '1')
    .option('--idle-limit <seconds>', 'compress pauses longer than this', '2')
    .option('--text', 'print the terminal output at once instead of playing it')
    .description('replay a terminal session, or list a database session\u2019s statements')
    .action(async (id: string, o: { speed: string; idleLimit: string; text?: boolean }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      await withContext(g, async (ctx) => {
        const s = await ctx.store.getSession(id);
        if (!s) throw new WicketError('WICKET_ERR_NOT_FOUND', `no session ${id}`);
        const events = await ctx.store.sessionEvents(id);
        if (ctx.json) return print(true, '', { session: s, events });
        if (!s.recordingPath) return print(false, formatQueryList(events), null);
        const cast = await readCast(join(ctx.config.dataDir, s.recordingPath));
        if (o.text || !process.stdout.isTTY) return print(false, castToText(cast.events), null);
        await playCast(cast.events, (chunk) => process.stdout.write(chunk), { speed: Number(o.speed) || 1, idleTimeLimit: Number(o.idleLimit) || undefined });
      });
    });

  program
    .command('kill')
    .argument('<id>', 'session id')
    .option('--reason <text>', 'shown to the user', 'killed by an administrator')
    .option('--as <user>', 'act as this wicket user')
    .description('end a live session (on whichever broker runs it) within a second')
    .action(async (id: string, o: { reason: string; as?: string }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      await withContext(g, async (ctx) => {
        const s = await ctx.store.getSession(id);
        if (!s) throw new WicketError('WICKET_ERR_NOT_FOUND', `no session ${id}`);
        if (s.status !== 'live') throw new WicketError('WICKET_ERR_CONFLICT', `session ${id} is not live (${s.status})`);
        const actor = ctx.actor(o.as);
        await ctx.store.pushControl({ kind: 'kill', ts: ctx.now(), actor, sessionId: id, reason: o.reason });
        await ctx.record('session.kill', { reason: o.reason }, { actor, sessionId: id, target: s.target });
        print(ctx.json, `kill sent for ${id} (${s.user}@${s.target}): ${o.reason}`, { id, killed: true });
      });
    });
}
