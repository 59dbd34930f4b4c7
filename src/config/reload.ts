/**
 * The live config of a running broker. `reload()` re-reads the same file; an
 * invalid file keeps the old config and says why (DESIGN.md §3), so a typo
 * pushed to production never drops or widens access.
 */
import { errorMessage } from '../errors.js';
import { loadConfig } from './load.js';
import type { Config } from './schema.js';

export type ReloadResult =
  | { readonly ok: true; readonly config: Config; readonly changed: boolean }
  | { readonly ok: false; readonly error: string };

export class ConfigHolder {
  #current: Config;
  readonly #env: NodeJS.ProcessEnv;

  /** `source` is a loaded config, or a path to load now (throws if invalid). */
  constructor(source: Config | string, env: NodeJS.ProcessEnv = process.env) {
    this.#env = env;
    this.#current = typeof source === 'string' ? loadConfig(source, env) : source;
  }

  get current(): Config {
    return this.#current;
  }

  /**
   * Re-reads `current.path`. `changed` is false when the file and every
   * resolved secret are the same; `current` is then left as the same object.
   */
  reload(): ReloadResult {
    let next: Config;
    try {
      next = loadConfig(this.#current.path, this.#env);
    } catch (e) {
      return { ok: false, error: errorMessage(e) };
    }
    const changed = next.hash !== this.#current.hash || JSON.stringify(next) !== JSON.stringify(this.#current);
    if (changed) this.#current = next;
    return { ok: true, config: this.#current, changed };
  }

  /**
   * Reloads on every SIGHUP and passes the outcome to `onReload`. While
   * installed, SIGHUP no longer terminates the process. Returns the uninstaller.
   */
  watchSighup(onReload: (result: ReloadResult) => void): () => void {
    const handler = (): void => onReload(this.reload());
    process.on('SIGHUP', handler);
    return () => {
      process.off('SIGHUP', handler);
    };
  }
}
