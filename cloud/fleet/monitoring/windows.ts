import type { Db } from '../../store/db.js';
import { addEncoded, emptyHistogram, type Histogram, mergeInto, quantiles } from './histogram.js';
import { type MonitoringOptions, RESOLUTION } from './options.js';

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

/** The latency part of a rollup row. */
export interface LatencyRow {
  device_id: string;
  model_id: string;
  records: number;
  lat_count: number;
  lat_sum_ms: number;
  lat_max_ms: number | null;
  hist: Buffer | null;
}

/** Running latency aggregate of one group (device, model, profile, …). */
export class LatencyAccumulator {
  readonly hist: Histogram = emptyHistogram();
  readonly devices = new Set<string>();
  records = 0;
  count = 0;
  sumMs = 0;
  maxMs: number | null = null;

  add(row: LatencyRow): void {
    this.devices.add(row.device_id);
    this.records += row.records;
    this.count += row.lat_count;
    this.sumMs += row.lat_sum_ms;
    if (row.lat_max_ms !== null)
      this.maxMs = this.maxMs === null ? row.lat_max_ms : Math.max(this.maxMs, row.lat_max_ms);
    addEncoded(this.hist, row.hist);
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

/** Reads latency rows of a resolved window, streaming (no array of 25k rows). */
export class LatencyRows {
  private readonly scan;

  constructor(db: Db) {
    this.scan = db.prepare(
      `SELECT device_id, model_id, records, lat_count, lat_sum_ms, lat_max_ms, hist FROM telemetry_rollup
       WHERE resolution = ? AND bucket_start >= ? AND bucket_start < ? AND lat_count > 0`,
    );
  }

  iterate(w: ResolvedWindow): IterableIterator<LatencyRow> {
    return this.scan.iterate(w.resolution, w.fromMs, w.toMs) as IterableIterator<LatencyRow>;
  }

  /** Groups the window's rows by `keyOf` (null skips a row). */
  group(w: ResolvedWindow, keyOf: (row: LatencyRow) => string | null): Map<string, LatencyAccumulator> {
    const groups = new Map<string, LatencyAccumulator>();
    for (const row of this.iterate(w)) {
      const key = keyOf(row);
      if (key === null) continue;
      let acc = groups.get(key);
      if (!acc) groups.set(key, (acc = new LatencyAccumulator()));
      acc.add(row);
    }
    return groups;
  }
}
