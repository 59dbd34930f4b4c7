/**
 * Maps a config path (`['targets', 2, 'address']`) to a line in the YAML
 * source and to the text people read (`targets[2].address`). Pure: works on
 * an already-parsed yaml Document and its LineCounter.
 */
import { isAlias, isMap, isScalar, isSeq, type Document, type LineCounter } from 'yaml';

export type ConfigPath = readonly PropertyKey[];

/** One problem found in the config, before it is given a file and a line. */
export interface ConfigProblem {
  readonly path: ConfigPath;
  readonly message: string;
}

export interface Location {
  /** 1-based line. */
  readonly line: number;
  /** False when the last key (or index) is absent; `line` is then the parent mapping's. */
  readonly found: boolean;
}

const PLAIN_KEY = /^[A-Za-z_][A-Za-z0-9_-]*$/;

/** `targets[2].address`; keys that are not identifiers are quoted: `listen["web ui"]`. */
export function formatPath(path: ConfigPath): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else {
      const key = String(seg);
      if (PLAIN_KEY.test(key)) out += out === '' ? key : `.${key}`;
      else out += `[${JSON.stringify(key)}]`;
    }
  }
  return out;
}

function startOf(node: unknown): number | undefined {
  if (node !== null && typeof node === 'object' && 'range' in node) {
    const range = (node as { range?: readonly number[] | null }).range;
    if (range && typeof range[0] === 'number') return range[0];
  }
  return undefined;
}

function keyText(key: unknown): string {
  return isScalar(key) ? String(key.value) : String(key);
}

/**
 * The line of the node at `path`. A mapping value is reported at its key's
 * line (`listen:` rather than the first line of the block under it); a list
 * item at the line where the item starts.
 */
export function locate(doc: Document, lines: LineCounter, path: ConfigPath): Location {
  const lineOf = (node: unknown, fallback: number): number => {
    const at = startOf(node);
    return at === undefined ? fallback : lines.linePos(at).line;
  };
  let node: unknown = doc.contents;
  let line = lineOf(node, 1);
  for (const seg of path) {
    if (isAlias(node)) node = node.resolve(doc);
    if (isMap(node)) {
      const pair = node.items.find((p) => keyText(p.key) === String(seg));
      if (pair === undefined) return { line, found: false };
      line = lineOf(pair.key, line);
      node = pair.value;
    } else if (isSeq(node) && typeof seg === 'number') {
      const item: unknown = node.items[seg];
      if (item === undefined) return { line, found: false };
      line = lineOf(item, line);
      node = item;
    } else {
      return { line, found: false };
    }
  }
  return { line, found: true };
}

