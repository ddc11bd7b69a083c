import { basename } from 'node:path';
import type { BenchmarkResult } from './benchmark.js';

export interface ComparedModel {
  path: string;
  sizeBytes: number;
  result: BenchmarkResult;
  /** This model against the first one (the baseline, e.g. FP32): < 1 is smaller / faster. */
  ratios: { size: number; p50: number; p99: number; throughput: number; load: number };
}

const ratio = (value: number, base: number) => (base > 0 ? Math.round((value / base) * 1000) / 1000 : 0);

/** Ratios of every model against the first, measured in the same run (FP32 vs INT8 side by side). */
export function compareBenchmarks(
  entries: Array<{ path: string; sizeBytes: number; result: BenchmarkResult }>,
): ComparedModel[] {
  const base = entries[0];
  return entries.map((e) => ({
    ...e,
    ratios: {
      size: ratio(e.sizeBytes, base.sizeBytes),
      p50: ratio(e.result.p50Ms, base.result.p50Ms),
      p99: ratio(e.result.p99Ms, base.result.p99Ms),
      throughput: ratio(e.result.throughput, base.result.throughput),
      load: ratio(e.result.loadMs, base.result.loadMs),
    },
  }));
}

/** A plain-text table: one row per model, ratios against the first row. */
export function formatComparison(models: ComparedModel[]): string {
  const header = [
    'model',
    'size MiB',
    'p50 ms',
    'p90 ms',
    'p99 ms',
    'per s',
    'load ms',
    'size x',
    'p50 x',
    'p99 x',
    'per s x',
  ];
  const rows = models.map((m) => [
    basename(m.path),
    (m.sizeBytes / 1048576).toFixed(2),
    m.result.p50Ms.toFixed(3),
    m.result.p90Ms.toFixed(3),
    m.result.p99Ms.toFixed(3),
    m.result.throughput.toFixed(1),
    m.result.loadMs.toFixed(1),
    m.ratios.size.toFixed(3),
    m.ratios.p50.toFixed(3),
    m.ratios.p99.toFixed(3),
    m.ratios.throughput.toFixed(3),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  const throttled = models.some((m) => m.result.throttled);
  return [
    line(header),
    ...rows.map(line),
    `ratios (x) against ${basename(models[0].path)}; same process, same inputs, run one after another.`,
    ...(throttled ? ['THROTTLED during at least one run: latencies are suspect.'] : []),
  ].join('\n');
}
