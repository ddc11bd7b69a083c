import { describe, expect, it } from 'vitest';
import { latencyStats, percentile } from '../../../../agent/bench/stats.js';

describe('latency statistics', () => {
  it('interpolates percentiles between ranks', () => {
    const sorted = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
    expect(percentile(sorted, 50)).toBe(5.5);
    expect(percentile(sorted, 90)).toBeCloseTo(9.1);
    expect(percentile(sorted, 100)).toBe(10);
    expect(percentile([], 50)).toBe(0);
  });

  it('summarises unsorted samples', () => {
    const s = latencyStats([5, 1, 3, 2, 4]);
    expect(s).toEqual({ count: 5, p50Ms: 3, p90Ms: 4.6, p99Ms: 4.96, maxMs: 5, meanMs: 3 });
  });
});
