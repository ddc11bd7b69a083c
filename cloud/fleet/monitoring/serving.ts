import type { FleetStore } from '../store/kysely.js';
import {
  emptyMerged,
  type Merged,
  mergeServingRow,
  type ServingFilter,
  type ServingGroupBy,
  type ServingPoint,
  type ServingRow,
  type ServingSummary,
  servingKeyOf,
  servingResolution,
  summarize,
} from './serving-summary.js';

export { ServingAccumulator } from './serving-accumulator.js';
export {
  SERVING_GROUP_BY,
  type ServingFilter,
  type ServingGroupBy,
  type ServingPoint,
  type ServingSummary,
  servingResolution,
} from './serving-summary.js';
export { SqliteServingWriter } from './serving-writer.js';

export interface ServingStoreDeps {
  /** Where rows are read: the telemetry store (PostgreSQL with --database; written there by store/pg-device-rollups.ts). */
  store: FleetStore;
  /** Device id -> profile, for the profile filter and grouping (the devices may live in another store). */
  profiles: () => Promise<Map<string, string | null>>;
}

/**
 * Real-traffic latency queries. Rows were merged on write (serving-writer.ts on SQLite,
 * store/pg-device-rollups.ts on PostgreSQL) and are merged again, exactly, at query time for
 * any device, model, release, profile and window; percentiles are read off the merged DDSketch
 * (within 1 % of a value at the requested rank).
 */
export class ServingStore {
  constructor(private readonly d: ServingStoreDeps) {}

  private async rows(
    fromMs: number,
    toMs: number,
    resolution: number,
    filter: ServingFilter,
    withProfiles: boolean,
  ): Promise<ServingRow[]> {
    if (filter.deviceIds?.length === 0) return [];
    let query = this.d.store.db
      .selectFrom('serving_rollup')
      .selectAll()
      .where('resolution', '=', resolution)
      .where('bucket_start', '>=', fromMs - (fromMs % resolution))
      .where('bucket_start', '<', toMs);
    if (filter.deviceId) query = query.where('device_id', '=', filter.deviceId);
    if (filter.model) query = query.where('model_name', '=', filter.model);
    if (filter.modelId) query = query.where('model_id', '=', filter.modelId);
    if (filter.deviceIds) query = query.where('device_id', 'in', [...filter.deviceIds]);
    const rows = (await query.execute()).map(
      (r): ServingRow => ({
        ...r,
        bucket_start: Number(r.bucket_start),
        requests: Number(r.requests),
        errors: Number(r.errors),
      }),
    );
    if (!withProfiles && !filter.profile) return rows;
    const profiles = await this.d.profiles();
    for (const row of rows) row.profile = profiles.get(row.device_id) ?? null;
    return filter.profile ? rows.filter((row) => row.profile === filter.profile) : rows;
  }

  /** Merged figures per group over [fromMs, toMs). */
  async summary(
    fromMs: number,
    toMs: number,
    by: ServingGroupBy,
    filter: ServingFilter = {},
  ): Promise<ServingSummary[]> {
    const groups = new Map<string, Merged>();
    const resolution = servingResolution(toMs - fromMs);
    for (const row of await this.rows(fromMs, toMs, resolution, filter, by === 'profile')) {
      const key = servingKeyOf(row, by);
      let m = groups.get(key);
      if (!m) groups.set(key, (m = emptyMerged()));
      mergeServingRow(m, row);
    }
    return [...groups.entries()]
      .map(([key, m]) => summarize(key, m))
      .sort((a, b) => a.key.localeCompare(b.key));
  }

  /** Per group, points every `stepMs` (a multiple of the resolution) with p50/p99 and counts. */
  async series(
    fromMs: number,
    toMs: number,
    stepMs: number,
    by: ServingGroupBy,
    filter: ServingFilter = {},
  ): Promise<{ key: string; points: ServingPoint[] }[]> {
    const resolution = servingResolution(toMs - fromMs);
    const step = Math.max(resolution, stepMs - (stepMs % resolution));
    const groups = new Map<string, Map<number, Merged>>();
    for (const row of await this.rows(fromMs, toMs, resolution, filter, by === 'profile')) {
      const key = servingKeyOf(row, by);
      let byStep = groups.get(key);
      if (!byStep) groups.set(key, (byStep = new Map()));
      const t = row.bucket_start - (row.bucket_start % step);
      let m = byStep.get(t);
      if (!m) byStep.set(t, (m = emptyMerged()));
      mergeServingRow(m, row);
    }
    return [...groups.entries()].map(([key, byStep]) => ({
      key,
      points: [...byStep.entries()]
        .sort((a, b) => a[0] - b[0])
        .map(([t, m]) => ({
          at: new Date(t).toISOString(),
          requests: m.requests,
          errors: m.errors,
          p50Ms: m.total.quantile(0.5),
          p99Ms: m.total.quantile(0.99),
        })),
    }));
  }
}
