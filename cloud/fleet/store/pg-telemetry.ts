import type { TelemetryRecord } from '../../../shared/protocol/index.js';
import { addSummary, emptyHistogram, type Histogram } from '../monitoring/histogram.js';
import { type MonitoringOptions, RESOLUTION } from '../monitoring/options.js';
import { bucketTime } from '../monitoring/rollups.js';
import type { PgPool } from './postgres.js';

const DAY_MS = 86_400_000;
/** Advisory lock key serialising partition creation across replicas. */
const PARTITION_LOCK = 0x666c6d02;
/** How often a replica refreshes a device's row in telemetry_device_seen, ms. */
const SEEN_REFRESH_MS = 60_000;

export interface PgBatch {
  deviceId: string;
  /** The device's profile (fleet rollups group by it); null when unset. */
  profile: string | null;
  records: TelemetryRecord[];
}

export interface PgRetentionResult {
  partitionsDropped: string[];
  rollupsDeleted: number;
}

const dayOf = (ms: number) => new Date(ms - (ms % DAY_MS)).toISOString().slice(0, 10);
const partitionName = (day: string) => `telemetry_p${day.replaceAll('-', '')}`;

interface FleetAggregate {
  resolution: number;
  bucket_start: number;
  model_id: string;
  profile: string;
  records: number;
  lat_count: number;
  lat_sum_ms: number;
  lat_max_ms: number | null;
  hist: Histogram | null;
}

/**
 * Telemetry on PostgreSQL: raw records in day partitions (idempotent on (device, seq)), fleet
 * latency rollups per (minute|hour, model, profile) merged on upsert, retention by dropping
 * partitions. Every replica writes here; commits are serialised only by row locks on the few
 * fleet rollup rows a flush touches (taken in key order, so replicas never deadlock).
 */
export class PgTelemetryStore {
  private readonly partitions = new Set<string>();
  private readonly seen = new Map<string, number>();

