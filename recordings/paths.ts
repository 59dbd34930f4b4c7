/**
 * Where recordings live. Paths are relative to data_dir and use `/` on every
 * platform, because they are stored in the session record (SessionRecord.recordingPath).
 */
import { isAbsolute, relative, resolve, sep } from 'node:path';
import { WicketError } from '../src/errors.js';

/** Session ids end up in file names: only a safe alphabet, so no `..`, `/` or NUL can sneak in. */
const SAFE_ID = /^[A-Za-z0-9_-]{1,128}$/;

/** `recordings/YYYY/MM/DD/<id>.cast`, dated by the session start in UTC. */
export function recordingPath(sessionId: string, startedAt: number): string {
  if (!SAFE_ID.test(sessionId)) {
    throw new WicketError('WICKET_ERR_RECORDING', `invalid session id for a recording path: ${JSON.stringify(sessionId.slice(0, 200))}`);
  }
  const d = new Date(startedAt);
  if (!Number.isFinite(startedAt) || Number.isNaN(d.getTime())) {
    throw new WicketError('WICKET_ERR_RECORDING', `invalid session start time: ${startedAt}`);
  }
  const yyyy = String(d.getUTCFullYear()).padStart(4, '0');
  const mm = String(d.getUTCMonth() + 1).padStart(2, '0');
  const dd = String(d.getUTCDate()).padStart(2, '0');
  return `recordings/${yyyy}/${mm}/${dd}/${sessionId}.cast`;
}

/**
 * Absolute path of a stored relative recording path, refusing anything that
 * would leave data_dir (a tampered store row must not make the web app or
 * `wicket replay` read arbitrary files).
 */
export function resolveRecordingPath(dataDir: string, relPath: string): string {
  const root = resolve(dataDir);
  const full = resolve(root, relPath);
  const rel = relative(root, full);
  if (relPath.includes('\0') || isAbsolute(relPath) || rel === '' || rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel)) {
    throw new WicketError('WICKET_ERR_RECORDING', `recording path outside the data directory: ${JSON.stringify(relPath)}`);
  }
  return full;
}
