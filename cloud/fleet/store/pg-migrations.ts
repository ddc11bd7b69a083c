/**
 * PostgreSQL schema for what runs there today (docs/scale.md): raw telemetry, fleet latency
 * rollups and the devices seen per model. Append-only, like migrations.ts for SQLite; applied in
 * order and tracked in `fleetml_pg_schema`.
 */
export const PG_MIGRATIONS: string[] = [];

// 1: raw telemetry, range-partitioned by day. The partition key `day` is the UTC day of the
// record's bucket time (its own timestamp when plausible, see bucketTime), which a resend
// repeats exactly, so the primary key (device_id, seq, day) makes ingest idempotent on
// (device, seq). Retention drops whole day partitions instead of deleting rows.
PG_MIGRATIONS.push(`
  CREATE TABLE telemetry (
    device_id text NOT NULL,
    seq bigint NOT NULL,
    day date NOT NULL,
    at timestamptz NOT NULL,
    received_at timestamptz NOT NULL,
    cpu_load real NOT NULL,
    mem_used double precision NOT NULL,
    mem_total double precision NOT NULL,
    temp_c real,
    model_id text,
    lat_count integer,
    p50_ms real,
    p90_ms real,
    p99_ms real,
    max_ms real,
    mean_ms real,
    PRIMARY KEY (device_id, seq, day)
  ) PARTITION BY RANGE (day);

  -- Fleet latency per (resolution, bucket, model, profile): a 24 h fleet query reads 25 rows per
  -- model and profile whatever the fleet size. hist: the 216-bucket log histogram
  -- (cloud/fleet/monitoring/histogram.ts), merged element-wise on upsert.
  CREATE TABLE telemetry_fleet_rollup (
    resolution integer NOT NULL,
    bucket_start bigint NOT NULL,
    model_id text NOT NULL,
    profile text NOT NULL,
    records bigint NOT NULL,
    lat_count double precision NOT NULL,
    lat_sum_ms double precision NOT NULL,
    lat_max_ms double precision,
    hist double precision[],
    PRIMARY KEY (resolution, bucket_start, model_id, profile)
  );

  -- Last time each device reported with each model (distinct-device counts of fleet queries).
  CREATE TABLE telemetry_device_seen (
    device_id text NOT NULL,
    model_id text NOT NULL,
    profile text NOT NULL,
    last_at bigint NOT NULL,
    PRIMARY KEY (device_id, model_id)
  );

  CREATE FUNCTION fleetml_hist_add(a double precision[], b double precision[])
  RETURNS double precision[] LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN a IS NULL THEN b WHEN b IS NULL THEN a ELSE
      (SELECT array_agg(coalesce(x, 0) + coalesce(y, 0) ORDER BY i) FROM unnest(a, b) WITH ORDINALITY AS u(x, y, i))
    END
  $$;
`);

// 2: fleet rollup histograms in the compact binary form of encodeHistogram
// (cloud/fleet/monitoring/histogram.ts), merged by the writer under a row lock: a float8[] of
// 216 entries per row cost 0.5 s to fetch for a 1 h window. Histograms written by version 1
// are dropped (the feature had not been released).
PG_MIGRATIONS.push(`
  ALTER TABLE telemetry_fleet_rollup ALTER COLUMN hist TYPE bytea USING NULL;
  DROP FUNCTION IF EXISTS fleetml_hist_add(double precision[], double precision[]);
`);

// 3: compression jobs as a queue shared by the replicas (cloud/fleet/jobs/pg-jobs.ts). A replica
// claims the oldest queued job with FOR UPDATE SKIP LOCKED and holds the session advisory lock
// (namespace, lock_key) while it runs it; when that session ends (the replica died), any replica
// can take the lock, which is how it knows the job is orphaned and queues it again.
PG_MIGRATIONS.push(`
  CREATE TABLE compression_jobs (
    id text PRIMARY KEY,
    kind text NOT NULL,
    status text NOT NULL,
    params jsonb NOT NULL,
    progress real NOT NULL DEFAULT 0,
    stage text,
    result jsonb,
    error text,
    created_by text NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    runner text,
    attempts integer NOT NULL DEFAULT 0,
    lock_key serial NOT NULL
  );
  CREATE INDEX compression_jobs_queued ON compression_jobs (created_at) WHERE status = 'queued';
  CREATE INDEX compression_jobs_running ON compression_jobs (id) WHERE status = 'running';
`);

// 4: per-device telemetry rollups and real-traffic sketches, the tables monitoring reads on
// SQLite (migrations.ts 6 and 7), written by every replica's ingest (store/pg-device-rollups.ts).
// hist stays NULL here: per-device latency percentiles come from the raw records.
PG_MIGRATIONS.push(`
  CREATE TABLE telemetry_rollup (
    resolution integer NOT NULL,
    bucket_start bigint NOT NULL,
    device_id text NOT NULL,
    model_id text NOT NULL,
    records bigint NOT NULL,
    lat_count bigint NOT NULL,
    lat_sum_ms double precision NOT NULL,
    lat_max_ms double precision,
    hist bytea,
    cpu_sum double precision NOT NULL,
    temp_n bigint NOT NULL,
    temp_sum double precision NOT NULL,
    temp_max double precision,
    throttled_records bigint NOT NULL,
    throttled_bits bigint NOT NULL,
    last_at bigint NOT NULL,
    PRIMARY KEY (resolution, bucket_start, device_id, model_id)
  );
  CREATE INDEX telemetry_rollup_by_device ON telemetry_rollup (device_id, resolution, bucket_start);
  CREATE TABLE serving_rollup (
    resolution integer NOT NULL,
    bucket_start bigint NOT NULL,
    device_id text NOT NULL,
    model_name text NOT NULL,
    version text NOT NULL,
    model_id text NOT NULL,
    requests bigint NOT NULL,
    errors bigint NOT NULL,
    total text NOT NULL,
    queue text NOT NULL,
    compute text NOT NULL,
    PRIMARY KEY (resolution, bucket_start, device_id, model_name, version)
  );
  CREATE INDEX serving_rollup_by_device ON serving_rollup (device_id, resolution, bucket_start);
`);

// 5: room on every page of the rollup tables for the next versions of their rows. Every flush
// updates the same rows again (a device's minute and hour, a model's fleet rows): with free
// space on the page PostgreSQL writes the new version there without touching the indexes (a
// HOT update) and prunes the old ones in passing; on full pages every update also inserts into
// each index. Applies to pages written from now on.
PG_MIGRATIONS.push(`
  ALTER TABLE telemetry_rollup SET (fillfactor = 50);
  ALTER TABLE telemetry_fleet_rollup SET (fillfactor = 50);
  ALTER TABLE telemetry_device_seen SET (fillfactor = 50);
  ALTER TABLE serving_rollup SET (fillfactor = 50);
`);
