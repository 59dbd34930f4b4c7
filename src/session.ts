/**
 * The one contract every protocol adapter implements and emits.
 *
 * An adapter turns a client socket into a SessionRequest, asks the broker to
 * open it (policy + recorder + registry), then reports what happens as
 * SessionEvents. The broker can end any session through its SessionHandle.
 */
import type { Protocol } from './config/schema.js';

export interface SessionRequest {
  readonly user: string;
  readonly target: string;
  /** The protocol the client speaks (ssh for shell targets reached over SSH is passed as 'shell'). */
  readonly protocol: Protocol;
  readonly clientAddr: string;
  /** How the person proved who they are. */
  readonly authMethod: 'password' | 'token' | 'publickey' | 'keyboard-interactive' | 'web';
  /** Protocol details kept with the session (database, client program, terminal ...). */
  readonly meta?: Readonly<Record<string, unknown>>;
  /**
   * The personal access token the person proved themselves with, if any (a
   * token as the password, or a web login by bearer token): when it is
   * revoked or expires, the session ends.
   */
  readonly tokenId?: string | null;
}

/** What the broker may ask of a live session. The adapter implements it. */
export interface SessionHandle {
  /** End the session now, telling the client `terminated by wicket: <reason>`. Idempotent. */
  terminate(reason: string): void;
}

export type QueryStep =
  | 'query'
  | 'parse'
  | 'bind'
  | 'execute'
  | 'prepare'
  | 'stmt_execute'
  | 'function_call'
  | 'copy'
  | 'init_db'
  | 'other';

export interface QueryParam {
  /** Type OID (Postgres) or MySQL type code, when known. */
  readonly type: number | null;
  readonly format: 'text' | 'binary' | 'null';
  /** Text as text, binary as hex; null for SQL NULL. */
  readonly value: string | null;
}

export interface QueryEvent {
  readonly type: 'query';
  readonly step: QueryStep;
  readonly startedAt: number;
  readonly durationMs: number;
  readonly sql: string;
  readonly statement?: string;
  readonly portal?: string;
  readonly params?: readonly QueryParam[];
  readonly rows?: number | null;
  readonly tag?: string | null;
  readonly bytes?: number;
  readonly error?: { readonly code: string; readonly message: string } | null;
}

export interface CommandEvent {
  readonly type: 'command';
  readonly at: number;
  /** typed: reconstructed from a terminal's input; exec: an exec request verbatim. */
  readonly source: 'typed' | 'exec' | 'subsystem';
  readonly command: string;
  readonly channel?: number;
}

export interface FileEvent {
  readonly type: 'file';
  readonly at: number;
  readonly op: 'open' | 'read' | 'write' | 'close' | 'mkdir' | 'rmdir' | 'remove' | 'rename' | 'setstat' | 'stat' | 'readdir' | 'symlink';
  readonly path: string;
  readonly bytes?: number;
  readonly mode?: string;
  readonly to?: string;
  readonly result?: string;
}

export interface ForwardEvent {
  readonly type: 'forward';
  readonly at: number;
  readonly kind: 'direct-tcpip' | 'tcpip-forward';
  readonly destination: string;
  readonly bytesIn: number;
  readonly bytesOut: number;
  readonly durationMs: number;
}

/** A statement or channel the policy refused inside an allowed session. */
export interface RefusedEvent {
  readonly type: 'refused';
  readonly at: number;
  readonly what: string;
  readonly rule: string;
  readonly message: string;
}

export type SessionEvent = QueryEvent | CommandEvent | FileEvent | ForwardEvent | RefusedEvent;

/** Terminal I/O of a shell/exec channel; written to an asciicast v2 recording. */
export interface TerminalRecorder {
  output(data: Buffer): void;
  input(data: Buffer): void;
  resize(cols: number, rows: number): void;
  /** False while the recording's disk writes lag too far behind: pause the source until drained(). */
  readonly writable: boolean;
  /** Resolves once the backlog is down again (or the recording is closing or failed). */
  drained(): Promise<void>;
}

/** How a session ended, as the adapter saw it. */
export interface SessionOutcome {
  readonly status: 'ended' | 'failed';
  readonly reason?: string;
}
