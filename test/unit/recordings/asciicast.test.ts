import { describe, expect, it } from 'vitest';
import { CastLineParser, encodeEvent, encodeHeader, jsonString, parseCast, type CastLine } from '../../../recordings/asciicast.js';
import { isWicketError } from '../../../src/errors.js';

function expectRecordingError(fn: () => unknown, message: RegExp): void {
  try {
    fn();
  } catch (e) {
    expect(isWicketError(e, 'WICKET_ERR_RECORDING')).toBe(true);
    expect((e as Error).message).toMatch(message);
    return;
  }
  throw new Error('expected a WICKET_ERR_RECORDING error');
}

const SAMPLE = [
  encodeHeader({ version: 2, width: 80, height: 24, timestamp: 1504467315, title: 'Démo ✓', env: { TERM: 'xterm-256color', SHELL: '/bin/bash' } }),
  encodeEvent(0.248848, 'o', '\u001b[1;31mHello \u001b[32mWörld! 😀\u001b[0m\r\n'),
  encodeEvent(1.0, 'i', 'ls\r'),
  encodeEvent(1.5, 'm', ''),
  encodeEvent(4.05, 'r', '100x40'),
  encodeEvent(6.541828, 'o', 'Bye!\u2028\u0007'),
].join('\n') + '\n';

describe('encodeHeader', () => {
  it('writes the v2 header fields in spec order', () => {
    const line = encodeHeader({ version: 2, width: 80, height: 24, timestamp: 1504467315.9, idle_time_limit: 2, title: 't', env: { TERM: 'xterm' } });
    expect(line).toBe('{"version":2,"width":80,"height":24,"timestamp":1504467315,"idle_time_limit":2.0,"title":"t","env":{"TERM":"xterm"}}');
    expect(JSON.parse(line)).toMatchObject({ version: 2, width: 80, height: 24 });
  });

  it('rejects sizes that are not positive integers', () => {
    expectRecordingError(() => encodeHeader({ version: 2, width: 0, height: 24 }), /width and height/);
    expectRecordingError(() => encodeHeader({ version: 2, width: 80.5, height: 24 }), /width and height/);
  });
});

describe('encodeEvent', () => {
  it('writes time in seconds with at most 6 decimals, always as a float', () => {
    expect(encodeEvent(0, 'o', 'x')).toBe('[0.0,"o","x"]');
    expect(encodeEvent(1.5, 'o', 'x')).toBe('[1.5,"o","x"]');
    expect(encodeEvent(2, 'o', 'x')).toBe('[2.0,"o","x"]');
    expect(encodeEvent(1.23456789, 'o', 'x')).toBe('[1.234568,"o","x"]');
    expect(encodeEvent(0.0000001, 'o', 'x')).toBe('[0.0,"o","x"]');
    expect(encodeEvent(123456.000001, 'i', 'x')).toBe('[123456.000001,"i","x"]');
  });

  it('rejects bad times, codes and resize data', () => {
    expectRecordingError(() => encodeEvent(-1, 'o', ''), /time/);
    expectRecordingError(() => encodeEvent(Number.NaN, 'o', ''), /time/);
    expectRecordingError(() => encodeEvent(Infinity, 'o', ''), /time/);
    expectRecordingError(() => encodeEvent(0, 'x' as 'o', ''), /unknown code/);
    expectRecordingError(() => encodeEvent(0, 'r', '80 x 24'), /COLSxROWS/);
    expectRecordingError(() => encodeEvent(0, 'r', '0x24'), /COLSxROWS/);
  });

  it('produces valid JSON and valid UTF-8 for any string, lone surrogates included', () => {
    const nasty = ['\uD800', 'a\uDC00b', '\uDBFF\uDFFF', '\uDC00\uD800', '\u0000\u001f\u007f\u0085\u009f', '\u2028\u2029', '"\\/', '😀'];
    for (const s of nasty) {
      const line = encodeEvent(1, 'o', s);
      const back = (JSON.parse(line) as [number, string, string])[2];
      // Well-formed: survives a UTF-8 round trip unchanged.
      expect(Buffer.from(back, 'utf8').toString('utf8')).toBe(back);
      expect(line).not.toMatch(/[\u007f-\u009f\u2028\u2029]/);
    }
    expect(JSON.parse(jsonString('x\uD800y'))).toBe('x\uFFFDy');
    expect(JSON.parse(jsonString('\uDBFF\uDFFF'))).toBe('\uDBFF\uDFFF');
    expect(JSON.parse(jsonString('\u0085'))).toBe('\u0085');
  });
});

