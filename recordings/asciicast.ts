/**
 * asciicast v2 encoding and strict parsing (no I/O).
 *
 * Format (docs.asciinema.org/manual/asciicast/v2): newline-delimited JSON.
 * Line 1 is a header object (version 2, width, height required; timestamp,
 * duration, idle_time_limit, command, title, env optional). Every later line
 * is an event `[time, code, data]`: seconds since the start as a float, a
 * one-letter code ("o" output, "i" input, "m" marker, "r" resize with data
 * "COLSxROWS") and a string.
 *
 * The parser is strict because recordings are evidence: a line that is not
 * exactly what our writer produces means damage or tampering, and replay
 * should say so (with the line number) rather than silently skip it.
 */
import { StringDecoder } from 'node:string_decoder';
import { WicketError } from '../src/errors.js';

export type CastEventCode = 'o' | 'i' | 'r' | 'm';

export interface CastHeader {
  readonly version: 2;
  readonly width: number;
  readonly height: number;
  /** Unix time in seconds at the start of the recording. */
  readonly timestamp?: number;
  readonly duration?: number;
  readonly idle_time_limit?: number;
  readonly command?: string;
  readonly title?: string;
  readonly env?: Readonly<Record<string, string>>;
}

export interface CastEvent {
  /** Seconds since the start of the recording. */
  readonly time: number;
  readonly code: CastEventCode;
  readonly data: string;
}

export interface ParsedCast {
  readonly header: CastHeader;
  readonly events: CastEvent[];
}

export type CastLine =
  | { readonly kind: 'header'; readonly header: CastHeader }
  | { readonly kind: 'event'; readonly event: CastEvent };

const CODES: ReadonlySet<string> = new Set(['o', 'i', 'r', 'm']);
const RESIZE = /^[1-9]\d{0,5}x[1-9]\d{0,5}$/;

/*
 * Lone surrogates cannot be encoded in UTF-8, and strict JSON readers (serde_json
 * in asciinema 3.x) reject an escaped lone surrogate, so they become U+FFFD.
 * DEL, C1 controls and U+2028/9 are escaped (JSON.stringify leaves them raw) so
 * the file stays printable and safe to embed in JavaScript.
 */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;
const RAW_CONTROLS = /[\u007f-\u009f\u2028\u2029]/g;

