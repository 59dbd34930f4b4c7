/** `wicket init [DIR]`: starter config, host key, TLS cert and an admin user with a one-time password. */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { resolve, join } from 'node:path';
import type { Command } from 'commander';
import { WicketError } from '../errors.js';
import { ensureHostKeys } from '../keys.js';
import { generatePassword, makePasswordCredential, newScramSalt } from '../auth/password.js';
import { print, withContext, type GlobalOptions } from './context.js';
import { STARTER_CONFIG } from './starter.js';

export function registerInit(program: Command): void {
  program
    .command('init')
    .argument('[dir]', 'folder for wicket.yaml and data/', '.')
    .option('--force', 'overwrite an existing wicket.yaml')
    .description('write a starter config, SSH host key, TLS certificate and an admin user')
    .action(async (dir: string, opts: { force?: boolean }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const root = resolve(dir);
      const configPath = join(root, 'wicket.yaml');
      if (existsSync(configPath) && !opts.force) {
        throw new WicketError('WICKET_ERR_USAGE', `${configPath} already exists (use --force to overwrite)`);
      }
      mkdirSync(root, { recursive: true });
      writeFileSync(configPath, STARTER_CONFIG, { mode: 0o640 });
      const dataDir = join(root, 'data');
      const { keys, created } = await ensureHostKeys(dataDir);
      const password = generatePassword();
      await withContext({ config: configPath, json: g.json }, async (ctx) => {
        const now = ctx.now();
        await ctx.store.upsertUser('admin', await makePasswordCredential(password, newScramSalt()), true, now);
        await ctx.record('init', { config: configPath, configHash: ctx.config.hash, created, admin: 'admin' });
      });
      print(
        g.json === true,
        [
          `wrote ${configPath}`,
          ...created.map((p) => `wrote ${p}`),
          `SSH host key: ${keys.sshHostKeyPublic}`,
          '',
          'admin user: admin',
          `one-time password (shown once; change it with \`wicket user passwd admin\`): ${password}`,
          '',
          `next: wicket serve --config ${configPath}`,
        ].join('\n'),
        { config: configPath, dataDir, created, sshHostKey: keys.sshHostKeyPublic, user: 'admin', password },
      );
    });
}
