import { addSummary, emptyHistogram, type Histogram } from '../monitoring/histogram.js';
import type { DeviceLatencySource, DeviceModelKey } from '../monitoring/latency-source.js';
import type { MonitoringOptions } from '../monitoring/options.js';
import { LatencyAccumulator, type ResolvedWindow } from '../monitoring/windows.js';
import { dayOf } from './pg-partitions.js';
import type { PgPool } from './postgres.js';

/** One raw record's latency summary, with the time it is bucketed by. */
interface RawLatency {
  device_id: string;
  model_id: string;
  /** Bucket time, epoch ms. */
  t: number;
  lat_count: number;
  p50_ms: number;
  p90_ms: number;
  p99_ms: number;
  max_ms: number;
  mean_ms: number;
}

/**
 * The time a record is bucketed by, in SQL: its own timestamp when plausible, else its arrival
 * (cloud/fleet/monitoring/rollups.ts bucketTime; `day` holds that time's UTC day, which lets
 * PostgreSQL skip every other partition).
 */
const BUCKET_TIME = `CASE WHEN at >= received_at - $5 * interval '1 millisecond'
  AND at <= received_at + $6 * interval '1 millisecond' THEN at ELSE received_at END`;

/** Adds one raw record's summary to a group, as a rollup row of one record would. */
function addRecord(acc: LatencyAccumulator, r: RawLatency): void {
  acc.devices.add(r.device_id);
  acc.records += 1;
  acc.count += r.lat_count;
  acc.sumMs += r.mean_ms * r.lat_count;
  if (acc.maxMs === null || r.max_ms > acc.maxMs) acc.maxMs = r.max_ms;
  addSummary(acc.hist, {
    count: r.lat_count,
    p50Ms: r.p50_ms,
    p90Ms: r.p90_ms,
    p99Ms: r.p99_ms,
    maxMs: r.max_ms,
  });
}

/**
 * Per-device latency on PostgreSQL, from the raw records of a window: each record's summary is
 * turned into a histogram exactly as the SQLite rollups do at ingest, so the answers match. Raw
 * records live `rawRetentionMs` (at least one day: partitions are dropped whole days after it),
 * so windows reaching further back see only what is left; the cost grows with the records of
 * the window (docs/telemetry-store.md).
 */
export class PgDeviceLatencyRows implements DeviceLatencySource {
  constructor(
    private readonly pool: PgPool,
    private readonly o: Pick<MonitoringOptions, 'maxBackfillMs' | 'maxFutureSkewMs'>,
  ) {}

  async group(
    w: ResolvedWindow,
    keyOf: (row: DeviceModelKey) => string | null,
  ): Promise<Map<string, LatencyAccumulator>> {
    const groups = new Map<string, LatencyAccumulator>();
    for (const r of await this.records(w.fromMs, w.toMs)) {
      const key = keyOf(r);
      if (key === null) continue;
      let acc = groups.get(key);
      if (!acc) groups.set(key, (acc = new LatencyAccumulator()));
      addRecord(acc, r);
    }
    return groups;
  }

  async deviceHistograms(
    deviceId: string,
    resolution: number,
    fromMs: number,
    toMs: number,
  ): Promise<Map<number, Histogram>> {
    const byBucket = new Map<number, Histogram>();
    for (const r of await this.records(fromMs, toMs, deviceId)) {
      const bucket = r.t - (r.t % resolution);
      let hist = byBucket.get(bucket);
      if (!hist) byBucket.set(bucket, (hist = emptyHistogram()));
      addSummary(hist, {
        count: r.lat_count,
        p50Ms: r.p50_ms,
        p90Ms: r.p90_ms,
        p99Ms: r.p99_ms,
        maxMs: r.max_ms,
      });
    }
    return byBucket;
  }

  /** Raw records with a latency summary bucketed in [fromMs, toMs), of one device or all. */
  private async records(fromMs: number, toMs: number, deviceId?: string): Promise<RawLatency[]> {
    const { rows } = await this.pool.query<RawLatency>(
      `SELECT device_id, coalesce(model_id, '') model_id, t, lat_count, p50_ms, p90_ms, p99_ms, max_ms, mean_ms
       FROM (SELECT *, (extract(epoch FROM ${BUCKET_TIME}) * 1000)::float8 t FROM telemetry
             WHERE day >= $1::date AND day <= $2::date AND lat_count > 0
               ${deviceId === undefined ? '' : 'AND device_id = $7'}) r
       WHERE t >= $3 AND t < $4`,
      [
        dayOf(fromMs),
        dayOf(Math.max(fromMs, toMs - 1)),
        fromMs,
        toMs,
        this.o.maxBackfillMs,
        this.o.maxFutureSkewMs,
        ...(deviceId === undefined ? [] : [deviceId]),
      ],
    );
    return rows;
  }
}
