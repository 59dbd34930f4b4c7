/**
 * Where a client's session channel runs: a channel on the upstream sshd
 * (`ssh` targets) or a local process (`shell` targets). Both look the same to
 * the channel bridge (channel.ts).
 */
import type { Duplex } from 'node:stream';
import type { Client as SshClient, ClientChannel, PseudoTtyOptions } from 'ssh2';
import { WicketError, errorMessage } from '../../src/errors.js';

export interface PtyInfo {
  readonly term: string;
  readonly cols: number;
  readonly rows: number;
  readonly width: number;
  readonly height: number;
  readonly modes: Readonly<Record<string, number>> | null;
}

export type ChannelKind =
  | { readonly type: 'shell' }
  | { readonly type: 'exec'; readonly command: string }
  | { readonly type: 'subsystem'; readonly name: string };

export interface OpenSpec {
  readonly kind: ChannelKind;
  readonly pty: PtyInfo | null;
  /** Already allow-listed (TERM, LANG, LC_*). */
  readonly env: Readonly<Record<string, string>>;
}

/** A running shell/exec/subsystem. Output callbacks fire in order; onExit fires once, after the last output. */
export interface Proc {
  onStdout(cb: (d: Buffer) => void): void;
  onStderr(cb: (d: Buffer) => void): void;
  /** false: stop writing until onDrain fires. */
  write(d: Buffer): boolean;
  onDrain(cb: () => void): void;
  endInput(): void;
  resize(cols: number, rows: number, width: number, height: number): void;
  signal(name: string): void;
  onExit(cb: (code: number | null, signal: string | null) => void): void;
  /** Flow control on output (no-ops where the source cannot pause). */
  pause(): void;
  resume(): void;
  kill(): void;
}

export interface Backend {
  open(spec: OpenSpec): Promise<Proc>;
  /** -L: a TCP connection from the upstream host (null: not supported by this kind of target). */
  forwardOut: ((srcIP: string, srcPort: number, dstIP: string, dstPort: number) => Promise<Duplex>) | null;
  /** -R: ask the upstream to listen; resolves with the bound port. Connections arrive via onForwardedConnection. */
  forwardIn: ((bindAddr: string, bindPort: number) => Promise<number>) | null;
  cancelForwardIn: ((bindAddr: string, bindPort: number) => Promise<void>) | null;
  close(): void;
}

/** An upstream ssh2 channel as a Proc. */
class RemoteProc implements Proc {
  private exitInfo: { code: number | null; signal: string | null } = { code: null, signal: null };
  private exitCb: ((code: number | null, signal: string | null) => void) | null = null;
  private closed = false;

  constructor(private readonly ch: ClientChannel) {
    ch.on('exit', (code: number | null, signal?: string) => {
      this.exitInfo = { code: typeof code === 'number' ? code : null, signal: signal ? signal.replace(/^SIG/, '') : null };
    });
    ch.on('close', () => {
      if (this.closed) return;
      this.closed = true;
      this.exitCb?.(this.exitInfo.code, this.exitInfo.signal);
    });
    ch.on('error', () => undefined); // surfaces as close
  }

  onStdout(cb: (d: Buffer) => void): void {
    this.ch.on('data', cb);
  }

  onStderr(cb: (d: Buffer) => void): void {
    this.ch.stderr.on('data', cb);
  }

  write(d: Buffer): boolean {
    return this.ch.write(d);
  }

  onDrain(cb: () => void): void {
    this.ch.on('drain', cb);
  }

  endInput(): void {
    this.ch.end();
  }

  resize(cols: number, rows: number, width: number, height: number): void {
    this.ch.setWindow(rows, cols, height, width);
  }

  signal(name: string): void {
    this.ch.signal(name);
  }

  onExit(cb: (code: number | null, signal: string | null) => void): void {
    this.exitCb = cb;
    if (this.closed) cb(this.exitInfo.code, this.exitInfo.signal);
  }

  pause(): void {
    this.ch.pause();
    this.ch.stderr.pause();
  }

  resume(): void {
    this.ch.resume();
    this.ch.stderr.resume();
  }

  kill(): void {
    this.ch.close();
  }
}

const ptyOptions = (p: PtyInfo): PseudoTtyOptions => ({
  term: p.term, cols: p.cols, rows: p.rows, width: p.width, height: p.height,
  ...(p.modes ? { modes: p.modes as PseudoTtyOptions['modes'] } : {}),
});

/** Runs channels on an upstream sshd through one logged-in ssh2 Client. */
export function remoteBackend(client: SshClient, targetName: string): Backend {
  const fail = (what: string, err: unknown): WicketError => new WicketError('WICKET_ERR_UPSTREAM', `upstream ${targetName}: ${what}: ${errorMessage(err)}`);
  return {
    open(spec: OpenSpec): Promise<Proc> {
      return new Promise<Proc>((resolve, reject) => {
        const cb = (err: Error | undefined, ch: ClientChannel): void => (err ? reject(fail(`cannot open ${spec.kind.type}`, err)) : resolve(new RemoteProc(ch)));
        const env = { ...spec.env };
        try {
          if (spec.kind.type === 'shell') client.shell(spec.pty ? ptyOptions(spec.pty) : false, { env }, cb);
          else if (spec.kind.type === 'exec') client.exec(spec.kind.command, { env, ...(spec.pty ? { pty: ptyOptions(spec.pty) } : {}) }, cb);
          else client.subsys(spec.kind.name, cb);
        } catch (err) {
          reject(fail(`cannot open ${spec.kind.type}`, err));
        }
      });
    },
    forwardOut: (srcIP, srcPort, dstIP, dstPort) =>
      new Promise<Duplex>((resolve, reject) => {
        client.forwardOut(srcIP, srcPort, dstIP, dstPort, (err, ch) => (err ? reject(fail(`forward to ${dstIP}:${dstPort} refused`, err)) : resolve(ch)));
      }),
    forwardIn: (bindAddr, bindPort) =>
      new Promise<number>((resolve, reject) => {
        client.forwardIn(bindAddr, bindPort, (err, port) => (err ? reject(fail(`remote forward ${bindAddr}:${bindPort} refused`, err)) : resolve(port || bindPort)));
      }),
    cancelForwardIn: (bindAddr, bindPort) =>
      new Promise<void>((resolve) => {
        client.unforwardIn(bindAddr, bindPort, () => resolve());
      }),
    close: () => client.end(),
  };
}
