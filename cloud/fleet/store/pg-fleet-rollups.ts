import type { TelemetryRecord } from '../../../shared/protocol/index.js';
import {
  addEncoded,
  addSummary,
  emptyHistogram,
  encodeHistogram,
  type Histogram,
} from '../monitoring/histogram.js';
import { RESOLUTION } from '../monitoring/options.js';
import type { PgPool } from './postgres.js';

/** How often a replica refreshes a device's row in telemetry_device_seen, ms. */
const SEEN_REFRESH_MS = 60_000;

/** Something that runs queries: the pool, or a client inside a transaction. */
export type PgQueryable = { query: PgPool['query'] };

export interface PgBatch {
  deviceId: string;
  /** The device's profile (fleet rollups group by it); null when unset. */
  profile: string | null;
  records: TelemetryRecord[];
}

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

/** Per (resolution, bucket, model, profile): the new records of a flush, summed. */
function aggregate(
  batches: PgBatch[],
  fresh: Set<string>,
  bucketOf: Map<string, number>,
): Map<string, FleetAggregate> {
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
  return aggregates;
}

/**
 * Adds a flush's new records to the fleet latency rollups (telemetry_fleet_rollup), inside the
 * caller's transaction. Commits are serialised only by row locks on the few rollup rows a flush
 * touches, taken in key order, so two replicas' flushes never deadlock.
 */
export async function writeFleetRollups(
  client: PgQueryable,
  batches: PgBatch[],
  fresh: Set<string>,
  bucketOf: Map<string, number>,
): Promise<void> {
  const aggregates = aggregate(batches, fresh, bucketOf);
  if (aggregates.size === 0) return;
  const sorted = [...aggregates.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([, a]) => a);
  const keys = JSON.stringify(
    sorted.map((a) => ({ r: a.resolution, b: a.bucket_start, m: a.model_id, p: a.profile })),
  );
  const keyRows = `jsonb_to_recordset($1::jsonb) AS k(r integer, b bigint, m text, p text)`;
  // Rows must exist to be locked; then the histograms are merged here, under the lock.
  await client.query(
    `INSERT INTO telemetry_fleet_rollup (resolution, bucket_start, model_id, profile, records, lat_count, lat_sum_ms)
     SELECT r, b, m, p, 0, 0, 0 FROM ${keyRows} ON CONFLICT DO NOTHING`,
    [keys],
  );
  const locked = await client.query<{
    resolution: number;
    bucket_start: string;
    model_id: string;
    profile: string;
    hist: Buffer | null;
  }>(
    `SELECT t.resolution, t.bucket_start, t.model_id, t.profile, t.hist FROM telemetry_fleet_rollup t
     JOIN ${keyRows} ON t.resolution = k.r AND t.bucket_start = k.b AND t.model_id = k.m AND t.profile = k.p
     ORDER BY t.resolution, t.bucket_start, t.model_id, t.profile FOR UPDATE OF t`,
    [keys],
  );
  const stored = new Map(
    locked.rows.map((r) => [`${r.resolution}|${r.bucket_start}|${r.model_id}|${r.profile}`, r.hist]),
  );
  const updates = sorted.map((a) => {
    let hist: string | null = null;
    if (a.hist) {
      addEncoded(a.hist, stored.get(`${a.resolution}|${a.bucket_start}|${a.model_id}|${a.profile}`) ?? null);
      hist = encodeHistogram(a.hist)?.toString('base64') ?? null;
    }
    return { ...a, hist };
  });
  await client.query(
    `UPDATE telemetry_fleet_rollup t SET
       records = t.records + u.records,
       lat_count = t.lat_count + u.lat_count,
       lat_sum_ms = t.lat_sum_ms + u.lat_sum_ms,
       lat_max_ms = greatest(t.lat_max_ms, u.lat_max_ms),
       hist = coalesce(decode(u.hist, 'base64'), t.hist)
     FROM jsonb_to_recordset($1::jsonb) AS u(resolution integer, bucket_start bigint, model_id text, profile text,
       records bigint, lat_count float8, lat_sum_ms float8, lat_max_ms float8, hist text)
     WHERE t.resolution = u.resolution AND t.bucket_start = u.bucket_start AND t.model_id = u.model_id
       AND t.profile = u.profile`,
    [JSON.stringify(updates)],
  );
}

/**
 * Which devices report with which model (telemetry_device_seen, for distinct-device counts of
 * fleet queries), refreshed at most once a minute per pair and replica.
 */
export class PgDeviceSeen {
  private readonly seen = new Map<string, number>();

  async write(client: PgQueryable, batches: PgBatch[], nowMs: number): Promise<void> {
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
}