describe('parseCast', () => {
  it('round-trips what the encoder writes', () => {
    const cast = parseCast(SAMPLE);
    expect(cast.header).toEqual({ version: 2, width: 80, height: 24, timestamp: 1504467315, title: 'Démo ✓', env: { TERM: 'xterm-256color', SHELL: '/bin/bash' } });
    expect(cast.events.map((e) => e.code)).toEqual(['o', 'i', 'm', 'r', 'o']);
    expect(cast.events[0]!.data).toContain('😀');
    expect(cast.events[4]!.data).toBe('Bye!\u2028\u0007');
  });

  it('accepts the example from the asciicast v2 documentation (spaces, theme, null env)', () => {
    const doc =
      '{"version": 2, "width": 80, "height": 24, "timestamp": 1504467315, "title": "Demo", "env": {"TERM": "xterm-256color", "SHELL": null}, "theme": {"fg": "#d0d0d0"}}\n' +
      '[0.248848, "o", "\\u001b[1;31mHello \\u001b[32mWorld!\\u001b[0m\\n"]\n[1.001376, "o", "That was ok\\rThis is better."]\n';
    const cast = parseCast(doc);
    expect(cast.header.env).toEqual({ TERM: 'xterm-256color' });
    expect(cast.events).toHaveLength(2);
  });

  it('accepts a missing final newline and CRLF line ends', () => {
    expect(parseCast(SAMPLE.trimEnd()).events).toHaveLength(5);
    expect(parseCast(SAMPLE.replace(/\n/g, '\r\n')).events).toHaveLength(5);
  });

  it.each([
    ['', /line 1: empty recording/],
    ['\n', /line 1: empty recording/],
    ['[1,"o","x"]\n', /line 1: header must be a JSON object/],
    ['{"version":1,"width":80,"height":24}\n', /line 1: unsupported version 1/],
    ['{"version":2,"width":80}\n', /line 1: width and height/],
    ['{"version":2,"width":80,"height":24,"title":5}\n', /line 1: title must be a string/],
    ['{"version":2,"width":80,"height":24,"env":{"A":1}}\n', /line 1: env.A must be a string/],
    ['{"version":2,"width":80,"height":24}\n[1,"o"]\n', /line 2: event must be a 3-element array/],
    ['{"version":2,"width":80,"height":24}\n[1,"o","x"\n', /line 2: not valid JSON/],
    ['{"version":2,"width":80,"height":24}\n["1","o","x"]\n', /line 2: event time/],
    ['{"version":2,"width":80,"height":24}\n[-1,"o","x"]\n', /line 2: event time/],
    ['{"version":2,"width":80,"height":24}\n[1,"q","x"]\n', /line 2: unknown event code "q"/],
    ['{"version":2,"width":80,"height":24}\n[1,"o",7]\n', /line 2: event data must be a string/],
    ['{"version":2,"width":80,"height":24}\n[1,"r","wide"]\n', /line 2: resize data/],
    ['{"version":2,"width":80,"height":24}\n[2,"o","a"]\n[1,"o","b"]\n', /line 3: event time 1 is before the previous event/],
    ['{"version":2,"width":80,"height":24}\n\n[1,"o","b"]\n', /line 2: empty line/],
  ])('rejects %j', (text, message) => {
    expectRecordingError(() => parseCast(text), message);
  });

  it('can drop a damaged unterminated last line when asked (writer died mid-write)', () => {
    const damaged = SAMPLE + '[7.0,"o","half';
    expectRecordingError(() => parseCast(damaged), /line 7: not valid JSON/);
    const parser = new CastLineParser({ allowTruncatedTail: true });
    const lines = [...parser.push(damaged), ...parser.end()];
    expect(lines).toHaveLength(6);
    expect(parser.truncated).toBe(true);
  });

  it('bounds the length of a line', () => {
    const parser = new CastLineParser({ maxLineLength: 100 });
    expect(() => parser.push('{"version":2,"width":80,"height":24}\n[1,"o","' + 'x'.repeat(200))).toThrow(/line 2: line longer than 100/);
  });
});

describe('CastLineParser (streaming)', () => {
  const whole = parseCast(SAMPLE);
  const bytes = Buffer.from(SAMPLE, 'utf8');

  function collect(chunks: (string | Buffer)[]): CastLine[] {
    const p = new CastLineParser();
    const out: CastLine[] = [];
    for (const c of chunks) out.push(...p.push(c));
    out.push(...p.end());
    return out;
  }

  function asParsed(lines: CastLine[]): unknown {
    return { header: lines[0]!.kind === 'header' ? lines[0]!.header : null, events: lines.slice(1).map((l) => (l.kind === 'event' ? l.event : null)) };
  }

  it('gives the same result for a Buffer split at every byte offset (splitting UTF-8 sequences)', () => {
    for (let i = 0; i <= bytes.length; i++) {
      expect(asParsed(collect([bytes.subarray(0, i), bytes.subarray(i)])), `split at ${i}`).toEqual(whole);
    }
  });

  it('gives the same result for a string split at every pair of offsets', () => {
    for (let i = 0; i <= SAMPLE.length; i += 1) {
      for (let j = i; j <= SAMPLE.length; j += 7) {
        expect(asParsed(collect([SAMPLE.slice(0, i), SAMPLE.slice(i, j), SAMPLE.slice(j)]))).toEqual(whole);
      }
    }
  });

  it('handles one byte at a time', () => {
    expect(asParsed(collect([...bytes].map((b) => Buffer.from([b]))))).toEqual(whole);
  });

  it('reports lines as soon as they are complete, with correct line numbers across chunks', () => {
    const p = new CastLineParser();
    expect(p.push('{"version":2,"width":80,"hei')).toEqual([]);
    expect(p.push('ght":24}\n[0.5,"o",')).toHaveLength(1);
    expect(p.push('"x"]\n')).toEqual([{ kind: 'event', event: { time: 0.5, code: 'o', data: 'x' } }]);
    expect(() => p.push('[0.1,"o","y"]\n')).toThrow(/^line 3: event time 0.1 is before/);
  });
});
