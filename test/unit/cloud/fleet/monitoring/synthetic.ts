import type { LatencyStats, TelemetryRecord } from '../../../../../shared/protocol/index.js';
import { gaussian } from '../../../../../shared/random.js';

/** Percentile as the agent computes it: linear interpolation between closest ranks. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  const rank = (p / 100) * (sorted.length - 1);
  const lo = Math.floor(rank);
  const hi = Math.ceil(rank);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo);
}

export function summarize(samples: ArrayLike<number>): LatencyStats {
  const sorted = Float64Array.from(samples).sort();
  let sum = 0;
  for (const v of sorted) sum += v;
  return {
    count: sorted.length,
    p50Ms: percentile(sorted, 50),
    p90Ms: percentile(sorted, 90),
    p99Ms: percentile(sorted, 99),
    maxMs: sorted[sorted.length - 1],
    meanMs: sum / sorted.length,
  };
}

export function lognormal(rng: () => number, n: number, medianMs: number, sigma: number): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = medianMs * Math.exp(sigma * gaussian(rng));
  return out;
}

export function record(
  seq: number,
  at: number | string,
  latency: LatencyStats | null,
  extra: Partial<TelemetryRecord> = {},
): TelemetryRecord {
  return {
    seq,
    at: typeof at === 'string' ? at : new Date(at).toISOString(),
    cpuLoad: 20,
    memUsedBytes: 1e9,
    memTotalBytes: 4e9,
    tempC: 50,
    modelId: 'model-a',
    latency,
    ...extra,
  };
}
