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

export function formatBench(r: BenchResult): string {
  const lines = [`## ${r.name}`, '', '| metric | value | unit | note |', '|---|---:|---|---|'];
  for (const row of r.rows) {
    const v = Number.isInteger(row.value) ? String(row.value) : row.value.toFixed(row.value < 10 ? 3 : 1);
    lines.push(`| ${row.metric} | ${v} | ${row.unit} | ${row.note ?? ''} |`);
  }
  return lines.join('\n');
}
