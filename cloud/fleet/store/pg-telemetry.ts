import { type MonitoringOptions, RESOLUTION } from '../monitoring/options.js';
import { bucketTime, RollupAccumulator } from '../monitoring/rollups.js';
import { ServingAccumulator } from '../monitoring/serving-accumulator.js';
import { writeDeviceRollups, writeServingRollups } from './pg-device-rollups.js';
import { type PgBatch, PgDeviceSeen, type PgQueryable, writeFleetRollups } from './pg-fleet-rollups.js';
import { dayOf, PgTelemetryPartitions } from './pg-partitions.js';
import type { PgPool } from './postgres.js';

export type { PgBatch } from './pg-fleet-rollups.js';

export interface PgRetentionResult {
  partitionsDropped: string[];
  rollupsDeleted: number;
}

/**
 * Telemetry on PostgreSQL: raw records in day partitions (idempotent on (device, seq)), fleet
 * latency rollups per (minute|hour, model, profile), per-device rollups and real-traffic
 * sketches, all in the flush's one transaction; retention by dropping partitions. Every replica
 * writes here; commits are serialised only by row locks on the rollup rows a flush touches,
 * taken in key order and in the same order of tables, so replicas do not deadlock on them.
 */
export class PgTelemetryStore {
  private readonly partitions: PgTelemetryPartitions;
  private readonly seen = new PgDeviceSeen();

  constructor(
    readonly pool: PgPool,
    private readonly o: Pick<MonitoringOptions, 'maxBackfillMs' | 'maxFutureSkewMs'>,
  ) {
    this.partitions = new PgTelemetryPartitions(pool);
  }

