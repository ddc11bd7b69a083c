/**
 * Mergeable latency distributions. Agents report each telemetry interval as a summary
 * (count, p50, p90, p99, max); percentiles of summaries cannot be averaged, so the cloud turns
 * every summary back into an approximate distribution on a fixed log-scale histogram, adds
 * histograms (per device per minute / hour, then per group over a window) and reads
 * percentiles off the sum.
 *
 * Bucket i covers [MIN_MS·2^(i/8), MIN_MS·2^((i+1)/8)): 8 buckets per octave (each 9.05 %
 * wide), from 1 µs to ~134 s; values outside are clamped into the first or last bucket.
 * Reading a percentile interpolates log-uniformly inside its bucket.
 *
 * Error against exact percentiles of the raw samples (test/unit/cloud/monitoring/
 * histogram.test.ts; docs/monitoring.md has the table): one summary read back ≤ 4.5 %; merged
 * log-normal summaries ≤ 3 % (p50, p90) and ≤ 5 % (p99) per device, ≤ 2 % fleet-wide; a
 * shifted exponential ≤ 4 % / 6 %. Bimodal intervals are the weak spot: a p90 that falls
 * between the modes cannot be recovered from a summary.
 */

export const BUCKETS_PER_OCTAVE = 8;
/** Lower edge of bucket 0, in ms (1 µs). */
export const MIN_MS = 0.001;
/** 27 octaves: 1 µs … 134 s. */
export const NUM_BUCKETS = 27 * BUCKETS_PER_OCTAVE;

export type Histogram = Float64Array;

export interface LatencySummary {
  count: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
}

export function emptyHistogram(): Histogram {
  return new Float64Array(NUM_BUCKETS);
}

/** Continuous bucket coordinate of a value in ms, clamped to the histogram's range. */
function position(ms: number): number {
  if (!(ms > MIN_MS)) return 0;
  const x = Math.log2(ms / MIN_MS) * BUCKETS_PER_OCTAVE;
  return Math.min(x, NUM_BUCKETS - 1e-9);
}

function valueAt(x: number): number {
  return MIN_MS * 2 ** (x / BUCKETS_PER_OCTAVE);
}

/** Standard normal CDF (Abramowitz & Stegun 7.1.26 on erf; absolute error < 1.5e-7). */
function phi(z: number): number {
  if (z === Number.NEGATIVE_INFINITY) return 0;
  if (z === Number.POSITIVE_INFINITY) return 1;
  const x = Math.abs(z) / Math.SQRT2;
  const t = 1 / (1 + 0.3275911 * x);
  const y =
    1 -
    ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) *
      t *
      Math.exp(-x * x);
  return z >= 0 ? 0.5 * (1 + y) : 0.5 * (1 - y);
}

/** Inverse standard normal CDF for p in (0.5, 1): Acklam's rational approximation (rel. error < 1.2e-9). */
function upperNormalQuantile(p: number): number {
  if (p <= 0.97575) {
    const q = p - 0.5;
    const r = q * q;
    return (
      ((((((-39.69683028665376 * r + 220.9460984245205) * r - 275.9285104469687) * r + 138.357751867269) * r -
        30.66479806614716) *
        r +
        2.506628277459239) *
        q) /
      (((((-54.47609879822406 * r + 161.5858368580409) * r - 155.6989798598866) * r + 66.80131188771972) * r -
        13.28068155288572) *
        r +
        1)
    );
  }
  const q = Math.sqrt(-2 * Math.log(1 - p));
  return (
    -(
      ((((-0.007784894002430293 * q - 0.3223964580411365) * q - 2.400758277161838) * q - 2.549732539343734) *
        q +
        4.374664141464968) *
        q +
      2.938163982698783
    ) /
    ((((0.007784695709041462 * q + 0.3224671290700398) * q + 2.445134137142996) * q + 3.754408661907416) * q +
      1)
  );
}

const Z90 = upperNormalQuantile(0.9);
const Z99 = upperNormalQuantile(0.99);
/** Below this z the lower tail's last bit of mass is put into the lowest bucket reached. */
const Z_FLOOR = -4;

/**
 * Adds one reported summary. The summary is read as a quantile function: log(latency) is taken
 * piecewise linear in z = Φ⁻¹(q) through the knots (0, p50), (z90, p90), (z99, p99) and
 * (z_max, max), where z_max is where the largest of `count` samples is expected
 * (q = 1 − 0.6/count, never below the p99 knot); below the median the p50–p90 slope is
 * mirrored (the summary carries no minimum). For a log-normal this is exact; for other
 * shapes it is a smooth interpolation between the reported quantiles. Bucket masses are the
 * differences of the resulting CDF at the bucket edges.
 */
export function addSummary(h: Histogram, s: LatencySummary): void {
  addSummaryRange(h, s);
}