  constructor(
    readonly pool: PgPool,
    private readonly o: Pick<MonitoringOptions, 'maxBackfillMs' | 'maxFutureSkewMs'>,
  ) {}

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
      await this.writeRollups(client, batches, fresh, bucketOf);
      await this.writeSeen(client, batches, nowMs);
      await client.query('COMMIT');
      return added;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {});
      throw error;
    } finally {
      client.release();
    }
  }

  private async writeRollups(
    client: { query: PgPool['query'] },
    batches: PgBatch[],
    fresh: Set<string>,
    bucketOf: Map<string, number>,
  ): Promise<void> {
    const aggregates = new Map<string, FleetAggregate>();
    for (const b of batches) {
      const profile = b.profile ?? '';
      for (const r of b.records) {
        const key = `${b.deviceId}|${r.seq}`;
        if (!fresh.has(key)) continue; // a resend must not count twice
        const t = bucketOf.get(key) ?? 0;
        const l = r.latency && r.latency.count > 0 ? r.latency : null;
        for (const resolution of [RESOLUTION.minute, RESOLUTION.hour]) {
          const bucket = t - (t % resolution);
          const id = `${resolution}|${bucket}|${r.modelId ?? ''}|${profile}`;
          let agg = aggregates.get(id);
          if (!agg) {
            agg = {
              resolution,
              bucket_start: bucket,
              model_id: r.modelId ?? '',
              profile,
              records: 0,
              lat_count: 0,
              lat_sum_ms: 0,
              lat_max_ms: null,
              hist: null,
            };
            aggregates.set(id, agg);
          }
          agg.records++;
          if (l) {
            agg.lat_count += l.count;
            agg.lat_sum_ms += l.meanMs * l.count;
            agg.lat_max_ms = Math.max(agg.lat_max_ms ?? 0, l.maxMs);
            agg.hist ??= emptyHistogram();
            addSummary(agg.hist, l);
          }
        }
      }
    }
    if (aggregates.size === 0) return;
    // Key order: two replicas' flushes lock shared rows in the same order and never deadlock.
    const rows = [...aggregates.entries()]
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([, a]) => ({ ...a, hist: a.hist ? Array.from(a.hist) : null }));
    await client.query(
      `INSERT INTO telemetry_fleet_rollup AS t (resolution, bucket_start, model_id, profile, records, lat_count,
         lat_sum_ms, lat_max_ms, hist)
       SELECT * FROM jsonb_to_recordset($1::jsonb) AS r(resolution integer, bucket_start bigint, model_id text,
         profile text, records bigint, lat_count float8, lat_sum_ms float8, lat_max_ms float8, hist float8[])
       ON CONFLICT (resolution, bucket_start, model_id, profile) DO UPDATE SET
         records = t.records + excluded.records,
         lat_count = t.lat_count + excluded.lat_count,
         lat_sum_ms = t.lat_sum_ms + excluded.lat_sum_ms,
         lat_max_ms = greatest(t.lat_max_ms, excluded.lat_max_ms),
         hist = fleetml_hist_add(t.hist, excluded.hist)`,
      [JSON.stringify(rows)],
    );
  }

  /** Marks (device, model) as reporting, at most once a minute per pair and replica. */
  private async writeSeen(
    client: { query: PgPool['query'] },
    batches: PgBatch[],
    nowMs: number,
  ): Promise<void> {
    const rows = new Map<string, { device_id: string; model_id: string; profile: string; last_at: number }>();
    for (const b of batches) {
      for (const r of b.records) {
        const key = `${b.deviceId}|${r.modelId ?? ''}`;
        if ((this.seen.get(key) ?? 0) > nowMs - SEEN_REFRESH_MS) continue;
        rows.set(key, {
          device_id: b.deviceId,
          model_id: r.modelId ?? '',
          profile: b.profile ?? '',
          last_at: nowMs,
        });
      }
    }
    if (rows.size === 0) return;
    const sorted = [...rows.entries()].sort(([a], [b]) => (a < b ? -1 : 1));
    await client.query(
      `INSERT INTO telemetry_device_seen AS t (device_id, model_id, profile, last_at)
       SELECT * FROM jsonb_to_recordset($1::jsonb) AS r(device_id text, model_id text, profile text, last_at bigint)
       ON CONFLICT (device_id, model_id) DO UPDATE SET
         last_at = greatest(t.last_at, excluded.last_at), profile = excluded.profile`,
      [JSON.stringify(sorted.map(([, row]) => row))],
    );
    for (const [key] of sorted) this.seen.set(key, nowMs);
  }

  /** Creates the day partitions that do not exist yet (once per replica and day). */
  async ensurePartitions(days: Set<string>): Promise<void> {
    const missing = [...days].filter((d) => !this.partitions.has(d));
    if (missing.length === 0) return;
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      await client.query('SELECT pg_advisory_xact_lock($1)', [PARTITION_LOCK]);
      for (const day of missing) {
        const next = dayOf(Date.parse(`${day}T00:00:00Z`) + DAY_MS);
        await client.query(
          `CREATE TABLE IF NOT EXISTS ${partitionName(day)} PARTITION OF telemetry
           FOR VALUES FROM ('${day}') TO ('${next}')`,
        );
      }
      await client.query('COMMIT');
      for (const day of missing) this.partitions.add(day);
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {});
      throw error;
    } finally {
      client.release();
    }
  }

  /** Forgets which partitions exist (another replica may have dropped one). */
  forgetPartitions(): void {
    this.partitions.clear();
  }

  /** Raw records stored (all partitions). */
  async count(): Promise<number> {
    const { rows } = await this.pool.query<{ n: string }>('SELECT count(*) n FROM telemetry');
    return Number(rows[0].n);
  }

  /** Day partitions, oldest first. */
  async partitionDays(): Promise<string[]> {
    const { rows } = await this.pool.query<{ name: string }>(
      `SELECT c.relname name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
       JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'telemetry' ORDER BY 1`,
    );
    return rows
      .map((r) => /^telemetry_p(\d{4})(\d{2})(\d{2})$/.exec(r.name))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => `${m[1]}-${m[2]}-${m[3]}`);
  }

  /**
   * Retention: drops every day partition that ends before `rawBeforeMs` (whole days: a drop is
   * instant and leaves no dead rows to vacuum, unlike DELETE) and rollups past their own age.
   */
  async sweep(rawBeforeMs: number, minuteBeforeMs: number, hourBeforeMs: number): Promise<PgRetentionResult> {
    const partitionsDropped: string[] = [];
    for (const day of await this.partitionDays()) {
      if (Date.parse(`${day}T00:00:00Z`) + DAY_MS > rawBeforeMs) continue;
      await this.pool.query(`DROP TABLE IF EXISTS ${partitionName(day)}`);
      this.partitions.delete(day);
      partitionsDropped.push(day);
    }
    const deleted = await this.pool.query(
      `DELETE FROM telemetry_fleet_rollup WHERE (resolution = $1 AND bucket_start < $2)
         OR (resolution = $3 AND bucket_start < $4)`,
      [RESOLUTION.minute, minuteBeforeMs, RESOLUTION.hour, hourBeforeMs],
    );
    await this.pool.query('DELETE FROM telemetry_device_seen WHERE last_at < $1', [hourBeforeMs]);
    return { partitionsDropped, rollupsDeleted: deleted.rowCount ?? 0 };
  }
}
