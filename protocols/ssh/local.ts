/** `shell` targets behind the SSH listener: channels run as local processes (protocols/shell). */
import type { Config } from '../../src/config/schema.js';
import { WicketError, errorMessage } from '../../src/errors.js';
import { spawnLocal } from '../shell/index.js';
import type { Backend, OpenSpec, Proc } from './backend.js';

type Target = Config['targets'][number];

export function localBackend(target: Target): Backend {
  const command = target.command;
  if (!command || command.length === 0) throw new WicketError('WICKET_ERR_CONFIG', `shell target ${target.name} has no command`);
  return {
    open(spec: OpenSpec): Promise<Proc> {
      try {
        const p = spawnLocal({
          command,
          ...(target.user ? { user: target.user } : {}),
          ...(target.cwd ? { cwd: target.cwd } : {}),
          pty: spec.pty ? { term: spec.pty.term, cols: spec.pty.cols, rows: spec.pty.rows } : null,
          env: spec.env,
          exec: spec.kind.type === 'exec' ? spec.kind.command : null,
          subsystem: spec.kind.type === 'subsystem' ? 'sftp' : null,
        });
        // A LocalProcess already is a Proc (its resize just ignores the pixel sizes).
        const proc: Proc = p;
        return Promise.resolve(proc);
      } catch (err) {
        return Promise.reject(err instanceof WicketError ? err : new WicketError('WICKET_ERR_INTERNAL', `shell target ${target.name}: ${errorMessage(err)}`));
      }
    },
    forwardOut: null,
    forwardIn: null,
    cancelForwardIn: null,
    close: () => undefined,
  };
}
