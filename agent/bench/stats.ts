import type { LatencyStats } from '../../shared/protocol/index.js';

/** Percentile by linear interpolation between closest ranks; `sorted` ascending, p in [0, 100]. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return 0;
  const rank = (p / 100) * (sorted.length - 1);
  const lo = Math.floor(rank);
  const hi = Math.ceil(rank);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo);
}

export function latencyStats(samplesMs: readonly number[]): LatencyStats {
  const sorted = Float64Array.from(samplesMs).sort();
  let sum = 0;
  for (const v of sorted) sum += v;
  return {
    count: sorted.length,
    p50Ms: round(percentile(sorted, 50)),
    p90Ms: round(percentile(sorted, 90)),
    p99Ms: round(percentile(sorted, 99)),
    maxMs: round(sorted.length ? sorted[sorted.length - 1] : 0),
    meanMs: round(sorted.length ? sum / sorted.length : 0),
  };
}

function round(ms: number): number {
  return Math.round(ms * 1e4) / 1e4;
}
