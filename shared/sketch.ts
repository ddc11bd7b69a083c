/**
 * The one door to `@datadog/sketches-js`: latency sketches (DDSketch, logarithmic mapping) with a
 * relative-error guarantee that merge exactly (bin counts add), and their compact JSON wire form.
 * Both the agent (records every served request) and the cloud (merges per device, release,
 * profile and window) use it. Pure: no I/O.
 */
import { DDSketch } from '@datadog/sketches-js';
import { z } from 'zod';

/** Relative accuracy of every fleetml latency sketch: a quantile read is within 1 % of a true value. */
export const SKETCH_RELATIVE_ACCURACY = 0.01;

/** Wire form: bin counts for consecutive mapping keys from `offset`, plus exact count/sum/min/max. */
export const sketchWireSchema = z.object({
  /** Relative accuracy the bins were made with; sketches of another accuracy are refused. */
  alpha: z.number().positive().max(0.5),
  /** Mapping key of bins[0]. */
  offset: z.number().int().min(-100_000).max(100_000),
  bins: z.array(z.number().int().nonnegative()).max(20_000),
  /** Values at or below the smallest positive the mapping holds (e.g. exactly 0 ms). */
  zero: z.number().int().nonnegative(),
  count: z.number().int().nonnegative(),
  sum: z.number().finite().nonnegative(),
  min: z.number().finite().nonnegative().nullable(),
  max: z.number().finite().nonnegative().nullable(),
});
export type SketchWire = z.infer<typeof sketchWireSchema>;

export class LatencySketch {
  private readonly sketch = new DDSketch({ relativeAccuracy: SKETCH_RELATIVE_ACCURACY });

  get count(): number {
    return this.sketch.count;
  }

  get sum(): number {
    return this.sketch.sum;
  }

  get max(): number | null {
    return this.sketch.count > 0 ? this.sketch.max : null;
  }

  get min(): number | null {
    return this.sketch.count > 0 ? this.sketch.min : null;
  }

  /** Records one value (ms); negative values are clamped to 0. */
  add(ms: number, weight = 1): void {
    this.sketch.accept(Math.max(ms, 0), weight);
  }

  /** The value at quantile q (0..1) within the relative accuracy; null when empty. */
  quantile(q: number): number | null {
    if (this.sketch.count === 0) return null;
    // Clamp to the exact extremes: a bin's representative can lie just outside them.
    const v = this.sketch.getValueAtQuantile(q);
    return Math.min(Math.max(v, this.sketch.min), this.sketch.max);
  }

  mean(): number | null {
    return this.sketch.count > 0 ? this.sketch.sum / this.sketch.count : null;
  }

  /** Adds another sketch's counts into this one (exact: the sum of the bins). */
  merge(other: LatencySketch): void {
    if (other.sketch.count === 0) return;
    this.sketch.merge(other.sketch);
  }

  mergeWire(wire: SketchWire): void {
    this.merge(LatencySketch.fromWire(wire));
  }

  toWire(): SketchWire {
    const store = this.sketch.store;
    const bins: number[] = [];
    let offset = 0;
    if (store.count > 0) {
      offset = store.minKey;
      for (let key = store.minKey; key <= store.maxKey; key++) bins.push(store.bins[key - store.offset] ?? 0);
    }
    return {
      alpha: SKETCH_RELATIVE_ACCURACY,
      offset,
      bins,
      zero: this.sketch.zeroCount,
      count: this.sketch.count,
      sum: this.sketch.sum,
      min: this.min,
      max: this.max,
    };
  }

  static fromWire(wire: SketchWire): LatencySketch {
    if (Math.abs(wire.alpha - SKETCH_RELATIVE_ACCURACY) > 1e-12) {
      throw new RangeError(`sketch accuracy ${wire.alpha} differs from ${SKETCH_RELATIVE_ACCURACY}`);
    }
    const out = new LatencySketch();
    const s = out.sketch;
    for (let i = 0; i < wire.bins.length; i++) {
      if (wire.bins[i] > 0) s.store.add(wire.offset + i, wire.bins[i]);
    }
    s.zeroCount += wire.zero;
    s.count = s.store.count + s.zeroCount;
    s.sum = wire.sum;
    s.min = wire.min ?? Number.POSITIVE_INFINITY;
    s.max = wire.max ?? Number.NEGATIVE_INFINITY;
    return out;
  }
}
