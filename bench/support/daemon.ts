/**
 * What the private daemons the tests and benches start (sshd here, MariaDB in
 * test/support/mariadb.ts) need to be cleaned up reliably: a process's start
 * time, to tell it from a later process that reuses its pid, and
 * `setpriv --pdeathsig` (util-linux), which makes the kernel signal the
 * daemon when this process dies, also when it dies without running exit
 * handlers (a test worker killed on timeout).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** Start time (clock ticks since boot) of a process; null when it is gone. */
export function startTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

const prefixes = new Map<string, string[]>();

/** The command prefix that has the daemon receive `signal` when this process dies; empty without setpriv. */
export function withParentDeathSignal(signal: 'TERM' | 'KILL'): string[] {
  let p = prefixes.get(signal);
  if (p === undefined) {
    try {
      execFileSync('setpriv', ['--pdeathsig', signal, '--', 'true'], { stdio: 'ignore' });
      p = ['setpriv', '--pdeathsig', signal, '--'];
    } catch {
      p = [];
    }
    prefixes.set(signal, p);
  }
  return p;
}
