import type { LatencyRow } from './bucket-cache.js';
import { emptyHistogram, type Histogram, mergeInto, quantiles } from './histogram.js';
import { type MonitoringOptions, RESOLUTION } from './options.js';
import type { RollupStore } from './rollups.js';

export type { LatencyRow } from './bucket-cache.js';

/** A time range resolved to whole rollup buckets. */
export interface ResolvedWindow {
  /** Bucket width used, in ms (60 000 or 3 600 000). */
  resolution: number;
  /** First bucket start included (epoch ms). */
  fromMs: number;
  /** Exclusive end (epoch ms): the start of the first bucket not included. */
  toMs: number;
}

/**
 * Resolves [fromMs, toMs) to buckets: 1-minute buckets up to `minuteQueryMaxMs`, 1-hour
 * buckets beyond (a 24 h window then reads 25 rows per device instead of 1440). The start is
 * rounded down to its bucket, so an hour-resolved window can reach up to one hour further back.
 * With `includeCurrent` the bucket holding toMs is included (windows that end now).
 */
export function resolveWindow(
  fromMs: number,
  toMs: number,
  o: Pick<MonitoringOptions, 'minuteQueryMaxMs'>,
  includeCurrent: boolean,
): ResolvedWindow {
  const resolution = toMs - fromMs <= o.minuteQueryMaxMs ? RESOLUTION.minute : RESOLUTION.hour;
  const floor = (t: number) => t - (t % resolution);
  return { resolution, fromMs: floor(fromMs), toMs: includeCurrent ? floor(toMs) + resolution : floor(toMs) };
}

/** Running latency aggregate of one group (device, model, profile, …). */
export class LatencyAccumulator {
  readonly hist: Histogram = emptyHistogram();
  readonly devices = new Set<string>();
  records = 0;
  count = 0;
  sumMs = 0;
  maxMs: number | null = null;

  private lastDevice = '';

  add(row: LatencyRow): void {
    // Rows of one device often follow each other: skip the Set lookup then.
    if (row.device_id !== this.lastDevice) {
      this.devices.add(row.device_id);
      this.lastDevice = row.device_id;
    }
    this.records += row.records;
    this.count += row.lat_count;
    this.sumMs += row.lat_sum_ms;
    const max = row.lat_max_ms;
    if (max !== null && (this.maxMs === null || max > this.maxMs)) this.maxMs = max;
    const w = row.weights;
    const h = this.hist;
    const shift = row.first - row.offset;
    for (let i = row.offset, end = row.offset + row.length; i < end; i++) h[shift + i] += w[i];
  }

  /** Adds another group's aggregate (histograms are additive). */
  merge(other: LatencyAccumulator): void {
    for (const d of other.devices) this.devices.add(d);
    this.records += other.records;
    this.count += other.count;
    this.sumMs += other.sumMs;
    if (other.maxMs !== null)
      this.maxMs = this.maxMs === null ? other.maxMs : Math.max(this.maxMs, other.maxMs);
    mergeInto(this.hist, other.hist);
  }

  /** p50/p90/p99 from the merged histogram (never above the exact max), exact mean and max. */
  summary(): LatencyStatsOut {
    const [p50, p90, p99] = quantiles(this.hist, [0.5, 0.9, 0.99]);
    const cap = (v: number) => (Number.isNaN(v) ? null : this.maxMs === null ? v : Math.min(v, this.maxMs));
    return {
      devices: this.devices.size,
      records: this.records,
      count: this.count,
      p50Ms: cap(p50),
      p90Ms: cap(p90),
      p99Ms: cap(p99),
      maxMs: this.maxMs,
      meanMs: this.count > 0 ? this.sumMs / this.count : null,
    };
  }
}

export interface LatencyStatsOut {
  /** Distinct devices that contributed. */
  devices: number;
  /** Telemetry records. */
  records: number;
  /** Inferences those records summarise. */
  count: number;
  p50Ms: number | null;
  p90Ms: number | null;
  p99Ms: number | null;
  maxMs: number | null;
  meanMs: number | null;
}

/** Latency rows of a resolved window, bucket by bucket through the rollup store's cache. */
export class LatencyRows {
  constructor(private readonly rollups: RollupStore) {}

  *iterate(w: ResolvedWindow): IterableIterator<LatencyRow> {
    for (let bucket = w.fromMs; bucket < w.toMs; bucket += w.resolution) {
      yield* this.rollups.cache.rows(w.resolution, bucket);
    }
  }

  /** Groups the window's rows by `keyOf` (null skips a row). Plain loops: this is the hot path. */
  group(w: ResolvedWindow, keyOf: (row: LatencyRow) => string | null): Map<string, LatencyAccumulator> {
    const groups = new Map<string, LatencyAccumulator>();
    let lastKey: string | null = null;
    let last: LatencyAccumulator | undefined;
    for (let bucket = w.fromMs; bucket < w.toMs; bucket += w.resolution) {
      const rows = this.rollups.cache.rows(w.resolution, bucket);
      for (let i = 0; i < rows.length; i++) {
        const row = rows[i];
        const key = keyOf(row);
        if (key === null) continue;
        if (key !== lastKey) {
          last = groups.get(key);
          if (!last) groups.set(key, (last = new LatencyAccumulator()));
          lastKey = key;
        }
        last!.add(row);
      }
    }
    return groups;
  }
}
