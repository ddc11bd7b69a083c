import { FleetError } from '../../../../shared/errors/index.js';
import type { TensorStats } from './histogram.js';

/** A float range [min, max] that quantization maps onto the integer grid. */
export interface Range {
  min: number;
  max: number;
}

export interface CalibratorOptions {
  /** Percentile of |x| kept by `percentile`, in percent; default 99.999. */
  percentile: number;
  /** Quantization levels the range is mapped to (256 for 8-bit). */
  levels: number;
}

export const DEFAULT_CALIBRATOR_OPTIONS: CalibratorOptions = { percentile: 99.999, levels: 256 };

/** Turns streaming statistics into a range; one per method, looked up by name. */
export interface Calibrator {
  /** Whether the method needs the |x| histogram (minmax does not, so calibration is cheaper). */
  needsHistogram: boolean;
  compute(stats: TensorStats, options: CalibratorOptions): Range;
}

/** Clips the observed range symmetrically at threshold t (never widening it). */
function clipped(stats: TensorStats, t: number): Range {
  return { min: Math.max(stats.min, -t), max: Math.min(stats.max, t) };
}

/** Levels available on the side of zero that |x| occupies (all of them for non-negative data). */
function sideLevels(stats: TensorStats, levels: number): number {
  return stats.min >= 0 ? levels - 1 : levels / 2 - 1;
}

/**
 * KL-divergence threshold (TensorRT's entropy calibration): for each candidate threshold,
 * compare the clipped reference distribution P (outliers added to its last bin) with Q, the
 * first bins quantized to the available levels and expanded back over their non-empty bins.
 * The first bin (exact zeros after ReLU, the background of a sigmoid map) is replaced by its
 * neighbour's count, as NVIDIA's pytorch-quantization does: a spike there otherwise makes
 * every wide candidate look bad and the search returns its smallest one (range/8), which
 * clipped the PaddleOCR detector's probability map to 0.125.
 */
function entropyThreshold(stats: TensorStats, levels: number): number {
  const n = stats.binCount;
  const bins = Float64Array.from(stats.bins);
  if (n > 1) bins[0] = bins[1];
  const target = Math.max(2, sideLevels(stats, levels) + 1);
  let best = stats.range;
  let bestKl = Number.POSITIVE_INFINITY;
  const step = Math.max(1, Math.floor((n - target) / 256));
  const suffix = new Float64Array(n + 1);
  for (let j = n - 1; j >= 0; j--) suffix[j] = suffix[j + 1] + bins[j];
  const p = new Float64Array(n);
  const q = new Float64Array(n);
  for (let i = target; i <= n; i = i < n && i + step > n ? n : i + step) {
    p.set(bins.subarray(0, i));
    p[i - 1] += suffix[i];
    q.fill(0, 0, i);
    const per = i / target;
    for (let g = 0; g < target; g++) {
      const start = Math.floor(g * per);
      const end = g === target - 1 ? i : Math.floor((g + 1) * per);
      let mass = 0;
      let nonEmpty = 0;
      for (let j = start; j < end; j++) {
        mass += bins[j];
        if (bins[j] > 0) nonEmpty++;
      }
      if (nonEmpty === 0) continue;
      for (let j = start; j < end; j++) if (bins[j] > 0) q[j] = mass / nonEmpty;
    }
    let sp = 0;
    let sq = 0;
    for (let j = 0; j < i; j++) {
      sp += p[j];
      sq += q[j];
    }
    if (sp === 0 || sq === 0) continue;
    // Smooth Q as onnxruntime does (a little mass moved to empty bins), so that an outlier
    // bin that Q leaves empty costs a finite amount instead of ruling the candidate out.
    let zeros = 0;
    for (let j = 0; j < i; j++) if (q[j] === 0) zeros++;
    const eps = 1e-4;
    const take = zeros > 0 && zeros < i ? (eps * zeros) / (i - zeros) : 0;
    let kl = 0;
    for (let j = 0; j < i; j++) {
      if (p[j] === 0) continue;
      const pj = p[j] / sp;
      const qj = q[j] > 0 ? q[j] / sq - take : eps;
      kl += pj * Math.log(pj / Math.max(qj, 1e-12));
    }
    if (kl < bestKl) {
      bestKl = kl;
      best = i * stats.binWidth;
    }
  }
  return best;
}

/** Threshold minimising expected squared error: rounding noise inside, clipping error outside. */
function mseThreshold(stats: TensorStats, levels: number): number {
  const bins = stats.bins;
  const n = stats.binCount;
  const w = stats.binWidth;
  const side = sideLevels(stats, levels);
  let best = stats.range;
  let bestErr = Number.POSITIVE_INFINITY;
  for (let i = 16; i <= n; i += 8) {
    const t = i * w;
    const scale = t / side;
    let err = 0;
    for (let j = 0; j < n; j++) {
      if (bins[j] === 0) continue;
      const x = (j + 0.5) * w;
      err += bins[j] * (x <= t ? (scale * scale) / 12 : (x - t) * (x - t));
    }
    if (err < bestErr) {
      bestErr = err;
      best = t;
    }
  }
  return best;
}

const CALIBRATORS: Readonly<Record<string, Calibrator>> = {
  minmax: { needsHistogram: false, compute: (s) => ({ min: s.min, max: s.max }) },
  percentile: {
    needsHistogram: true,
    compute: (s, o) => clipped(s, s.absPercentile(o.percentile / 100)),
  },
  entropy: { needsHistogram: true, compute: (s, o) => clipped(s, entropyThreshold(s, o.levels)) },
  mse: { needsHistogram: true, compute: (s, o) => clipped(s, mseThreshold(s, o.levels)) },
};

export type CalibrationMethod = 'minmax' | 'percentile' | 'entropy' | 'mse';

export function calibrationMethods(): string[] {
  return Object.keys(CALIBRATORS);
}

export function getCalibrator(method: string): Calibrator {
  const c = Object.hasOwn(CALIBRATORS, method) ? CALIBRATORS[method] : undefined;
  if (!c) {
    throw new FleetError(
      'INPUT_INVALID',
      `unknown calibration method '${method}' (known: ${calibrationMethods().join(', ')})`,
    );
  }
  return c;
}
