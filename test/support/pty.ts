/**
 * Drives a real interactive client (psql, mariadb, ssh -tt) in a
 * pseudo-terminal, the way a person types: write keystrokes, wait for text
 * on the screen.
 */
import * as pty from 'node-pty';

export interface PtyClient {
  /** Everything the program printed so far. */
  readonly output: () => string;
  write(keys: string): void;
  /** Waits until the output (after `from`) matches; returns the match. */
  waitFor(pattern: RegExp | string, opts?: { timeoutMs?: number; from?: number }): Promise<string>;
  resize(cols: number, rows: number): void;
  readonly exited: Promise<number>;
  kill(): void;
}

export function spawnPty(file: string, args: readonly string[], opts: { env?: NodeJS.ProcessEnv; cols?: number; rows?: number; cwd?: string } = {}): PtyClient {
  const p = pty.spawn(file, [...args], {
    name: 'xterm-256color',
    cols: opts.cols ?? 120,
    rows: opts.rows ?? 40,
    cwd: opts.cwd ?? process.cwd(),
    env: { ...process.env, TERM: 'xterm-256color', ...opts.env } as Record<string, string>,
  });
  let out = '';
  const waiters = new Set<() => void>();
  p.onData((d) => {
    out += d;
    for (const w of waiters) w();
  });
  const exited = new Promise<number>((resolve) => p.onExit(({ exitCode }) => resolve(exitCode)));
  return {
    output: () => out,
    write: (keys) => p.write(keys),
    resize: (c, r) => p.resize(c, r),
    exited,
    kill: () => {
      try {
        p.kill();
      } catch {
        // already gone
      }
    },
    waitFor(pattern, o = {}) {
      const from = o.from ?? 0;
      const test = (): string | null => {
        const hay = out.slice(from);
        if (typeof pattern === 'string') return hay.includes(pattern) ? pattern : null;
        const m = pattern.exec(hay);
        return m ? m[0] : null;
      };
      return new Promise((resolve, reject) => {
        const hit = test();
        if (hit !== null) return resolve(hit);
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`timed out waiting for ${String(pattern)}; screen so far:\n${out.slice(-2000)}`));
        }, o.timeoutMs ?? 10_000);
        const check = (): void => {
          const h = test();
          if (h !== null) {
            clearTimeout(timer);
            waiters.delete(check);
            resolve(h);
          }
        };
        waiters.add(check);
      });
    },
  };
}
