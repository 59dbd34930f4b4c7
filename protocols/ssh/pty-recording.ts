/**
 * The recording path of an interactive (pty) terminal, shared by SSH pty
 * channels (channel.ts) and the web terminal (web/terminal.ts), so both
 * record the same way: output straight to the session's asciicast, keystrokes
 * through TypedInput, which reconstructs typed commands (`command` events,
 * source `typed`) and redacts input the remote did not echo (passwords)
 * before it reaches disk. Held input is decided at least every FLUSH_MS.
 *
 * Buffer ownership: as TypedInput's (chunks are never mutated; what is kept is copied).
 */
import type { ActiveSession } from '../../src/broker.js';
import type { TerminalRecorder } from '../../src/session.js';
import { TypedInput } from '../../recordings/typed.js';

/** How often held (unechoed) keystrokes are looked at again. */
export const FLUSH_MS = 500;

export interface PtyRecording {
  /** Keystrokes from the person. */
  fromClient(d: Buffer): void;
  /** Terminal output (stdout, and stderr where a pty has one). */
  fromServer(d: Buffer): void;
  /** The terminal was resized (out-of-range sizes are not recorded: CastWriter.resize). */
  resize(cols: number, rows: number): void;
  /** The terminal closed: held input is decided (redacted unless echoed). Idempotent. */
  end(): void;
}

/** Records a pty terminal of `session` into `cast` (the session's terminal recorder). */
export function recordPty(session: Pick<ActiveSession, 'emit'>, cast: TerminalRecorder): PtyRecording {
  const typed = new TypedInput(cast, (command, at) => void session.emit({ type: 'command', at, source: 'typed', command }));
  let timer: NodeJS.Timeout | null = setInterval(() => typed.flush(), FLUSH_MS);
  timer.unref();
  return {
    fromClient: (d) => typed.fromClient(d),
    fromServer: (d) => typed.fromServer(d),
    resize: (cols, rows) => cast.resize(cols, rows),
    end: () => {
      if (timer !== null) clearInterval(timer);
      timer = null;
      typed.end();
    },
  };
}

/**
 * Holds a source back while its recording's disk writes lag (the recorder's
 * `writable` false): the returned check, called after each chunk is recorded,
 * pauses the source once and resumes it when the backlog has drained. So a
 * disk slower than the session bounds wicket's memory (CastWriter's
 * maxPendingBytes) instead of queueing the whole stream.
 */
export function diskGate(rec: Pick<TerminalRecorder, 'writable' | 'drained'>, pause: () => void, resume: () => void): () => void {
  let waiting = false;
  return () => {
    if (!waiting && rec.writable) return;
    // Paused again even while waiting: another reason to resume (a socket's drain) may have let data through.
    pause();
    if (waiting) return;
    waiting = true;
    void rec.drained().then(() => {
      waiting = false;
      resume();
    });
  };
}
