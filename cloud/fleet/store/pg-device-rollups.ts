import type { SketchWire } from '../../../shared/sketch.js';
import type { RollupAggregate } from '../monitoring/rollups.js';
import type { ServingAggregate } from '../monitoring/serving-accumulator.js';
import type { PgQueryable } from './pg-fleet-rollups.js';

const byKey = <T>(entries: Iterable<[string, T]>): T[] =>
  [...entries].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, v]) => v);

/** telemetry_rollup's columns as the upsert sends them: one PostgreSQL array each. */
const DEVICE_ROLLUP_COLUMNS = [
  ['resolution', 'int'],
  ['bucket_start', 'bigint'],
  ['device_id', 'text'],
  ['model_id', 'text'],
  ['records', 'bigint'],
  ['lat_count', 'bigint'],
  ['lat_sum_ms', 'float8'],
  ['lat_max_ms', 'float8'],
  ['cpu_sum', 'float8'],
  ['temp_n', 'bigint'],
  ['temp_sum', 'float8'],
  ['temp_max', 'float8'],
  ['throttled_records', 'bigint'],
  ['throttled_bits', 'bigint'],
  ['last_at', 'bigint'],
] as const satisfies ReadonlyArray<readonly [keyof RollupAggregate, string]>;

const DEVICE_ROLLUP_UPSERT = `INSERT INTO telemetry_rollup AS t (${DEVICE_ROLLUP_COLUMNS.map(([c]) => c).join(', ')})
  SELECT * FROM unnest(${DEVICE_ROLLUP_COLUMNS.map(([, type], i) => `$${i + 1}::${type}[]`).join(', ')})
  ON CONFLICT (resolution, bucket_start, device_id, model_id) DO UPDATE SET
    records = t.records + excluded.records,
    lat_count = t.lat_count + excluded.lat_count,
    lat_sum_ms = t.lat_sum_ms + excluded.lat_sum_ms,
    lat_max_ms = greatest(t.lat_max_ms, excluded.lat_max_ms),
    cpu_sum = t.cpu_sum + excluded.cpu_sum,
    temp_n = t.temp_n + excluded.temp_n,
    temp_sum = t.temp_sum + excluded.temp_sum,
    temp_max = greatest(t.temp_max, excluded.temp_max),
    throttled_records = t.throttled_records + excluded.throttled_records,
    throttled_bits = t.throttled_bits | excluded.throttled_bits,
    last_at = greatest(t.last_at, excluded.last_at)`;

/**
 * Adds a flush's per-device minute and hour aggregates to telemetry_rollup on PostgreSQL, in the
 * caller's transaction, with one upsert: every column is a sum, a max or an OR, so concurrent
 * flushes of two replicas merge in the database. The rows travel as one typed array per column
 * (unnest), which PostgreSQL reads without parsing JSON. Rows go in key order, so two flushes
 * that touch the same rows lock them in the same order and never deadlock. Latency histograms
 * are not kept per device here (they cannot be merged in SQL): per-device percentiles on
 * PostgreSQL come from the raw records (store/pg-device-latency.ts), fleet ones from the fleet
 * rollups.
 */
export async function writeDeviceRollups(
  client: PgQueryable,
  pending: Map<string, RollupAggregate>,
): Promise<void> {
  if (pending.size === 0) return;
  const rows = byKey(pending.entries());

  await client.query(
    DEVICE_ROLLUP_UPSERT,
    DEVICE_ROLLUP_COLUMNS.map(([column]) => rows.map((row) => row[column])),
  );
}

interface StoredSketches {
  resolution: number;
  bucket_start: string;
  device_id: string;
  model_name: string;
  version: string;
  model_id: string;
  total: string;
  queue: string;
  compute: string;
}

/** One serving_rollup row's key, the same for an aggregate being written and a stored row. */
const keyOfAggregate = (a: ServingAggregate) =>
  `${a.resolution}|${a.bucketStart}|${a.deviceId}|${a.model}|${a.version}`;
const keyOfStored = (r: StoredSketches) =>
  `${r.resolution}|${r.bucket_start}|${r.device_id}|${r.model_name}|${r.version}`;

/**
 * Adds a flush's real-traffic aggregates to serving_rollup on PostgreSQL, in the caller's
 * transaction. Sketches merge only in JavaScript: an upsert adds the request and error counts,
 * locks the rows in key order and returns their stored sketches; these are merged here and
 * written back, so replicas never lose each other's traffic. Rows travel as typed arrays.
 */
export async function writeServingRollups(
  client: PgQueryable,
  pending: Map<string, ServingAggregate>,
): Promise<void> {
  if (pending.size === 0) return;
  const aggregates = byKey(
    [...pending.values()].map((a) => [keyOfAggregate(a), a] as [string, ServingAggregate]),
  );
  const keys = [
    aggregates.map((a) => a.resolution),
    aggregates.map((a) => a.bucketStart),
    aggregates.map((a) => a.deviceId),
    aggregates.map((a) => a.model),
    aggregates.map((a) => a.version),
  ];
  const locked = await client.query<StoredSketches>(
    `INSERT INTO serving_rollup AS s (resolution, bucket_start, device_id, model_name, version, model_id, requests,
       errors, total, queue, compute)
     SELECT r, b, d, m, v, i, n, e, 'null', 'null', 'null'
     FROM unnest($1::int[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::bigint[])
       AS u(r, b, d, m, v, i, n, e)
     ON CONFLICT (resolution, bucket_start, device_id, model_name, version) DO UPDATE SET
       model_id = CASE WHEN excluded.model_id <> '' THEN excluded.model_id ELSE s.model_id END,
       requests = s.requests + excluded.requests,
       errors = s.errors + excluded.errors
     RETURNING resolution, bucket_start, device_id, model_name, version, model_id, total, queue, compute`,
    [
      ...keys,
      aggregates.map((a) => a.modelId),
      aggregates.map((a) => a.requests),
      aggregates.map((a) => a.errors),
    ],
  );
  const stored = new Map(locked.rows.map((r) => [keyOfStored(r), r]));
  const merge = (into: { mergeWire(w: SketchWire): void }, text: string | undefined) => {
    if (text && text !== 'null') into.mergeWire(JSON.parse(text) as SketchWire);
  };
  const merged = { total: [] as string[], queue: [] as string[], compute: [] as string[] };
  for (const a of aggregates) {
    const old = stored.get(keyOfAggregate(a));
    merge(a.total, old?.total);
    merge(a.queue, old?.queue);
    merge(a.compute, old?.compute);
    merged.total.push(JSON.stringify(a.total.toWire()));
    merged.queue.push(JSON.stringify(a.queue.toWire()));
    merged.compute.push(JSON.stringify(a.compute.toWire()));
  }
  await client.query(
    `UPDATE serving_rollup s SET total = u.total, queue = u.queue, compute = u.compute
     FROM unnest($1::int[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[])
       AS u(r, b, d, m, v, total, queue, compute)
     WHERE s.resolution = u.r AND s.bucket_start = u.b AND s.device_id = u.d AND s.model_name = u.m
       AND s.version = u.v`,
    [...keys, merged.total, merged.queue, merged.compute],
  );
}
