/** `wicket serve`: every listener plus the web app, until SIGTERM/SIGINT (clean shutdown) ; SIGHUP reloads the config. */
import type { Command } from 'commander';
import { resolveConfigPath } from '../config/find.js';
import { startWicket } from '../runtime.js';
import type { GlobalOptions } from './context.js';

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('run the broker: protocol listeners and the web app')
    .action(async (_o: unknown, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const log = (line: string): void => {
        process.stderr.write(`${new Date().toISOString()} ${line}\n`);
      };
      const running = await startWicket(resolveConfigPath(g.config), { log });
      log(`wicket ${running.broker.brokerId} serving ${running.config().path}`);
      await new Promise<void>((resolve) => {
        const onSignal = (sig: NodeJS.Signals): void => {
          log(`${sig}: ending live sessions and shutting down`);
          running.stop('broker shutting down').then(resolve, (err: unknown) => {
            log(`shutdown error: ${String(err)}`);
            process.exitCode = 1;
            resolve();
          });
        };
        process.once('SIGTERM', onSignal);
        process.once('SIGINT', onSignal);
      });
      log('stopped');
    });
}
