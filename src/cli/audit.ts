/** `wicket audit verify` (hash chain, head, recording digests) and `wicket audit export` (JSON lines for a SIEM). */
import type { Command } from 'commander';
import { verifyAudit, formatVerify } from '../audit/verify.js';
import { exportAudit } from '../audit/export.js';
import { print, withContext, type GlobalOptions } from './context.js';
import { parseSince } from './time.js';

export function registerAudit(program: Command): void {
  const audit = program.command('audit').description('the hash-chained audit log');
  audit
    .command('verify')
    .description('check the hash chain, its signed head and every recording digest; exits 1 on any finding')
    .action(async (_o: unknown, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      await withContext(g, async (ctx) => {
        // Read-only: this command must not add events to the log it checks.
        const result = await verifyAudit(ctx.store, ctx.config.dataDir);
        print(ctx.json, formatVerify(result), result);
        if (!result.ok) process.exitCode = 1;
      });
    });
  audit
    .command('export')
    .option('--since <when>', 'a duration ago (1d) or a date')
    .option('--follow', 'keep printing new events until interrupted')
    .description('print audit events as JSON lines')
    .action(async (opts: { since?: string; follow?: boolean }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      await withContext(g, async (ctx) => {
        const ac = new AbortController();
        const stop = (): void => ac.abort();
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
        process.stdout.on('error', stop); // a closed pipe (| head) ends the export quietly
        try {
          await exportAudit(
            ctx.store,
            { sinceTs: opts.since ? parseSince(opts.since, ctx.now()) : undefined, follow: opts.follow === true, signal: ac.signal },
            (line) => process.stdout.write(`${line}\n`),
          );
        } finally {
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
        }
      });
    });
}
