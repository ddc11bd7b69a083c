import type { TelemetryRecord } from '../../../shared/protocol/index.js';
import {
  addEncoded,
  addSummaryRange,
  emptyHistogram,
  encodeHistogram,
  type Histogram,
} from '../monitoring/histogram.js';
import { RESOLUTION } from '../monitoring/options.js';
import type { PgPool } from './postgres.js';

const RESOLUTIONS = [RESOLUTION.minute, RESOLUTION.hour];

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
  // Each record's summary becomes a histogram once, in a reused scratch, added to both resolutions.
  const scratch = emptyHistogram();
  for (const b of batches) {
    const profile = b.profile ?? '';
    for (const r of b.records) {
      const key = `${b.deviceId}|${r.seq}`;
      if (!fresh.has(key)) continue; // a resend must not count twice
      const t = bucketOf.get(key) ?? 0;
      const l = r.latency && r.latency.count > 0 ? r.latency : null;
      const [first, last] = l ? addSummaryRange(scratch, l) : [0, -1];
      for (const resolution of RESOLUTIONS) {
        const agg = aggregateOf(aggregates, resolution, t - (t % resolution), r.modelId ?? '', profile);
        agg.records++;
        if (l) {
          agg.lat_count += l.count;
          agg.lat_sum_ms += l.meanMs * l.count;
          agg.lat_max_ms = Math.max(agg.lat_max_ms ?? 0, l.maxMs);
          agg.hist ??= emptyHistogram();
          for (let i = first; i <= last; i++) agg.hist[i] += scratch[i];
        }
      }
      scratch.fill(0, first, last + 1);
    }
  }
  return aggregates;
}

function aggregateOf(
  aggregates: Map<string, FleetAggregate>,
  resolution: number,
  bucket: number,
  modelId: string,
  profile: string,
): FleetAggregate {
  const id = `${resolution}|${bucket}|${modelId}|${profile}`;
  let agg = aggregates.get(id);
  if (!agg) {
    agg = {
      resolution,
      bucket_start: bucket,
      model_id: modelId,
      profile,
      records: 0,
      lat_count: 0,
      lat_sum_ms: 0,
      lat_max_ms: null,
      hist: null,
    };
    aggregates.set(id, agg);
  }
  return agg;
}

/**
 * Adds a flush's new records to the fleet latency rollups (telemetry_fleet_rollup), inside the
 * caller's transaction, in two statements: an upsert adds the sums and locks the rows (in key
 * order, so two replicas' flushes never deadlock) and returns their stored histograms; those are
 * merged here, under the lock, and written back. Rows travel as typed arrays (unnest).
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
  const locked = await client.query<{
    resolution: number;
    bucket_start: string;
    model_id: string;
    profile: string;
    hist: Buffer | null;
  }>(
    `INSERT INTO telemetry_fleet_rollup AS t (resolution, bucket_start, model_id, profile, records, lat_count,
       lat_sum_ms, lat_max_ms)
     SELECT * FROM unnest($1::int[], $2::bigint[], $3::text[], $4::text[], $5::bigint[], $6::float8[], $7::float8[],
       $8::float8[])
     ON CONFLICT (resolution, bucket_start, model_id, profile) DO UPDATE SET
       records = t.records + excluded.records,
       lat_count = t.lat_count + excluded.lat_count,
       lat_sum_ms = t.lat_sum_ms + excluded.lat_sum_ms,
       lat_max_ms = greatest(t.lat_max_ms, excluded.lat_max_ms)
     RETURNING resolution, bucket_start, model_id, profile, hist`,
    [
      sorted.map((a) => a.resolution),
      sorted.map((a) => a.bucket_start),
      sorted.map((a) => a.model_id),
      sorted.map((a) => a.profile),
      sorted.map((a) => a.records),
      sorted.map((a) => a.lat_count),
      sorted.map((a) => a.lat_sum_ms),
      sorted.map((a) => a.lat_max_ms),
    ],
  );
  const stored = new Map(
    locked.rows.map((r) => [`${r.resolution}|${r.bucket_start}|${r.model_id}|${r.profile}`, r.hist]),
  );
  const merged = sorted.filter((a) => a.hist !== null);
  if (merged.length === 0) return;
  const hists = merged.map((a) => {
    addEncoded(a.hist!, stored.get(`${a.resolution}|${a.bucket_start}|${a.model_id}|${a.profile}`) ?? null);
    return encodeHistogram(a.hist!);
  });
  await client.query(
    `UPDATE telemetry_fleet_rollup t SET hist = coalesce(u.hist, t.hist)
     FROM unnest($1::int[], $2::bigint[], $3::text[], $4::text[], $5::bytea[]) AS u(r, b, m, p, hist)
     WHERE t.resolution = u.r AND t.bucket_start = u.b AND t.model_id = u.m AND t.profile = u.p`,
    [
      merged.map((a) => a.resolution),
      merged.map((a) => a.bucket_start),
      merged.map((a) => a.model_id),
      merged.map((a) => a.profile),
      hists,
    ],
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
    const column = <K extends 'device_id' | 'model_id' | 'profile' | 'last_at'>(k: K) =>
      sorted.map(([, row]) => row[k]);
    await client.query(
      `INSERT INTO telemetry_device_seen AS t (device_id, model_id, profile, last_at)
       SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[])
       ON CONFLICT (device_id, model_id) DO UPDATE SET
         last_at = greatest(t.last_at, excluded.last_at), profile = excluded.profile`,
      [column('device_id'), column('model_id'), column('profile'), column('last_at')],
    );
    for (const [key] of sorted) this.seen.set(key, nowMs);
  }
}
