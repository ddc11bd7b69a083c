import type { TelemetryRecord } from '../../../shared/protocol/index.js';
import type { Db } from '../store/db.js';
import { LatencyBucketCache, type LatencyRow } from './bucket-cache.js';
import { addEncoded, addSummaryRange, emptyHistogram, encodeHistogram, type Histogram } from './histogram.js';
import { DEFAULT_MONITORING_OPTIONS, type MonitoringOptions, RESOLUTION } from './options.js';

/** One (resolution, bucket, device, model) aggregate as stored in telemetry_rollup. */
export interface RollupRow {
  resolution: number;
  bucket_start: number;
  device_id: string;
  /** '' when no model was active. */
  model_id: string;
  records: number;
  lat_count: number;
  lat_sum_ms: number;
  lat_max_ms: number | null;
  hist: Buffer | null;
  cpu_sum: number;
  temp_n: number;
  temp_sum: number;
  temp_max: number | null;
  throttled_records: number;
  throttled_bits: number;
  last_at: number;
}

/** An aggregate being built: a rollup row whose histogram is still an array. */
export interface RollupAggregate extends Omit<RollupRow, 'hist'> {
  hist: Histogram | null;
}

/** Pi `get_throttled` bits 0–3 are the current state; 16–19 only say it happened since boot. */
const CURRENT_THROTTLE_BITS = 0xf;
const RESOLUTIONS = [RESOLUTION.minute, RESOLUTION.hour];

export function isThrottled(record: TelemetryRecord): boolean {
  return record.throttled === true || ((record.throttledBits ?? 0) & CURRENT_THROTTLE_BITS) !== 0;
}

/**
 * The time a record is bucketed by: its own timestamp when plausible, else its arrival time
 * (a Pi without RTC reports 1970 until NTP syncs; device time alone is never trusted).
 */
export function bucketTime(
  record: TelemetryRecord,
  receivedMs: number,
  o: Pick<MonitoringOptions, 'maxBackfillMs' | 'maxFutureSkewMs'>,
): number {
  const at = Date.parse(record.at);
  if (Number.isFinite(at) && at >= receivedMs - o.maxBackfillMs && at <= receivedMs + o.maxFutureSkewMs)
    return at;
  return receivedMs;
}

/** Collects one flush's new records into minute and hour aggregates. */
export class RollupAccumulator {
  readonly pending = new Map<string, RollupAggregate>();
  private readonly scratch = emptyHistogram();

  /**
   * @param withHistograms build each aggregate's latency histogram (SQLite keeps them per device;
   *   PostgreSQL does not, see store/pg-device-rollups.ts, and skips the cost of building them).
   */
  constructor(private readonly withHistograms = true) {}

  add(deviceId: string, record: TelemetryRecord, atMs: number): void {
    const l = record.latency && record.latency.count > 0 ? record.latency : null;
    // The summary's histogram is built once, in a reused scratch array, for both resolutions.
    const [first, last] = l && this.withHistograms ? addSummaryRange(this.scratch, l) : [0, -1];
    const t = record.tempC;
    // systeminformation reports exactly -1 when a Pi's sensor cannot be read; values outside
    // -40…150 °C are broken sensors too. Neither is a temperature.
    const tempOk = t !== null && t !== -1 && t >= -40 && t <= 150;
    const throttled = isThrottled(record);
    const modelId = record.modelId ?? '';
    for (const resolution of RESOLUTIONS) {
      const bucketStart = atMs - (atMs % resolution);
      const key = `${resolution}|${bucketStart}|${deviceId}|${modelId}`;
      let agg = this.pending.get(key);
      if (!agg) {
        agg = {
          resolution,
          bucket_start: bucketStart,
          device_id: deviceId,
          model_id: modelId,
          records: 0,
          lat_count: 0,
          lat_sum_ms: 0,
          lat_max_ms: null,
          hist: null,
          cpu_sum: 0,
          temp_n: 0,
          temp_sum: 0,
          temp_max: null,
          throttled_records: 0,
          throttled_bits: 0,
          last_at: atMs,
        };
        this.pending.set(key, agg);
      }
      agg.records++;
      agg.cpu_sum += record.cpuLoad;
      agg.last_at = Math.max(agg.last_at, atMs);
      if (tempOk) {
        agg.temp_n++;
        agg.temp_sum += t;
        agg.temp_max = agg.temp_max === null ? t : Math.max(agg.temp_max, t);
      }
      if (throttled) agg.throttled_records++;
      agg.throttled_bits |= record.throttledBits ?? 0;
      if (l) {
        agg.lat_count += l.count;
        agg.lat_sum_ms += l.meanMs * l.count;
        agg.lat_max_ms = agg.lat_max_ms === null ? l.maxMs : Math.max(agg.lat_max_ms, l.maxMs);
        if (this.withHistograms) {
          agg.hist ??= emptyHistogram();
          for (let i = first; i <= last; i++) agg.hist[i] += this.scratch[i];
        }
      }
    }
    this.scratch.fill(0, first, last + 1);
  }
}

