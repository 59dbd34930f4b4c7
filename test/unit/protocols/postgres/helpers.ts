import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { type BackendMessage, decodeBackend } from '../../../../protocols/postgres/backend.js';
import { FrameParser } from '../../../../protocols/postgres/framing.js';
import { type FrontendMessage, type StartupPacket, decodeFrontend, parseStartup } from '../../../../protocols/postgres/frontend.js';
import { isWicketError } from '../../../../src/errors.js';

export const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures');

/** Capture names present in fixtures/, e.g. `psql-1`. */
export function captureNames(): string[] {
  return readdirSync(FIXTURES)
    .filter((f) => f.endsWith('.client.bin'))
    .map((f) => f.slice(0, -'.client.bin'.length))
    .sort();
}

export function fixture(name: string, dir: 'client' | 'server'): Buffer {
  return readFileSync(path.join(FIXTURES, `${name}.${dir}.bin`));
}

/** A decoded frame plus a copy of its exact bytes. */
export interface Decoded<M> {
  msg: M;
  frame: Buffer;
}

const MAX = 1 << 20;

/**
 * Decode a client stream fed as `chunks`: startup-phase packets (SSLRequest
 * etc. loop back to startup), then typed frames. Mirrors what session.ts does.
 */
export function decodeClient(chunks: Buffer[]): { startup: StartupPacket[]; frames: Decoded<FrontendMessage>[] } {
  const startup: StartupPacket[] = [];
  const frames: Decoded<FrontendMessage>[] = [];
  const parser = new FrameParser({ maxMessageBytes: MAX });
  let pending: Buffer = Buffer.alloc(0);
  let phase: 'startup' | 'typed' = 'startup';
  const onFrame = (type: number, body: Buffer, frame: Buffer): void => {
    frames.push({ msg: decodeFrontend(type, body), frame: Buffer.from(frame) });
  };
  for (const chunk of chunks) {
    if (phase === 'typed') {
      parser.push(chunk, onFrame);
      continue;
    }
    pending = Buffer.concat([pending, chunk]);
    for (;;) {
      const got = parseStartup(pending);
      if (got === null) break;
      startup.push(got.packet);
      pending = pending.subarray(got.consumed);
      if (got.packet.type === 'startup') {
        phase = 'typed';
        if (pending.length > 0) parser.push(pending, onFrame);
        break;
      }
    }
  }
  return { startup, frames };
}

export function decodeServer(chunks: Buffer[]): Decoded<BackendMessage>[] {
  const out: Decoded<BackendMessage>[] = [];
  const parser = new FrameParser({ maxMessageBytes: MAX });
  for (const chunk of chunks) {
    parser.push(chunk, (type, body, frame) => out.push({ msg: decodeBackend(type, body), frame: Buffer.from(frame) }));
  }
  return out;
}

/** Every two-piece split of `buf`, including the empty-first/empty-last ones. */
export function* twoPieceSplits(buf: Buffer): Generator<Buffer[]> {
  for (let i = 0; i <= buf.length; i++) yield [buf.subarray(0, i), buf.subarray(i)];
}

export function bytewise(buf: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < buf.length; i++) out.push(buf.subarray(i, i + 1));
  return out;
}

/** Assert `fn` throws WICKET_ERR_PROTOCOL with exactly `message`. */
export function expectProtocolError(fn: () => unknown, message: string): void {
  let thrown: unknown;
  try {
    fn();
  } catch (e) {
    thrown = e;
  }
  expect(isWicketError(thrown, 'WICKET_ERR_PROTOCOL'), `expected WICKET_ERR_PROTOCOL, got ${String(thrown)}`).toBe(true);
  expect((thrown as Error).message).toBe(message);
}

/** Build a typed frame by hand (for malformed-input tests). */
export function rawFrame(type: string, body: Buffer | number[], length?: number): Buffer {
  const b = Buffer.isBuffer(body) ? body : Buffer.from(body);
  const head = Buffer.alloc(5);
  head[0] = type.charCodeAt(0);
  head.writeInt32BE(length ?? b.length + 4, 1);
  return Buffer.concat([head, b]);
}

/** Concatenate parts: strings become UTF-8 + NUL (C strings), numbers[] raw bytes. */
export function body(...parts: (string | number[] | Buffer)[]): Buffer {
  return Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(`${p}\0`) : Buffer.from(p))));
}
