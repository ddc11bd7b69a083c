import { describe, expect, it } from 'vitest';
import {
  addEncoded,
  addSummary,
  decodeHistogram,
  emptyHistogram,
  encodeHistogram,
  type Histogram,
  mergeInto,
  quantiles,
  total,
} from '../../../../../cloud/fleet/monitoring/histogram.js';
import { createRng, gaussian } from '../../../../../shared/random.js';
import { lognormal, percentile, summarize } from './synthetic.js';

const QS = [0.5, 0.9, 0.99];
const relError = (estimate: number, exact: number) => Math.abs(estimate - exact) / exact;

/**
 * 40 devices x 30 telemetry records x 200 inferences; returns the worst per-device and the
 * fleet-wide relative error of p50/p90/p99 from merged summaries against the exact
 * percentiles of all raw samples.
 */
function mergeAccuracy(gen: (rng: () => number, device: number, record: number) => Float64Array) {
  const rng = createRng(11);
  const device = [0, 0, 0];
  const fleet = emptyHistogram();
  const everything: number[] = [];
  for (let d = 0; d < 40; d++) {
    const h = emptyHistogram();
    const samples: number[] = [];
    for (let r = 0; r < 30; r++) {
      const s = gen(rng, d, r);
      addSummary(h, summarize(s));
      for (const v of s) samples.push(v);
    }
    mergeInto(fleet, h);
    for (const v of samples) everything.push(v);
    const sorted = Float64Array.from(samples).sort();
    quantiles(h, QS).forEach((est, i) => {
      device[i] = Math.max(device[i], relError(est, percentile(sorted, QS[i] * 100)));
    });
  }
  const sorted = Float64Array.from(everything).sort();
  const fleetErr = quantiles(fleet, QS).map((est, i) => relError(est, percentile(sorted, QS[i] * 100)));
  return { device, fleet: fleetErr };
}

const medians = Array.from({ length: 40 }, (_, i) => 2 + (i * 18) / 40);

describe('latency histogram', () => {
  it('reads one summary back close to its own quantiles and keeps its count', () => {
    const h = emptyHistogram();
    const summary = { count: 500, p50Ms: 4.2, p90Ms: 5.9, p99Ms: 9.7, maxMs: 14.1 };
    addSummary(h, summary);
    expect(total(h)).toBeCloseTo(500, 6);
    const [p50, p90, p99] = quantiles(h, QS);
    expect(relError(p50, 4.2)).toBeLessThan(0.045);
    expect(relError(p90, 5.9)).toBeLessThan(0.045);
    expect(relError(p99, 9.7)).toBeLessThan(0.045);
  });

  it('merges log-normal summaries within 3 % (p50/p90) and 5 % (p99) per device, 2 % fleet-wide', () => {
    const { device, fleet } = mergeAccuracy((rng, d, r) =>
      lognormal(rng, 200, medians[d] * (1 + 0.3 * Math.sin(r / 5)), 0.1 + (d % 5) * 0.1),
    );
    expect(device[0]).toBeLessThan(0.03);
    expect(device[1]).toBeLessThan(0.03);
    expect(device[2]).toBeLessThan(0.05);
    for (const e of fleet) expect(e).toBeLessThan(0.02);
  });

  it('stays within 4 % per device and 6 % fleet-wide on a shifted exponential (hard floor, long tail)', () => {
    const { device, fleet } = mergeAccuracy((rng, d) =>
      Float64Array.from({ length: 200 }, () => medians[d] + (-Math.log(1 - rng()) * medians[d]) / 4),
    );
    for (const e of device) expect(e).toBeLessThan(0.04);
    for (const e of fleet) expect(e).toBeLessThan(0.06);
  });

  it('is far better than averaging percentiles', () => {
    // Two devices: one fast and busy, one slow and idle. The mean of their p99s is meaningless.
    const rng = createRng(3);
    const fast = lognormal(rng, 5000, 2, 0.2);
    const slow = lognormal(rng, 30, 40, 0.2);
    const h = emptyHistogram();
    addSummary(h, summarize(fast));
    addSummary(h, summarize(slow));
    const exact = percentile(Float64Array.from([...fast, ...slow]).sort(), 99);
    const averaged = (summarize(fast).p99Ms + summarize(slow).p99Ms) / 2;
    const merged = quantiles(h, [0.99])[0];
    expect(relError(averaged, exact)).toBeGreaterThan(0.3);
    expect(relError(merged, exact)).toBeLessThan(0.1);
  });

  it('clamps zero and huge latencies into the edge buckets and ignores empty summaries', () => {
    const h = emptyHistogram();
    addSummary(h, { count: 0, p50Ms: 1, p90Ms: 2, p99Ms: 3, maxMs: 4 });
    expect(total(h)).toBe(0);
    expect(quantiles(h, [0.5])[0]).toBeNaN();
    addSummary(h, { count: 10, p50Ms: 0, p90Ms: 0, p99Ms: 0, maxMs: 0 });
    addSummary(h, { count: 10, p50Ms: 1e9, p90Ms: 1e9, p99Ms: 1e9, maxMs: 1e9 });
    expect(total(h)).toBeCloseTo(20, 6);
    expect(Number.isFinite(quantiles(h, [0.99])[0])).toBe(true);
  });

  it('repairs non-monotone knots instead of producing negative mass', () => {
    const h = emptyHistogram();
    addSummary(h, { count: 100, p50Ms: 5, p90Ms: 4, p99Ms: 3, maxMs: 2 });
    expect(Math.min(...h)).toBeGreaterThanOrEqual(0);
    expect(total(h)).toBeCloseTo(100, 6);
  });

  it('round-trips through the compact encoding and merges encoded forms', () => {
    const rng = createRng(5);
    const a = emptyHistogram();
    const b = emptyHistogram();
    for (let i = 0; i < 20; i++) addSummary(a, summarize(lognormal(rng, 100, 3, 0.3)));
    for (let i = 0; i < 20; i++) addSummary(b, summarize(lognormal(rng, 100, 7, 0.2)));
    const blob = encodeHistogram(a)!;
    expect(blob.length).toBeLessThan(2 + 4 * 60);
    const back: Histogram = decodeHistogram(blob);
    for (let i = 0; i < a.length; i++) expect(back[i]).toBeCloseTo(a[i], 3);
    const sum = decodeHistogram(blob);
    addEncoded(sum, encodeHistogram(b));
    const direct = emptyHistogram();
    mergeInto(direct, a);
    mergeInto(direct, b);
    expect(quantiles(sum, QS)[2]).toBeCloseTo(quantiles(direct, QS)[2], 4);
    expect(encodeHistogram(emptyHistogram())).toBeNull();
  });

  it('bimodal summaries are the documented weak spot: the median stays accurate', () => {
    const { device } = mergeAccuracy((rng, d) =>
      Float64Array.from({ length: 200 }, () =>
        rng() < 0.9 ? medians[d] * (1 + 0.05 * gaussian(rng)) : medians[d] * 3 * (1 + 0.1 * gaussian(rng)),
      ),
    );
    expect(device[0]).toBeLessThan(0.02);
  });
});
