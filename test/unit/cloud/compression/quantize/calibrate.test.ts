import { describe, expect, it } from 'vitest';
import { TensorStats } from '../../../../../cloud/compression/quantize/calibrate/histogram.js';
import {
  DEFAULT_CALIBRATOR_OPTIONS,
  getCalibrator,
} from '../../../../../cloud/compression/quantize/calibrate/methods.js';
import { createRng, gaussian } from '../../../../../shared/random.js';

function gaussianStats(outlier: number): TensorStats {
  const rng = createRng(3);
  const stats = new TensorStats();
  for (let batch = 0; batch < 10; batch++) {
    const values = Float32Array.from({ length: 20000 }, () => gaussian(rng));
    if (batch === 5) values[0] = outlier;
    stats.update(values);
  }
  return stats;
}

describe('calibration methods on known distributions', () => {
  const stats = gaussianStats(40);
  const o = DEFAULT_CALIBRATOR_OPTIONS;

  it('minmax keeps the outlier', () => {
    expect(getCalibrator('minmax').compute(stats, o).max).toBe(40);
  });

  it('percentile 99.9 of |N(0,1)| is about 3.29', () => {
    const r = getCalibrator('percentile').compute(stats, { ...o, percentile: 99.9 });
    expect(r.max).toBeGreaterThan(3.1);
    expect(r.max).toBeLessThan(3.6);
  });

  it('entropy clips the outlier but keeps the bulk', () => {
    const r = getCalibrator('entropy').compute(stats, o);
    expect(r.max).toBeLessThan(10);
    expect(r.max).toBeGreaterThan(2);
  });

  it('entropy keeps the confident outputs of a mostly-background sigmoid (detector map)', () => {
    // Reproduces the PaddleOCR detector bug: 95 % of the probabilities are ~0, 5 % are ~1.
    // The spike in the first bin drove the KL search to its smallest candidate (range/8),
    // clipping every text pixel to 0.125.
    const rng = createRng(4);
    const s = new TensorStats();
    for (let batch = 0; batch < 4; batch++) {
      const v = Float32Array.from({ length: 50000 }, (_, i) => {
        const z = i % 20 === 0 ? 4 + gaussian(rng) : -9 + gaussian(rng);
        return 1 / (1 + Math.exp(-z));
      });
      s.update(v);
    }
    const r = getCalibrator('entropy').compute(s, o);
    expect(r.min).toBe(s.min);
    expect(r.max).toBeGreaterThan(0.9);
  });

  it('entropy of a ReLU output (many exact zeros) still clips a far outlier', () => {
    const rng = createRng(6);
    const s = new TensorStats();
    const v = Float32Array.from({ length: 200000 }, () => Math.max(0, gaussian(rng)));
    v[7] = 60;
    s.update(v);
    const r = getCalibrator('entropy').compute(s, o);
    expect(r.max).toBeGreaterThan(2.5);
    expect(r.max).toBeLessThan(20);
  });

  it('mse balances one large outlier against rounding noise of the bulk', () => {
    const r = getCalibrator('mse').compute(stats, o);
    // One value at 40 among 200k N(0,1): its squared clip error outweighs a little rounding noise.
    expect(r.max).toBeLessThan(40);
    expect(r.max).toBeGreaterThan(5);
    const clean = getCalibrator('mse').compute(gaussianStats(0), o);
    expect(clean.max).toBeLessThan(6);
  });

  it('histogram range doubling keeps counts exact', () => {
    const s = new TensorStats(16);
    s.update(Float32Array.of(0.1, 0.2, 0.9));
    s.update(Float32Array.of(3.5));
    expect(s.bins.reduce((a, b) => a + b, 0)).toBe(4);
    expect(s.range).toBeGreaterThanOrEqual(3.5);
  });
});