  /** Stores the batches in one transaction; per batch, how many records were new. */
  async write(batches: PgBatch[], nowMs = Date.now()): Promise<number[]> {
    const cols = {
      device: [] as string[],
      seq: [] as number[],
      day: [] as string[],
      at: [] as string[],
      cpu: [] as number[],
      memUsed: [] as number[],
      memTotal: [] as number[],
      temp: [] as Array<number | null>,
      model: [] as Array<string | null>,
      latCount: [] as Array<number | null>,
      p50: [] as Array<number | null>,
      p90: [] as Array<number | null>,
      p99: [] as Array<number | null>,
      max: [] as Array<number | null>,
      mean: [] as Array<number | null>,
    };
    const bucketOf = new Map<string, number>();
    for (const b of batches) {
      for (const r of b.records) {
        const t = bucketTime(r, nowMs, this.o);
        bucketOf.set(`${b.deviceId}|${r.seq}`, t);
        cols.device.push(b.deviceId);
        cols.seq.push(r.seq);
        cols.day.push(dayOf(t));
        cols.at.push(Number.isFinite(Date.parse(r.at)) ? r.at : new Date(nowMs).toISOString());
        cols.cpu.push(r.cpuLoad);
        cols.memUsed.push(r.memUsedBytes);
        cols.memTotal.push(r.memTotalBytes);
        cols.temp.push(r.tempC);
        cols.model.push(r.modelId);
        const l = r.latency;
        cols.latCount.push(l?.count ?? null);
        cols.p50.push(l?.p50Ms ?? null);
        cols.p90.push(l?.p90Ms ?? null);
        cols.p99.push(l?.p99Ms ?? null);
        cols.max.push(l?.maxMs ?? null);
        cols.mean.push(l?.meanMs ?? null);
      }
    }
    await this.ensurePartitions(new Set(cols.day));
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      const inserted = await client.query<{ device_id: string; seq: string }>(
        `INSERT INTO telemetry (device_id, seq, day, at, received_at, cpu_load, mem_used, mem_total, temp_c, model_id,
           lat_count, p50_ms, p90_ms, p99_ms, max_ms, mean_ms)
         SELECT d, s, dy, a, $5, c, mu, mt, tc, m, lc, q50, q90, q99, mx, mn
         FROM unnest($1::text[], $2::bigint[], $3::date[], $4::timestamptz[], $6::real[], $7::float8[], $8::float8[],
           $9::real[], $10::text[], $11::int[], $12::real[], $13::real[], $14::real[], $15::real[], $16::real[])
           AS u(d, s, dy, a, c, mu, mt, tc, m, lc, q50, q90, q99, mx, mn)
         ON CONFLICT DO NOTHING RETURNING device_id, seq`,
        [
          cols.device,
          cols.seq,
          cols.day,
          cols.at,
          new Date(nowMs).toISOString(),
          cols.cpu,
          cols.memUsed,
          cols.memTotal,
          cols.temp,
          cols.model,
          cols.latCount,
          cols.p50,
          cols.p90,
          cols.p99,
          cols.max,
          cols.mean,
        ],
      );
      const fresh = new Set(inserted.rows.map((r) => `${r.device_id}|${r.seq}`));
      const added = batches.map((b) => b.records.filter((r) => fresh.has(`${b.deviceId}|${r.seq}`)).length);
      await writeFleetRollups(client, batches, fresh, bucketOf);
      await this.writeDeviceAggregates(client, batches, fresh, bucketOf);
      await this.seen.write(client, batches, nowMs);
      await client.query('COMMIT');
      return added;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {});
      throw error;
    } finally {
      client.release();
    }
  }

  /** Per-device rollups (health, device series) and real-traffic sketches of the new records. */
  private async writeDeviceAggregates(
    client: PgQueryable,
    batches: PgBatch[],
    fresh: Set<string>,
    bucketOf: Map<string, number>,
  ): Promise<void> {
    const rollups = new RollupAccumulator(false); // no per-device histograms on PostgreSQL
    const serving = new ServingAccumulator();
    for (const b of batches) {
      for (const r of b.records) {
        const key = `${b.deviceId}|${r.seq}`;
        if (!fresh.has(key)) continue; // a resend must not count twice
        const at = bucketOf.get(key) ?? 0;
        rollups.add(b.deviceId, r, at);
        if (r.serving) serving.add(b.deviceId, r, at);
      }
    }
    await writeDeviceRollups(client, rollups.pending);
    await writeServingRollups(client, serving.pending);
  }

  /** Creates the day partitions that do not exist yet (once per replica and day). */
  ensurePartitions(days: Set<string>): Promise<void> {
    return this.partitions.ensure(days);
  }

  /** Forgets which partitions exist (another replica may have dropped one). */
  forgetPartitions(): void {
    this.partitions.forget();
  }

  /** Day partitions, oldest first. */
  partitionDays(): Promise<string[]> {
    return this.partitions.days();
  }

  /** Raw records stored (all partitions). */
  async count(): Promise<number> {
    const { rows } = await this.pool.query<{ n: string }>('SELECT count(*) n FROM telemetry');
    return Number(rows[0].n);
  }

  /**
   * Retention: drops every day partition that ends before `rawBeforeMs` (whole days: a drop is
   * instant and leaves no dead rows to vacuum, unlike DELETE) and rollups past their own age.
   */
  async sweep(rawBeforeMs: number, minuteBeforeMs: number, hourBeforeMs: number): Promise<PgRetentionResult> {
    const partitionsDropped = await this.partitions.dropBefore(rawBeforeMs);
    const deleted = await this.pool.query(
      `DELETE FROM telemetry_fleet_rollup WHERE (resolution = $1 AND bucket_start < $2)
         OR (resolution = $3 AND bucket_start < $4)`,
      [RESOLUTION.minute, minuteBeforeMs, RESOLUTION.hour, hourBeforeMs],
    );
    await this.pool.query('DELETE FROM telemetry_device_seen WHERE last_at < $1', [hourBeforeMs]);
    let rollupsDeleted = deleted.rowCount ?? 0;
    for (const table of ['telemetry_rollup', 'serving_rollup']) {
      const result = await this.pool.query(
        `DELETE FROM ${table} WHERE (resolution = $1 AND bucket_start < $2) OR (resolution = $3 AND bucket_start < $4)`,
        [RESOLUTION.minute, minuteBeforeMs, RESOLUTION.hour, hourBeforeMs],
      );
      rollupsDeleted += result.rowCount ?? 0;
    }
    return { partitionsDropped, rollupsDeleted };
  }
}
