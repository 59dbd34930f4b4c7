/**
 * Reading recordings back: parse, digest, and replay (`wicket replay ID`).
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { WicketError, errorMessage, isWicketError } from '../src/errors.js';
import { CastLineParser, type CastEvent, type CastHeader, type CastParserOptions, type ParsedCast } from './asciicast.js';

function readError(path: string, e: unknown): WicketError {
  if (isWicketError(e)) return new WicketError(e.code, `${path}: ${e.message}`, { path });
  const code = (e as NodeJS.ErrnoException | null)?.code;
  if (code === 'ENOENT') return new WicketError('WICKET_ERR_NOT_FOUND', `recording not found: ${path}`, { path });
  return new WicketError('WICKET_ERR_RECORDING', `cannot read recording ${path}: ${errorMessage(e)}`, { path });
}

export interface ReadCastResult extends ParsedCast {
  /** True when a damaged unterminated last line was dropped (only with allowTruncatedTail). */
  readonly truncated: boolean;
}

/** Streams and strictly parses a .cast file; errors are WicketErrors naming the file and line. */
export async function readCast(path: string, opts?: CastParserOptions): Promise<ReadCastResult> {
  const parser = new CastLineParser(opts);
  let header: CastHeader | undefined;
  const events: CastEvent[] = [];
  const take = (lines: ReturnType<CastLineParser['push']>): void => {
    for (const l of lines) {
      if (l.kind === 'header') header = l.header;
      else events.push(l.event);
    }
  };
  try {
    for await (const chunk of createReadStream(path)) take(parser.push(chunk as Buffer));
    take(parser.end());
  } catch (e) {
    throw readError(path, e);
  }
  if (header === undefined) throw readError(path, new WicketError('WICKET_ERR_RECORDING', 'line 1: no asciicast header'));
  return { header, events, truncated: parser.truncated };
}

/** sha256 hex of a file's bytes, streamed (recordings can be large). */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  try {
    for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  } catch (e) {
    throw readError(path, e);
  }
  return hash.digest('hex');
}

/** Everything the terminal printed, concatenated: the plain fallback when stdout is not a TTY. */
export function castToText(events: readonly CastEvent[]): string {
  let text = '';
  for (const e of events) if (e.code === 'o') text += e.data;
  return text;
}

export interface PlayOptions {
  /** Playback speed multiplier; 2 plays twice as fast. Default 1. */
  readonly speed?: number;
  /** Longest pause kept between events, in recorded seconds (asciinema's idle_time_limit). Default: none. */
  readonly idleTimeLimit?: number;
  readonly signal?: AbortSignal;
  /** Told about recorded terminal size changes, so the caller can warn or adapt. */
  readonly onResize?: (cols: number, rows: number) => void;
}

export interface PlayResult {
  /** False when the signal aborted playback. */
  readonly completed: boolean;
  /** Output events written. */
  readonly played: number;
}

/** Resolves true after `ms`, or false as soon as the signal aborts. */
function sleep(ms: number, signal: AbortSignal | undefined): Promise<boolean> {
  if (signal?.aborted) return Promise.resolve(false);
  if (ms <= 0) return Promise.resolve(true);
  return new Promise((resolve) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Writes output events with their recorded timing. Deadlines are computed
 * from the start of playback (not chained sleeps) so timer lateness does not
 * accumulate; events already due are written back to back.
 */
export async function playCast(events: readonly CastEvent[], write: (s: string) => void, opts: PlayOptions = {}): Promise<PlayResult> {
  const speed = opts.speed ?? 1;
  if (!(speed > 0) || !Number.isFinite(speed)) throw new WicketError('WICKET_ERR_USAGE', `speed must be a positive number, got ${speed}`);
  const idle = opts.idleTimeLimit !== undefined && opts.idleTimeLimit > 0 ? opts.idleTimeLimit : Infinity;
  const start = performance.now();
  let virtual = 0;
  let prev = 0;
  let played = 0;
  for (const ev of events) {
    virtual += Math.min(Math.max(ev.time - prev, 0), idle);
    prev = ev.time;
    const due = start + (virtual * 1000) / speed;
    if (!(await sleep(due - performance.now(), opts.signal))) return { completed: false, played };
    if (ev.code === 'o') {
      write(ev.data);
      played++;
    } else if (ev.code === 'r' && opts.onResize) {
      const [cols, rows] = ev.data.split('x').map(Number);
      opts.onResize(cols!, rows!);
    }
  }
  return { completed: true, played };
}
