import { addSummary, emptyHistogram } from '../monitoring/histogram.js';
import { type FleetLatency, type GroupBy, NO_PROFILE } from '../monitoring/latency.js';
import type { MonitoringOptions } from '../monitoring/options.js';
import { LatencyAccumulator, type LatencyRow, resolveWindow } from '../monitoring/windows.js';
import type { PgPool } from './postgres.js';

interface FleetRow {
  model_id: string;
  profile: string;
  records: string;
  lat_count: number;
  lat_sum_ms: number;
  lat_max_ms: number | null;
  hist: number[] | null;
}

function toLatencyRow(
  deviceId: string,
  modelId: string,
  r: Omit<FleetRow, 'model_id' | 'profile'>,
): LatencyRow {
  const weights = r.hist ? Float32Array.from(r.hist) : new Float32Array(0);
  return {
    device_id: deviceId,
    model_id: modelId,
    records: Number(r.records),
    lat_count: r.lat_count,
    lat_sum_ms: r.lat_sum_ms,
    lat_max_ms: r.lat_max_ms,
    first: 0,
    weights,
    offset: 0,
    length: weights.length,
  };
}

/**
 * The fleet latency query (GET /api/fleet/latency) on PostgreSQL, same answer shape as the
 * SQLite one. By model or profile it reads the fleet rollups: one row per bucket, model and
 * profile, so its cost does not grow with the number of devices or records. By device it reads
 * the raw records of the window (cost grows with them; see docs/scale.md).
 */
export class PgFleetLatencyQuery {
  constructor(
    private readonly pool: PgPool,
    private readonly o: Pick<MonitoringOptions, 'minuteQueryMaxMs'>,
  ) {}

  async run(by: GroupBy, windowMs: number, nowMs = Date.now()): Promise<FleetLatency> {
    const w = resolveWindow(nowMs - windowMs, nowMs, this.o, true);
    const groups = by === 'device' ? await this.byDevice(w.fromMs, w.toMs) : await this.byRollup(by, w);
    const fleet = new LatencyAccumulator();
    for (const acc of groups.values()) fleet.merge(acc);
    const fleetSummary = fleet.summary();
    return {
      by,
      window: { fromMs: w.fromMs, toMs: w.toMs, resolution: w.resolution === 60_000 ? 'minute' : 'hour' },
      fleet: fleetSummary,
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
      this.pool.query<{ device_id: string; model_id: string; profile: string }>(
        'SELECT device_id, model_id, profile FROM telemetry_device_seen WHERE last_at >= $1',
        [w.fromMs],
      ),
    ]);
    const keyOf = (r: { model_id: string; profile: string }) =>
      by === 'model' ? r.model_id : r.profile || NO_PROFILE;
    const groups = new Map<string, LatencyAccumulator>();
    for (const r of rollups.rows) {
      const key = keyOf(r);
      let acc = groups.get(key);
      if (!acc) groups.set(key, (acc = new LatencyAccumulator()));
      // The synthetic device id '' is replaced by the real devices below.
      acc.add(toLatencyRow('', r.model_id, r));
    }
    for (const acc of groups.values()) acc.devices.clear();
    for (const s of seen.rows) groups.get(keyOf(s))?.devices.add(s.device_id);
    return groups;
  }

  private async byDevice(fromMs: number, toMs: number): Promise<Map<string, LatencyAccumulator>> {
    const { rows } = await this.pool.query<{
      device_id: string;
      model_id: string | null;
      lat_count: number;
      p50_ms: number;
      p90_ms: number;
      p99_ms: number;
      max_ms: number;
      mean_ms: number;
    }>(
      `SELECT device_id, model_id, lat_count, p50_ms, p90_ms, p99_ms, max_ms, mean_ms FROM telemetry
       WHERE day >= $1::date AND day <= $2::date AND at >= $3 AND at < $4 AND lat_count > 0`,
      [
        new Date(fromMs).toISOString().slice(0, 10),
        new Date(toMs).toISOString().slice(0, 10),
        new Date(fromMs).toISOString(),
        new Date(toMs).toISOString(),
      ],
    );
    const groups = new Map<string, LatencyAccumulator>();
    for (const r of rows) {
      const hist = emptyHistogram();
      addSummary(hist, {
        count: r.lat_count,
        p50Ms: r.p50_ms,
        p90Ms: r.p90_ms,
        p99Ms: r.p99_ms,
        maxMs: r.max_ms,
      });
      let acc = groups.get(r.device_id);
      if (!acc) groups.set(r.device_id, (acc = new LatencyAccumulator()));
      acc.add(
        toLatencyRow(r.device_id, r.model_id ?? '', {
          records: '1',
          lat_count: r.lat_count,
          lat_sum_ms: r.mean_ms * r.lat_count,
          lat_max_ms: r.max_ms,
          hist: Array.from(hist),
        }),
      );
    }
    return groups;
  }
}
