/**
 * Streaming statistics of one tensor: exact min/max, and a histogram of |x| over [0, range)
 * whose range doubles (merging bin pairs, so counts stay exact) when larger values arrive.
 * Memory per tensor is constant whatever the number of samples.
 */
export class TensorStats {
  min = Number.POSITIVE_INFINITY;
  max = Number.NEGATIVE_INFINITY;
  /** Values seen (all of them count towards min/max; a sample of them towards the histogram). */
  count = 0;
  readonly bins: Float64Array;
  /** Upper edge of the last bin; 0 until the first non-zero value. */
  range = 0;

  constructor(
    readonly binCount = 2048,
    readonly withHistogram = true,
  ) {
    this.bins = new Float64Array(withHistogram ? binCount : 0);
  }

  /**
   * Adds values. When `histogramStride` > 1 only every stride-th value enters the histogram
   * (an unbiased sample that keeps calibration of large activations fast); min/max see all.
   */
  update(values: Float32Array, histogramStride = 1): void {
    let lo = this.min;
    let hi = this.max;
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    this.min = lo;
    this.max = hi;
    this.count += values.length;
    if (!this.withHistogram) return;
    const absMax = Math.max(Math.abs(lo), Math.abs(hi));
    if (absMax === 0) {
      this.bins[0] += Math.ceil(values.length / histogramStride);
      return;
    }
    if (this.range === 0) this.range = absMax;
    while (absMax > this.range) this.grow();
    const n = this.binCount;
    const scale = n / this.range;
    const bins = this.bins;
    for (let i = 0; i < values.length; i += histogramStride) {
      const b = Math.floor(Math.abs(values[i]) * scale);
      bins[b < n ? b : n - 1]++;
    }
  }

  /** Doubles the range: bins 2i and 2i+1 become bin i. */
  private grow(): void {
    const n = this.binCount;
    for (let i = 0; i < n / 2; i++) this.bins[i] = this.bins[2 * i] + this.bins[2 * i + 1];
    this.bins.fill(0, n / 2);
    this.range *= 2;
  }

  get binWidth(): number {
    return this.range / this.binCount;
  }

  /** The smallest t such that a fraction `p` (0..1) of sampled |x| is <= t. */
  absPercentile(p: number): number {
    const total = this.bins.reduce((a, b) => a + b, 0);
    if (total === 0 || this.range === 0) return Math.max(Math.abs(this.min), Math.abs(this.max), 0);
    const target = p * total;
    let seen = 0;
    for (let i = 0; i < this.binCount; i++) {
      seen += this.bins[i];
      if (seen >= target) return (i + 1) * this.binWidth;
    }
    return this.range;
  }
}
