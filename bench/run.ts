/**
 * `npm run bench -- NAME...` runs the named benchmarks (all when none is
 * named) and prints Markdown tables for README. Every figure that has a
 * baseline is measured against it in the same run.
 */
import { formatBench, type BenchResult } from './types.js';

const BENCHES: Record<string, () => Promise<BenchResult>> = {
  store: async () => (await import('./store.js')).benchStore(),
  postgres: async () => (await import('./postgres.js')).benchPostgres(),
  ssh: async () => (await import('./ssh.js')).benchSsh(),
  mysql: async () => (await import('./mysql.js')).benchMysql(),
};

async function main(): Promise<void> {
  const names = process.argv.slice(2);
  const unknown = names.filter((n) => !(n in BENCHES));
  if (unknown.length) {
    process.stderr.write(`bench: unknown benchmark ${unknown.join(', ')}; known: ${Object.keys(BENCHES).join(', ')}\n`);
    process.exit(2);
  }
  for (const name of names.length ? names : Object.keys(BENCHES)) {
    process.stdout.write(`${formatBench(await BENCHES[name]!())}\n\n`);
  }
}

void main();
