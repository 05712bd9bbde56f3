/** Tables on stdout and JSON result files in bench-results/. */
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';

export type Cell = number | string | null;

export interface Column {
  key: string;
  label: string;
  /** Which way is better, for picking the best run; none: not compared. */
  better?: 'higher' | 'lower';
  /** Decimals shown; default 0. */
  digits?: number;
}

export function formatCell(v: Cell | undefined, digits = 0): string {
  if (v === null || v === undefined) return '–';
  if (typeof v === 'string') return v;
  if (Number.isNaN(v)) return '–';
  return v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** Prints rows as an aligned text table (numbers right-aligned). */
export function printTable(columns: readonly Column[], rows: readonly Record<string, Cell>[]): void {
  const cells = rows.map((r) => columns.map((c) => formatCell(r[c.key], c.digits)));
  const widths = columns.map((c, i) => Math.max(c.label.length, ...cells.map((row) => (row[i] as string).length)));
  const numeric = columns.map((c) => rows.some((r) => typeof r[c.key] === 'number'));
  const line = (values: string[]) =>
    values.map((v, i) => (numeric[i] ? v.padStart(widths[i] as number) : v.padEnd(widths[i] as number))).join('  ');
  process.stdout.write(`${line(columns.map((c) => c.label))}\n`);
  process.stdout.write(`${widths.map((w) => '-'.repeat(w)).join('  ')}\n`);
  for (const row of cells) process.stdout.write(`${line(row)}\n`);
}

/** What the machine looked like when the run started (the figures depend on it). */
export function machineNote() {
  const list = cpus();
  return {
    cpus: list.length,
    cpuModel: list[0]?.model ?? 'unknown',
    loadavg1m: Number(loadavg()[0]?.toFixed(2)),
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
  };
}

/** Writes `bench-results/<scenario>-<store>-<timestamp>.json`; returns its path. */
export async function writeResult(scenario: string, store: string, data: unknown): Promise<string> {
  const dir = join(process.cwd(), 'bench-results');
  await mkdir(dir, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const file = join(dir, `${scenario}-${store}-${stamp}.json`);
  await writeFile(file, `${JSON.stringify(data, null, 2)}\n`);
  return file;
}
