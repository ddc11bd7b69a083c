import { addEncoded, addSummary } from '../monitoring/histogram.js';
import { type FleetLatency, type GroupBy, NO_PROFILE } from '../monitoring/latency.js';
import type { MonitoringOptions } from '../monitoring/options.js';
import { LatencyAccumulator, resolveWindow } from '../monitoring/windows.js';
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

  private async byDevice(fromMs: number, toMs: number): Promise<Map<string, LatencyAccumulator>> {
    const { rows } = await this.pool.query<{
      device_id: string;
      lat_count: number;
      p50_ms: number;
      p90_ms: number;
      p99_ms: number;
      max_ms: number;
      mean_ms: number;
    }>(
      `SELECT device_id, lat_count, p50_ms, p90_ms, p99_ms, max_ms, mean_ms FROM telemetry
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
      const acc = group(groups, r.device_id);
      acc.devices.add(r.device_id);
      addTo(acc, 1, r.lat_count, r.mean_ms * r.lat_count, r.max_ms);
      addSummary(acc.hist, {
        count: r.lat_count,
        p50Ms: r.p50_ms,
        p90Ms: r.p90_ms,
        p99Ms: r.p99_ms,
        maxMs: r.max_ms,
      });
    }
    return groups;
  }
}
