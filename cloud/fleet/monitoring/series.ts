import { type FleetStore, toNumber } from '../store/kysely.js';
import { addEncoded, emptyHistogram, type Histogram, quantiles } from './histogram.js';
import type { DeviceLatencySource } from './latency-source.js';
import { RESOLUTION } from './options.js';

const DAY = 86_400_000;

export interface DeviceSeriesPoint {
  at: string;
  count: number;
  p50Ms: number | null;
  p90Ms: number | null;
  p99Ms: number | null;
  tempMaxC: number | null;
  cpuLoad: number | null;
  throttledRecords: number;
}

export interface DeviceSeries {
  deviceId: string;
  resolution: 'minute' | 'hour';
  points: DeviceSeriesPoint[];
}

interface BucketSum {
  hist: Histogram;
  count: number;
  records: number;
  cpu: number;
  throttled: number;
  tempMax: number | null;
}

/**
 * A device's latency, temperature and throttling over time (GET /api/fleet/devices/:id/series):
 * minute points up to two days, hour points beyond. Counts, temperature, CPU and throttling come
 * from the per-device rollups of the telemetry store (SQLite or PostgreSQL); percentiles from
 * their histograms, or on PostgreSQL from the latency source's raw records.
 */
export class DeviceSeriesQuery {
  constructor(
    private readonly d: {
      store: FleetStore;
      latency: Pick<DeviceLatencySource, 'deviceHistograms'>;
    },
  ) {}

  async run(deviceId: string, spanMs: number, nowMs = Date.now()): Promise<DeviceSeries> {
    const resolution = spanMs <= 2 * DAY ? RESOLUTION.minute : RESOLUTION.hour;
    const from = nowMs - spanMs - ((nowMs - spanMs) % resolution);
    const to = nowMs + resolution;
    const rows = await this.d.store.db
      .selectFrom('telemetry_rollup')
      .select(['bucket_start', 'records', 'lat_count', 'hist', 'cpu_sum', 'temp_max', 'throttled_records'])
      .where('device_id', '=', deviceId)
      .where('resolution', '=', resolution)
      .where('bucket_start', '>=', from)
      .where('bucket_start', '<', to)
      .orderBy('bucket_start')
      .execute();
    const raw = await this.d.latency.deviceHistograms?.(deviceId, resolution, from, to);
    const buckets = new Map<number, BucketSum>();
    for (const r of rows) {
      const t = toNumber(r.bucket_start);
      let b = buckets.get(t);
      if (!b) {
        b = {
          hist: raw?.get(t) ?? emptyHistogram(),
          count: 0,
          records: 0,
          cpu: 0,
          throttled: 0,
          tempMax: null,
        };
        buckets.set(t, b);
      }
      if (!raw) addEncoded(b.hist, r.hist);
      b.count += toNumber(r.lat_count);
      b.records += toNumber(r.records);
      b.cpu += Number(r.cpu_sum);
      b.throttled += toNumber(r.throttled_records);
      if (r.temp_max !== null) {
        const temp = Number(r.temp_max);
        b.tempMax = b.tempMax === null ? temp : Math.max(b.tempMax, temp);
      }
    }
    return {
      deviceId,
      resolution: resolution === RESOLUTION.minute ? 'minute' : 'hour',
      points: [...buckets.entries()].map(([t, b]) => point(t, b)),
    };
  }
}

function point(t: number, b: BucketSum): DeviceSeriesPoint {
  const [p50, p90, p99] = b.count > 0 ? quantiles(b.hist, [0.5, 0.9, 0.99]) : [null, null, null];
  const finite = (v: number | null) => (v === null || Number.isNaN(v) ? null : v);
  return {
    at: new Date(t).toISOString(),
    count: b.count,
    p50Ms: finite(p50),
    p90Ms: finite(p90),
    p99Ms: finite(p99),
    tempMaxC: b.tempMax,
    cpuLoad: b.records > 0 ? b.cpu / b.records : null,
    throttledRecords: b.throttled,
  };
}