/** addSummary that returns the first and last bucket it touched ([0, -1] when none). */
export function addSummaryRange(h: Histogram, s: LatencySummary): [number, number] {
  if (!(s.count > 0)) return [0, -1];
  // Agents may round their quantiles: force the knots to be monotone.
  const x50 = position(Math.max(0, s.p50Ms));
  const x90 = Math.max(x50, position(s.p90Ms));
  const x99 = Math.max(x90, position(s.p99Ms));
  const xMax = Math.max(x99, position(s.maxMs));
  const zMax = Math.max(Z99 + 1e-6, upperNormalQuantile(Math.max(0.99, 1 - 0.6 / s.count)));
  const knots: Array<[number, number]> = [
    [0, x50],
    [Z90, x90],
    [Z99, x99],
    [zMax, xMax],
  ];
  const lowSlope = (x90 - x50) / Z90;
  const xLow = Math.max(0, x50 + Z_FLOOR * lowSlope);

  // z reached at position x: the largest z whose knot-interpolated position is <= x.
  const zAt = (x: number): number => {
    if (x >= xMax) return Number.POSITIVE_INFINITY;
    if (x < x50) return lowSlope > 0 ? Math.max(Z_FLOOR, (x - x50) / lowSlope) : Number.NEGATIVE_INFINITY;
    let z = 0;
    for (let k = 1; k < knots.length; k++) {
      const [z0, x0] = knots[k - 1];
      const [z1, x1] = knots[k];
      if (x >= x1) {
        z = z1;
        continue;
      }
      return x1 > x0 ? z0 + ((x - x0) / (x1 - x0)) * (z1 - z0) : z0;
    }
    return z;
  };

  const first = Math.floor(xLow);
  const last = Math.min(NUM_BUCKETS - 1, Math.floor(xMax));
  let below = 0;
  for (let i = first; i <= last; i++) {
    const cdf = i === last ? 1 : phi(zAt(i + 1));
    h[i] += s.count * (cdf - below);
    below = cdf;
  }
  return [first, last];
}

export function mergeInto(target: Histogram, source: Histogram): void {
  for (let i = 0; i < NUM_BUCKETS; i++) target[i] += source[i];
}

export function total(h: Histogram): number {
  let sum = 0;
  for (let i = 0; i < NUM_BUCKETS; i++) sum += h[i];
  return sum;
}

/** Several quantiles in one pass; `qs` ascending in (0, 1). NaN for an empty histogram. */
export function quantiles(h: Histogram, qs: readonly number[]): number[] {
  const sum = total(h);
  const out = new Array<number>(qs.length).fill(Number.NaN);
  if (!(sum > 0)) return out;
  let k = 0;
  let cumulative = 0;
  for (let i = 0; i < NUM_BUCKETS && k < qs.length; i++) {
    const w = h[i];
    if (w <= 0) continue;
    while (k < qs.length && cumulative + w >= qs[k] * sum) {
      const fraction = Math.min(1, Math.max(0, (qs[k] * sum - cumulative) / w));
      out[k] = valueAt(i + fraction);
      k++;
    }
    cumulative += w;
  }
  // Rounding can leave the top quantiles unassigned: they sit at the top of the last bucket used.
  for (; k < qs.length; k++) out[k] = valueAt(lastUsed(h) + 1);
  return out;
}

function lastUsed(h: Histogram): number {
  for (let i = NUM_BUCKETS - 1; i >= 0; i--) if (h[i] > 0) return i;
  return 0;
}

/**
 * Compact form for SQLite: uint16 first bucket, then float32 weights of the dense run up to
 * the last non-empty bucket. Latency distributions are contiguous, so the run is short
 * (10–40 buckets, 40–160 bytes). float32 keeps 7 significant digits: enough for counts.
 */
export function encodeHistogram(h: Histogram): Buffer | null {
  let first = 0;
  while (first < NUM_BUCKETS && h[first] <= 0) first++;
  if (first === NUM_BUCKETS) return null;
  const last = lastUsed(h);
  const n = last - first + 1;
  const buffer = Buffer.alloc(2 + 4 * n);
  buffer.writeUInt16LE(first, 0);
  for (let i = 0; i < n; i++) buffer.writeFloatLE(h[first + i], 2 + 4 * i);
  return buffer;
}

/** Adds an encoded histogram into `target` (decoding and merging in one pass). */
export function addEncoded(target: Histogram, blob: Uint8Array | null): void {
  if (!blob || blob.length < 6) return;
  const view = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
  const first = view.getUint16(0, true);
  const n = Math.min((blob.length - 2) >> 2, NUM_BUCKETS - first);
  for (let i = 0; i < n; i++) target[first + i] += view.getFloat32(2 + 4 * i, true);
}

export function decodeHistogram(blob: Uint8Array | null): Histogram {
  const h = emptyHistogram();
  addEncoded(h, blob);
  return h;
}
