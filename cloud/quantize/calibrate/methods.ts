import { FleetError } from '../../../shared/errors/index.js';
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
 * compare the clipped reference distribution P with its quantized-and-expanded version Q.
 */
function entropyThreshold(stats: TensorStats, levels: number): number {
  const bins = stats.bins;
  const n = stats.binCount;
  const target = Math.max(2, sideLevels(stats, levels) + 1);
  let best = stats.range;
  let bestKl = Number.POSITIVE_INFINITY;
  const step = Math.max(1, Math.floor((n - target) / 256));
  for (let i = target; i <= n; i += step) {
    const p = new Float64Array(i);
    for (let j = 0; j < i; j++) p[j] = bins[j];
    let outliers = 0;
    for (let j = i; j < n; j++) outliers += bins[j];
    p[i - 1] += outliers;
    // Q: merge the first i bins into `target` groups, spread each group's mass over its
    // non-empty bins.
    const q = new Float64Array(i);
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
      if (g === target - 1) mass += outliers;
      for (let j = start; j < end; j++)
        if (bins[j] > 0 || (j === i - 1 && outliers > 0)) q[j] = mass / Math.max(1, nonEmpty);
    }
    let sp = 0;
    let sq = 0;
    for (let j = 0; j < i; j++) {
      sp += p[j];
      sq += q[j];
    }
    if (sp === 0 || sq === 0) continue;
    let kl = 0;
    for (let j = 0; j < i; j++) {
      if (p[j] === 0) continue;
      const pj = p[j] / sp;
      const qj = q[j] / sq;
      kl += qj > 0 ? pj * Math.log(pj / qj) : pj * 30;
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

const CALIBRATORS: Record<string, Calibrator> = {
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
  const c = CALIBRATORS[method];
  if (!c) {
    throw new FleetError(
      'INPUT_INVALID',
      `unknown calibration method '${method}' (known: ${calibrationMethods().join(', ')})`,
    );
  }
  return c;
}

/** Registers another method (e.g. from a plugin or a test). */
export function registerCalibrator(name: string, calibrator: Calibrator): void {
  CALIBRATORS[name] = calibrator;
}
