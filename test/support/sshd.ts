/**
 * A real OpenSSH server per suite, plus the client flags and keys tests need.
 * The launcher lives in bench/support/sshd.ts (tsconfig builds bench/, not
 * test/, and the SSH benchmark uses it too); this module re-exports it and
 * adds an async runner for ssh/scp/sftp.
 *
 *   const reason = sshdUnavailable();          // non-null: skip the suite
 *   const sshd = await startSshd();
 *   await runClient('ssh', [...sshArgs({ port: sshd.port, keyPath: sshd.clientKeyPath }), `root@127.0.0.1`, 'true']);
 */
import { spawn } from 'node:child_process';
export { SshdUnavailable, sshArgs, sshClientKey, sshdUnavailable, startSshd, type Sshd, type SshdOptions } from '../../bench/support/sshd.js';

export interface ClientResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs a client (ssh, scp, sftp) to completion without blocking the event
 * loop; never rejects: the exit code is in `code`. Killed after `timeoutMs`
 * (stderr then says so).
 */
export function runClient(file: string, args: readonly string[], opts: { input?: string | Buffer; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<ClientResult> {
  return new Promise((resolve) => {
    const child = spawn(file, [...args], { env: opts.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let note = '';
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    const timer = setTimeout(() => {
      note = `\n[runClient: ${file} killed after ${opts.timeoutMs ?? 30_000} ms]`;
      child.kill('SIGKILL');
    }, opts.timeoutMs ?? 30_000);
    child.once('error', (e) => {
      clearTimeout(timer);
      resolve({ code: null, signal: null, stdout: '', stderr: `spawn ${file}: ${e.message}` });
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') + note });
    });
    child.stdin.on('error', () => undefined); // the client may exit before reading its input
    child.stdin.end(opts.input ?? '');
  });
}
