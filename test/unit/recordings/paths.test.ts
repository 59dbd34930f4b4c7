import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { recordingPath, resolveRecordingPath } from '../../../recordings/paths.js';
import { isWicketError } from '../../../src/errors.js';

describe('recordingPath', () => {
  it('dates the path by the UTC day of the session start', () => {
    expect(recordingPath('abc_DEF-123', Date.UTC(2026, 10, 27, 23, 59, 59))).toBe('recordings/2026/11/27/abc_DEF-123.cast');
    expect(recordingPath('x', Date.UTC(2026, 0, 2, 0, 0, 0))).toBe('recordings/2026/01/02/x.cast');
  });

  it.each(['', '../etc/passwd', 'a/b', 'a\\b', 'a.b', '..', 'a\0b', 'é', 'x'.repeat(129), ' a'])('rejects the id %j', (id) => {
    let err: unknown;
    try {
      recordingPath(id, Date.now());
    } catch (e) {
      err = e;
    }
    expect(isWicketError(err, 'WICKET_ERR_RECORDING')).toBe(true);
  });

  it('rejects an invalid start time', () => {
    expect(() => recordingPath('abc', Number.NaN)).toThrow(/start time/);
    expect(() => recordingPath('abc', 1e20)).toThrow(/start time/);
  });
});

describe('resolveRecordingPath', () => {
  it('resolves stored paths inside the data directory', () => {
    expect(resolveRecordingPath('/data', 'recordings/2026/01/02/x.cast')).toBe(join(resolve('/data'), 'recordings/2026/01/02/x.cast'));
  });

  it.each(['../x.cast', 'recordings/../../x.cast', '/etc/passwd', '', '.', 'a\0b'])('refuses %j', (p) => {
    expect(() => resolveRecordingPath('/data', p)).toThrow(/outside the data directory/);
  });
});
