import { pathToFileURL } from 'node:url';
export interface BenchRow {
  readonly metric: string;
  readonly value: number;
  readonly unit: string;
  readonly note?: string;
}

export interface BenchResult {
  readonly name: string;
  readonly rows: readonly BenchRow[];
}

/** Runs `bench` and prints its table when `moduleUrl` is the script node was started with (not when bench/run.ts imports it). */
export function runIfMain(moduleUrl: string, name: string, bench: () => Promise<BenchResult>): void {
  if (process.argv[1] === undefined || moduleUrl !== pathToFileURL(process.argv[1]).href) return;
  bench().then(
    (r) => process.stdout.write(`${formatBench(r)}\n`),
    (err: unknown) => {
      process.stderr.write(`bench ${name}: ${err instanceof Error ? err.stack : String(err)}\n`);
      process.exit(1);
    },
  );
}

export function formatBench(r: BenchResult): string {
  const lines = [`## ${r.name}`, '', '| metric | value | unit | note |', '|---|---:|---|---|'];
  for (const row of r.rows) {
    const v = Number.isInteger(row.value) ? String(row.value) : row.value.toFixed(row.value < 10 ? 3 : 1);
    lines.push(`| ${row.metric} | ${v} | ${row.unit} | ${row.note ?? ''} |`);
  }
  return lines.join('\n');
}
