/**
 * `notify:` from a loaded config -> webhook specs with their secrets resolved
 * (src/config/secrets.ts resolveNotifySecrets, same rules as target secrets).
 * Done when the broker starts and on reload rather than in every config load,
 * so a CLI command on the broker host never needs a webhook's secret.
 * Problems are reported like the loader's: `wicket.yaml:31: notify[0].secret: ...`.
 */
import { readFileSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { LineCounter, parseDocument } from 'yaml';
import { WicketError } from '../errors.js';
import { formatPath, locate, type ConfigProblem } from '../config/locate.js';
import type { Config } from '../config/schema.js';
import { resolveNotifySecrets } from '../config/secrets.js';
import type { WebhookSpec } from './webhook.js';

export interface ResolvedWebhooks {
  readonly specs: WebhookSpec[];
  /** `file:line: path: message` lines (literal secrets). */
  readonly warnings: string[];
}

/** `file:line: path: message` for each problem; the line is looked up in the file as it is now. */
function formatProblems(config: Config, problems: readonly ConfigProblem[]): string[] {
  const file = basename(config.path);
  let lineOf = (_p: ConfigProblem): number | null => null;
  try {
    const lines = new LineCounter();
    const doc = parseDocument(readFileSync(config.path, 'utf8'), { lineCounter: lines });
    lineOf = (p) => locate(doc, lines, p.path).line;
  } catch {
    // The file is gone or unreadable: the paths alone still say where.
  }
  return problems.map((p) => {
    const line = lineOf(p);
    return `${file}${line === null ? '' : `:${line}`}: ${formatPath(p.path)}: ${p.message}`;
  });
}

/** Throws WicketError('WICKET_ERR_CONFIG') naming every unresolvable reference. */
export function resolveWebhooks(config: Config, env: NodeJS.ProcessEnv = process.env): ResolvedWebhooks {
  if (config.notify.length === 0) return { specs: [], warnings: [] };
  const r = resolveNotifySecrets(config.notify, dirname(config.path), env);
  if (r.problems.length > 0) {
    const errors = formatProblems(config, r.problems);
    throw new WicketError('WICKET_ERR_CONFIG', errors.join('\n'), { file: config.path, errors });
  }
  const specs = r.notify.map((n, i): WebhookSpec => ({
    label: n.name ?? `notify[${i}]`,
    url: n.url,
    events: n.events,
    format: n.format,
    ...(n.secret !== undefined ? { secret: n.secret } : {}),
  }));
  return { specs, warnings: formatProblems(config, r.literals) };
}
