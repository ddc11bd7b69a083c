import { addEncoded } from '../monitoring/histogram.js';
import { type FleetLatency, type GroupBy, NO_PROFILE } from '../monitoring/latency.js';
import type { MonitoringOptions } from '../monitoring/options.js';
import { LatencyAccumulator, type ResolvedWindow, resolveWindow } from '../monitoring/windows.js';
import { PgDeviceLatencyRows } from './pg-device-latency.js';
import type { PgPool } from './postgres.js';

interface FleetRow {
  model_id: string;
  profile: string;
  records: string;
  lat_count: number;
  lat_sum_ms: number;
  lat_max_ms: number | null;
  hist: Buffer | null;
}

/** Adds one aggregate (a rollup row, or one raw record's summary) to a group. */
function addTo(
  acc: LatencyAccumulator,
  records: number,
  count: number,
  sumMs: number,
  maxMs: number | null,
): void {
  acc.records += records;
  acc.count += count;
  acc.sumMs += sumMs;
  if (maxMs !== null && (acc.maxMs === null || maxMs > acc.maxMs)) acc.maxMs = maxMs;
}

function group(groups: Map<string, LatencyAccumulator>, key: string): LatencyAccumulator {
  let acc = groups.get(key);
  if (!acc) groups.set(key, (acc = new LatencyAccumulator()));
  return acc;
}

/**
 * The fleet latency query (GET /api/fleet/latency) on PostgreSQL, same answer shape as the
 * SQLite one. By model or profile it reads the fleet rollups: one row per bucket, model and
 * profile, so its cost does not grow with the number of devices or records. By device it reads
 * the raw records of the window (store/pg-device-latency.ts; cost grows with them, see
 * docs/scale.md).
 */
export class PgFleetLatencyQuery {
  private readonly deviceRows: PgDeviceLatencyRows;

  constructor(
    private readonly pool: PgPool,
    private readonly o: Pick<MonitoringOptions, 'minuteQueryMaxMs' | 'maxBackfillMs' | 'maxFutureSkewMs'>,
  ) {
    this.deviceRows = new PgDeviceLatencyRows(pool, o);
  }

  async run(by: GroupBy, windowMs: number, nowMs = Date.now()): Promise<FleetLatency> {
    const w = resolveWindow(nowMs - windowMs, nowMs, this.o, true);
    const groups = by === 'device' ? await this.byDevice(w) : await this.byRollup(by, w);
    const fleet = new LatencyAccumulator();
    for (const acc of groups.values()) fleet.merge(acc);
    return {
      by,
      window: { fromMs: w.fromMs, toMs: w.toMs, resolution: w.resolution === 60_000 ? 'minute' : 'hour' },
      fleet: fleet.summary(),
      groups: [...groups.entries()]
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([key, acc]) => ({ key, ...acc.summary() })),
    };
  }

  private async byRollup(
    by: 'model' | 'profile',
    w: { resolution: number; fromMs: number; toMs: number },
  ): Promise<Map<string, LatencyAccumulator>> {
    const [rollups, seen] = await Promise.all([
      this.pool.query<FleetRow>(
        `SELECT model_id, profile, records, lat_count, lat_sum_ms, lat_max_ms, hist FROM telemetry_fleet_rollup
         WHERE resolution = $1 AND bucket_start >= $2 AND bucket_start < $3 AND lat_count > 0`,
        [w.resolution, w.fromMs, w.toMs],
      ),
      // Distinct devices per group come from the seen table: rollup rows have no device.
      this.pool.query<{ model_id: string; profile: string; devices: string }>(
        `SELECT model_id, profile, count(*) devices FROM telemetry_device_seen WHERE last_at >= $1
         GROUP BY model_id, profile`,
        [w.fromMs],
      ),
    ]);
    const keyOf = (r: { model_id: string; profile: string }) =>
      by === 'model' ? r.model_id : r.profile || NO_PROFILE;
    const groups = new Map<string, LatencyAccumulator>();
    for (const r of rollups.rows) {
      const acc = group(groups, keyOf(r));
      addTo(acc, Number(r.records), r.lat_count, r.lat_sum_ms, r.lat_max_ms);
      addEncoded(acc.hist, r.hist);
    }
    // LatencyAccumulator counts distinct device ids; stand-ins keep its summary() exact.
    const counts = new Map<string, number>();
    for (const s of seen.rows) counts.set(keyOf(s), (counts.get(keyOf(s)) ?? 0) + Number(s.devices));
    for (const [key, acc] of groups) {
      for (let i = 0; i < (counts.get(key) ?? 0); i++) acc.devices.add(`${key}#${i}`);
    }
    return groups;
  }

  /** By device: the raw records of the window, as every per-device figure on PostgreSQL. */
  private byDevice(w: ResolvedWindow): Promise<Map<string, LatencyAccumulator>> {
    return this.deviceRows.group(w, (row) => row.device_id);
  }
}
