/**
 * What every CLI command shares: locating and loading the config, opening the
 * store and the audit writer (the admin context: commands on the broker host
 * act on config and store directly), and printing human or --json output.
 */
import { userInfo } from 'node:os';
import { loadConfig } from '../config/load.js';
import { resolveConfigPath } from '../config/find.js';
import type { Config } from '../config/schema.js';
import { openStore } from '../store/open.js';
import type { AuditInput, Store } from '../store/types.js';
import { AuditWriter } from '../audit/writer.js';

export interface GlobalOptions {
  readonly config?: string;
  readonly json?: boolean;
}

export interface Context {
  readonly config: Config;
  readonly store: Store;
  readonly audit: AuditWriter;
  readonly json: boolean;
  readonly now: () => number;
  /** Who is acting: --as USER, else the OS account on the broker host. */
  actor(as?: string): string;
  /** Records an admin action durably before the command reports success. */
  record(kind: string, data: Record<string, unknown>, extra?: Partial<AuditInput>): Promise<void>;
  close(): Promise<void>;
}

export function loadCliConfig(opts: GlobalOptions): Config {
  const config = loadConfig(resolveConfigPath(opts.config));
  for (const w of config.warnings) process.stderr.write(`wicket: warning: ${w}\n`);
  return config;
}

export async function openContext(opts: GlobalOptions): Promise<Context> {
  const config = loadCliConfig(opts);
  const store = await openStore(config.store, config.dataDir);
  const audit = new AuditWriter(store, config.dataDir);
  const osUser = `os:${safeUserName()}`;
  const ctx: Context = {
    config,
    store,
    audit,
    json: opts.json === true,
    now: Date.now,
    actor: (as) => as ?? osUser,
    record: async (kind, data, extra) => {
      await audit.appendNow({ ts: Date.now(), kind, actor: extra?.actor ?? osUser, target: extra?.target ?? null, sessionId: extra?.sessionId ?? null, data });
    },
    close: async () => {
      await audit.close();
      await store.close();
    },
  };
  return ctx;
}

function safeUserName(): string {
  try {
    return userInfo().username;
  } catch {
    return String(process.getuid?.() ?? 'unknown');
  }
}

/** Runs `fn` with a context and always closes it. */
export async function withContext<T>(opts: GlobalOptions, fn: (ctx: Context) => Promise<T>): Promise<T> {
  const ctx = await openContext(opts);
  try {
    return await fn(ctx);
  } finally {
    await ctx.close();
  }
}

/** Prints `human` or, with --json, `data` as one JSON document. */
export function print(json: boolean, human: string, data: unknown): void {
  process.stdout.write(json ? `${JSON.stringify(data, null, 2)}\n` : human.endsWith('\n') || human === '' ? human : `${human}\n`);
}

/** Reads all of stdin (for secrets piped in). */
export async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
