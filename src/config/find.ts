/** Which config file a command uses (DESIGN.md §4): --config, then $WICKET_CONFIG, then ./wicket.yaml. */
import { resolve } from 'node:path';

export const DEFAULT_CONFIG_FILE = 'wicket.yaml';

/** Absolute path of the config file to load; does not check that it exists. */
export function resolveConfigPath(flag?: string, env: NodeJS.ProcessEnv = process.env): string {
  if (flag !== undefined && flag !== '') return resolve(flag);
  const fromEnv = env['WICKET_CONFIG'];
  if (fromEnv !== undefined && fromEnv !== '') return resolve(fromEnv);
  return resolve(DEFAULT_CONFIG_FILE);
}