/** JSON string literal that is valid JSON and valid UTF-8 for any JS string. */
export function jsonString(s: string): string {
  return JSON.stringify(s.replace(LONE_SURROGATE, '\uFFFD')).replace(
    RAW_CONTROLS,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

function bad(message: string): WicketError {
  return new WicketError('WICKET_ERR_RECORDING', message);
}

const isPosInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v > 0;
const isNonNegNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0;

/** Header line (without the trailing newline). Keys in the order the spec lists them. */
export function encodeHeader(h: CastHeader): string {
  if (h.version !== 2) throw bad(`asciicast header: version must be 2`);
  if (!isPosInt(h.width) || !isPosInt(h.height)) throw bad(`asciicast header: width and height must be positive integers`);
  const parts = [`"version":2`, `"width":${h.width}`, `"height":${h.height}`];
  if (h.timestamp !== undefined) {
    if (!isNonNegNumber(h.timestamp)) throw bad('asciicast header: timestamp must be a non-negative number');
    parts.push(`"timestamp":${Math.floor(h.timestamp)}`);
  }
  if (h.duration !== undefined) {
    if (!isNonNegNumber(h.duration)) throw bad('asciicast header: duration must be a non-negative number');
    parts.push(`"duration":${formatTime(h.duration)}`);
  }
  if (h.idle_time_limit !== undefined) {
    if (!isNonNegNumber(h.idle_time_limit)) throw bad('asciicast header: idle_time_limit must be a non-negative number');
    parts.push(`"idle_time_limit":${formatTime(h.idle_time_limit)}`);
  }
  if (h.command !== undefined) parts.push(`"command":${jsonString(h.command)}`);
  if (h.title !== undefined) parts.push(`"title":${jsonString(h.title)}`);
  if (h.env !== undefined) {
    const env = Object.entries(h.env).map(([k, v]) => `${jsonString(k)}:${jsonString(String(v))}`);
    parts.push(`"env":{${env.join(',')}}`);
  }
  return `{${parts.join(',')}}`;
}

/** Seconds with at most 6 decimals (microseconds, like asciinema), always written as a float. */
function formatTime(t: number): string {
  const s = t.toFixed(6).replace(/0+$/, '');
  return s.endsWith('.') ? `${s}0` : s;
}

/** One event line (without the trailing newline). */
export function encodeEvent(t: number, code: CastEventCode, data: string): string {
  if (!isNonNegNumber(t)) throw bad(`asciicast event: time must be a finite number >= 0, got ${t}`);
  if (!CODES.has(code)) throw bad(`asciicast event: unknown code ${JSON.stringify(code)}`);
  if (code === 'r' && !RESIZE.test(data)) throw bad(`asciicast event: resize data must be COLSxROWS, got ${JSON.stringify(data)}`);
  return `[${formatTime(t)},"${code}",${jsonString(data)}]`;
}

/**
 * One output or input event line as bytes, newline included: `[time,"o","` +
 * body + `"]\n`, the same bytes as encodeEvent(t, code, text) + '\n' when
 * body is the JSON string body of text. body is copied, not checked: it must
 * come from a JsonBytesEncoder (json-bytes.ts), as CastWriter's does.
 */
export function encodeEventLine(t: number, code: 'o' | 'i', body: Uint8Array): Buffer {
  if (!isNonNegNumber(t)) throw bad(`asciicast event: time must be a finite number >= 0, got ${t}`);
  if (code !== 'o' && code !== 'i') throw bad(`asciicast event: unknown code ${JSON.stringify(code)}`);
  const head = `[${formatTime(t)},"${code}","`;
  const line = Buffer.allocUnsafe(head.length + body.length + 3);
  line.write(head, 0, 'latin1');
  line.set(body, head.length);
  const tail = head.length + body.length;
  line[tail] = 0x22; // "
  line[tail + 1] = 0x5d; // ]
  line[tail + 2] = 0x0a; // \n
  return line;
}

function parseHeader(value: unknown): CastHeader {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('header must be a JSON object');
  const o = value as Record<string, unknown>;
  if (o['version'] !== 2) throw new Error(`unsupported version ${JSON.stringify(o['version'])} (expected 2)`);
  if (!isPosInt(o['width']) || !isPosInt(o['height'])) throw new Error('width and height must be positive integers');
  const h: { -readonly [K in keyof CastHeader]: CastHeader[K] } = { version: 2, width: o['width'], height: o['height'] };
  for (const key of ['timestamp', 'duration', 'idle_time_limit'] as const) {
    const v = o[key];
    if (v === undefined || v === null) continue;
    if (!isNonNegNumber(v)) throw new Error(`${key} must be a non-negative number`);
    h[key] = v;
  }
  for (const key of ['command', 'title'] as const) {
    const v = o[key];
    if (v === undefined || v === null) continue;
    if (typeof v !== 'string') throw new Error(`${key} must be a string`);
    h[key] = v;
  }
  const env = o['env'];
  if (env !== undefined && env !== null) {
    if (typeof env !== 'object' || Array.isArray(env)) throw new Error('env must be an object');
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(env)) {
      // asciinema writes null for unset variables; keep only strings.
      if (v === null) continue;
      if (typeof v !== 'string') throw new Error(`env.${k} must be a string`);
      out[k] = v;
    }
    h.env = out;
  }
  // Other keys (theme, ...) are legal in v2 and ignored.
  return h;
}

function parseEvent(value: unknown, lastTime: number): CastEvent {
  if (!Array.isArray(value) || value.length !== 3) throw new Error('event must be a 3-element array');
  const [time, code, data] = value as [unknown, unknown, unknown];
  if (!isNonNegNumber(time)) throw new Error('event time must be a non-negative number');
  if (time < lastTime) throw new Error(`event time ${time} is before the previous event (${lastTime})`);
  if (typeof code !== 'string' || !CODES.has(code)) throw new Error(`unknown event code ${JSON.stringify(code)}`);
  if (typeof data !== 'string') throw new Error('event data must be a string');
  if (code === 'r' && !RESIZE.test(data)) throw new Error(`resize data must be COLSxROWS, got ${JSON.stringify(data)}`);
  return { time, code: code as CastEventCode, data };
}

export interface CastParserOptions {
  /** Longest accepted line in UTF-16 units; bounds memory on a damaged file. Default 64 Mi. */
  readonly maxLineLength?: number;
  /**
   * Accept an unterminated last line that does not parse (a writer that died
   * mid-write) by dropping it; `truncated` then reports it. Default false.
   */
  readonly allowTruncatedTail?: boolean;
}

/**
 * Incremental parser: feed chunks split anywhere (Buffers may split UTF-8
 * sequences), get complete lines back. Errors name the 1-based line number.
 */
export class CastLineParser {
  private readonly decoder = new StringDecoder('utf8');
  private readonly maxLine: number;
  private readonly allowTruncatedTail: boolean;
  private buf = '';
  private lineNo = 0;
  private lastTime = 0;
  private sawHeader = false;
  private blankLine = 0;
  private ended = false;
  private torn = false;

  constructor(opts: CastParserOptions = {}) {
    this.maxLine = opts.maxLineLength ?? 64 * 1024 * 1024;
    this.allowTruncatedTail = opts.allowTruncatedTail ?? false;
  }

  /** True when end() dropped a damaged unterminated last line. */
  get truncated(): boolean {
    return this.torn;
  }

  push(chunk: string | Uint8Array): CastLine[] {
    if (this.ended) throw new Error('CastLineParser: push after end');
    const text = typeof chunk === 'string' ? chunk : this.decoder.write(chunk);
    const out: CastLine[] = [];
    let start = 0;
    let nl = text.indexOf('\n');
    // Only the new text is searched, so many small chunks stay linear.
    while (nl !== -1) {
      const line = this.buf + text.slice(start, nl);
      this.buf = '';
      out.push(...this.line(line));
      start = nl + 1;
      nl = text.indexOf('\n', start);
    }
    this.buf += text.slice(start);
    if (this.buf.length > this.maxLine) throw bad(`line ${this.lineNo + 1}: line longer than ${this.maxLine} characters`);
    return out;
  }

  end(): CastLine[] {
    if (this.ended) return [];
    this.ended = true;
    this.buf += this.decoder.end();
    const out: CastLine[] = [];
    if (this.buf.length > 0) {
      const tail = this.buf;
      this.buf = '';
      try {
        out.push(...this.line(tail));
      } catch (e) {
        if (!this.allowTruncatedTail || !this.sawHeader) throw e;
        this.torn = true;
      }
    }
    if (!this.sawHeader) throw bad('line 1: empty recording (no asciicast header)');
    return out;
  }

  private line(raw: string): CastLine[] {
    this.lineNo++;
    const text = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (text.trim() === '') {
      // A blank line is only tolerated as the very last one (an extra newline at EOF).
      if (this.blankLine === 0) this.blankLine = this.lineNo;
      return [];
    }
    if (this.blankLine !== 0) throw bad(`line ${this.blankLine}: empty line`);
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (e) {
      throw bad(`line ${this.lineNo}: not valid JSON (${(e as Error).message})`);
    }
    try {
      if (!this.sawHeader) {
        const header = parseHeader(value);
        this.sawHeader = true;
        return [{ kind: 'header', header }];
      }
      const event = parseEvent(value, this.lastTime);
      this.lastTime = event.time;
      return [{ kind: 'event', event }];
    } catch (e) {
      throw bad(`line ${this.lineNo}: ${(e as Error).message}`);
    }
  }
}

/** Parses a whole recording; throws WicketError(WICKET_ERR_RECORDING, 'line N: ...'). */
export function parseCast(text: string, opts?: CastParserOptions): ParsedCast {
  const parser = new CastLineParser(opts);
  const lines = [...parser.push(text), ...parser.end()];
  const first = lines[0];
  // end() throws when there is no header, and the header is always the first line.
  if (first?.kind !== 'header') throw bad('line 1: empty recording (no asciicast header)');
  const events: CastEvent[] = [];
  for (const l of lines) if (l.kind === 'event') events.push(l.event);
  return { header: first.header, events };
}
