import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, expect } from 'vitest';
import { isWicketError, type WicketError } from '../../../src/errors.js';
import { loadConfig } from '../../../src/config/load.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** Writes `text` as wicket.yaml (plus `files`, relative to it) in a fresh temp folder; returns its path. */
export function writeConfig(text: string, files: Record<string, string> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'wicket-config-'));
  dirs.push(dir);
  const path = join(dir, 'wicket.yaml');
  writeFileSync(path, text);
  for (const [name, content] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, name)), { recursive: true });
    writeFileSync(join(dir, name), content);
  }
  return path;
}

/** Loads `text` and returns the WicketError it must throw. */
export function configError(text: string, env: NodeJS.ProcessEnv = {}): WicketError {
  const path = writeConfig(text);
  let caught: unknown;
  try {
    loadConfig(path, env);
  } catch (e) {
    caught = e;
  }
  expect(isWicketError(caught, 'WICKET_ERR_CONFIG')).toBe(true);
  return caught as WicketError;
}

/** Asserts that loading `text` fails with exactly `lines` (joined by newlines), and nothing else. */
export function expectConfigError(text: string, lines: string[], env: NodeJS.ProcessEnv = {}): void {
  const path = writeConfig(text);
  const expected = lines.join('\n');
  expect(() => loadConfig(path, env)).toThrow(expected);
  const err = configError(text, env);
  expect(err.code).toBe('WICKET_ERR_CONFIG');
  expect(err.message).toBe(expected);
}

/**
 * Eight lines every bad config below starts from, so line numbers in the
 * expected messages can be counted: case text begins on line 9.
 */
export const BASE = `segments:
  - name: sandbox
  - name: payments
targets:
  - name: sandbox
    segment: sandbox
    protocol: shell
    command: [/bin/bash, -l]
`;