/** A delta aggregate in the query cache's row form. */
function toLatencyRow(agg: RollupAggregate, hist: Histogram): LatencyRow {
  let first = 0;
  while (first < hist.length - 1 && hist[first] <= 0) first++;
  let last = hist.length - 1;
  while (last > first && hist[last] <= 0) last--;
  return {
    device_id: agg.device_id,
    model_id: agg.model_id,
    records: agg.records,
    lat_count: agg.lat_count,
    lat_sum_ms: agg.lat_sum_ms,
    lat_max_ms: agg.lat_max_ms,
    first,
    weights: Float32Array.from(hist.subarray(first, last + 1)),
    offset: 0,
    length: last - first + 1,
  };
}

/** SQL for telemetry_rollup: merge-on-write, window scans, retention. */
export class RollupStore {
  private readonly upsert;
  private readonly scanDevice;
  private readonly deleteBefore;

  /** Decoded latency rows of recently queried buckets; invalidated by every write and prune. */
  readonly cache: LatencyBucketCache;

  constructor(db: Db, options: { cacheRows?: number } = {}) {
    this.cache = new LatencyBucketCache(db, options.cacheRows ?? DEFAULT_MONITORING_OPTIONS.queryCacheRows);
    // Histograms are merged inside SQLite's upsert: one statement per aggregate, no read-back.
    db.function('fleetml_hist_merge', { deterministic: true }, (a: unknown, b: unknown) => {
      const h = emptyHistogram();
      addEncoded(h, a as Buffer | null);
      addEncoded(h, b as Buffer | null);
      return encodeHistogram(h);
    });
    this.upsert = db.prepare(
      `INSERT INTO telemetry_rollup (resolution, bucket_start, device_id, model_id, records, lat_count, lat_sum_ms,
         lat_max_ms, hist, cpu_sum, temp_n, temp_sum, temp_max, throttled_records, throttled_bits, last_at)
       VALUES (@resolution, @bucket_start, @device_id, @model_id, @records, @lat_count, @lat_sum_ms, @lat_max_ms,
         @hist, @cpu_sum, @temp_n, @temp_sum, @temp_max, @throttled_records, @throttled_bits, @last_at)
       ON CONFLICT (resolution, bucket_start, device_id, model_id) DO UPDATE SET
         records = records + excluded.records,
         lat_count = lat_count + excluded.lat_count,
         lat_sum_ms = lat_sum_ms + excluded.lat_sum_ms,
         lat_max_ms = CASE WHEN lat_max_ms IS NULL THEN excluded.lat_max_ms
                           WHEN excluded.lat_max_ms IS NULL THEN lat_max_ms
                           ELSE max(lat_max_ms, excluded.lat_max_ms) END,
         hist = CASE WHEN hist IS NULL THEN excluded.hist WHEN excluded.hist IS NULL THEN hist
                     ELSE fleetml_hist_merge(hist, excluded.hist) END,
         cpu_sum = cpu_sum + excluded.cpu_sum,
         temp_n = temp_n + excluded.temp_n,
         temp_sum = temp_sum + excluded.temp_sum,
         temp_max = CASE WHEN temp_max IS NULL THEN excluded.temp_max
                         WHEN excluded.temp_max IS NULL THEN temp_max
                         ELSE max(temp_max, excluded.temp_max) END,
         throttled_records = throttled_records + excluded.throttled_records,
         throttled_bits = throttled_bits | excluded.throttled_bits,
         last_at = max(last_at, excluded.last_at)`,
    );
    this.scanDevice = db.prepare(
      `SELECT * FROM telemetry_rollup WHERE device_id = ? AND resolution = ? AND bucket_start >= ? AND bucket_start < ?
       ORDER BY bucket_start`,
    );
    this.deleteBefore = db.prepare('DELETE FROM telemetry_rollup WHERE resolution = ? AND bucket_start < ?');
  }

  /** Writes a flush's aggregates; call inside the ingest transaction. */
  write(accumulator: { pending: Map<string, RollupAggregate> }): void {
    for (const agg of accumulator.pending.values()) {
      this.upsert.run({ ...agg, hist: agg.hist ? encodeHistogram(agg.hist) : null });
      if (agg.lat_count > 0 && agg.hist)
        this.cache.append(agg.resolution, agg.bucket_start, toLatencyRow(agg, agg.hist));
    }
  }

  device(deviceId: string, resolution: number, fromMs: number, toMs: number): RollupRow[] {
    return this.scanDevice.all(deviceId, resolution, fromMs, toMs) as RollupRow[];
  }

  /** Deletes aggregates of one resolution older than `beforeMs`; returns how many. */
  prune(resolution: number, beforeMs: number): number {
    this.cache.pruneBefore(resolution, beforeMs);
    return this.deleteBefore.run(resolution, beforeMs).changes;
  }
}
