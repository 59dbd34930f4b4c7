/**
 * Loads wicket.yaml (DESIGN.md §3): YAML -> schema -> cross-field checks ->
 * secret references. Every problem in the file is reported at once, one per
 * line, as `<file>:<line>: <path>: <message>`, sorted by line, in a single
 * WicketError('WICKET_ERR_CONFIG').
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { LineCounter, parseDocument, type Document } from 'yaml';
import { WicketError } from '../errors.js';
import { crossCheck } from './checks.js';
import { humanErrors, toProblems } from './issues.js';
import { formatPath, locate, type ConfigProblem } from './locate.js';
import { configSchema, type Config } from './schema.js';
import { fsCode, resolveSecrets } from './secrets.js';

interface Line {
  readonly line: number;
  readonly text: string;
}

function fail(file: string, lines: readonly Line[]): never {
  const sorted = [...lines].sort((a, b) => a.line - b.line);
  const texts = [...new Set(sorted.map((l) => l.text))];
  throw new WicketError('WICKET_ERR_CONFIG', texts.join('\n'), { file, errors: texts });
}

/** yaml's own message, on one line, without its "at line X, column Y" suffix. */
function yamlMessage(message: string): string {
  const first = message.split('\n')[0] ?? message;
  return first.replace(/ at line \d+, column \d+:?\s*$/, '').trim();
}

/**
 * Validates `source` as the contents of the config file at `path` (used for
 * line numbers, the hash, and resolving data_dir and file: references).
 */
export function parseConfig(source: Buffer | string, path: string, env: NodeJS.ProcessEnv = process.env): Config {
  const abs = resolve(path);
  const dir = dirname(abs);
  const file = basename(abs);
  const bytes = typeof source === 'string' ? Buffer.from(source, 'utf8') : source;
  const text = bytes.toString('utf8');
  const lineCounter = new LineCounter();
  const doc: Document = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const at = (offset: number | undefined): number => (offset === undefined ? 1 : lineCounter.linePos(offset).line);

  if (doc.errors.length > 0) {
    fail(abs, doc.errors.map((e) => ({ line: at(e.pos[0]), text: `${file}:${at(e.pos[0])}: ${yamlMessage(e.message)}` })));
  }
  const warnings: Line[] = doc.warnings.map((w) => ({
    line: at(w.pos[0]),
    text: `${file}:${at(w.pos[0])}: ${yamlMessage(w.message)}`,
  }));

  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    fail(abs, [{ line: 1, text: `${file}:1: ${yamlMessage(e instanceof Error ? e.message : String(e))}` }]);
  }
  if (data === null || data === undefined) {
    fail(abs, [{ line: 1, text: `${file}:1: the file is empty; see examples/wicket.yaml` }]);
  }

  const format = (p: ConfigProblem): Line => {
    const { line } = locate(doc, lineCounter, p.path);
    const where = formatPath(p.path);
    return { line, text: where === '' ? `${file}:${line}: ${p.message}` : `${file}:${line}: ${where}: ${p.message}` };
  };

  const parsed = configSchema.safeParse(data, { error: humanErrors });
  if (!parsed.success) {
    const missing = (p: readonly PropertyKey[]): boolean => !locate(doc, lineCounter, p).found;
    fail(abs, toProblems(parsed.error.issues, missing).map(format));
  }
  const raw = parsed.data;
  const secrets = resolveSecrets(raw.targets, dir, env);
  const problems = [...crossCheck(raw), ...secrets.problems];
  if (problems.length > 0) fail(abs, problems.map(format));

  const allWarnings = [...warnings, ...secrets.literals.map(format)].sort((a, b) => a.line - b.line);
  return {
    ...raw,
    targets: secrets.targets,
    path: abs,
    hash: createHash('sha256').update(bytes).digest('hex'),
    dataDir: resolve(dir, raw.data_dir),
    warnings: allWarnings.map((w) => w.text),
  };
}

/** Reads and validates the config file; throws one WicketError('WICKET_ERR_CONFIG') listing every problem. */
export function loadConfig(path: string, env: NodeJS.ProcessEnv = process.env): Config {
  const abs = resolve(path);
  let bytes: Buffer;
  try {
    bytes = readFileSync(abs);
  } catch (e) {
    const code = fsCode(e);
    const hint = code === 'ENOENT' ? ' (pass --config FILE, set WICKET_CONFIG, or run wicket init)' : '';
    throw new WicketError('WICKET_ERR_CONFIG', `${abs}: cannot read config file: ${code}${hint}`, {
      file: abs,
      errors: [],
    });
  }
  return parseConfig(bytes, abs, env);
}
