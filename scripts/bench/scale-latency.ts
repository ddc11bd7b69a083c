/**
 * Fleet latency query on PostgreSQL with 10 M records (issue 17 target: p95 <= 50 ms).
 *
 *   npx tsx scripts/bench/scale-latency.ts [--devices 10000] [--records 10000000] [--runs 40]
 *     [--database postgres://fleetml:fleetml@127.0.0.1:5432/fleetml_test]
 *
 * Creates a scratch database, generates the raw records with generate_series (10,000 devices
 * reporting every 10 s, 3 models, 5 profiles, 10 speed classes: p50 4–13 ms), builds the fleet
 * rollups the ingest path would have written (histograms from the same summaries, with the same
 * histogram code), then times PgFleetLatencyQuery: by model over 1 h and 24 h, by profile over
 * 24 h (rollups), and by device over 15 min (raw rows: the baseline a query without rollups pays).
 */
import { randomBytes } from 'node:crypto';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { addSummary, emptyHistogram, encodeHistogram } from '../../cloud/fleet/monitoring/histogram.js';
import type { GroupBy } from '../../cloud/fleet/monitoring/latency.js';
import { DEFAULT_MONITORING_OPTIONS, RESOLUTION } from '../../cloud/fleet/monitoring/options.js';
import { PgFleetLatencyQuery } from '../../cloud/fleet/store/pg-latency.js';
import { PgTelemetryStore } from '../../cloud/fleet/store/pg-telemetry.js';
import { openPostgres } from '../../cloud/fleet/store/postgres.js';
import { machineLine, markdownTable, writeBenchmarkSection } from './report.js';

const { values: args } = parseArgs({
  options: {
    devices: { type: 'string', default: '10000' },
    records: { type: 'string', default: '10000000' },
    runs: { type: 'string', default: '40' },
    database: { type: 'string', default: 'postgres://fleetml:fleetml@127.0.0.1:5432/fleetml_test' },
    'no-write': { type: 'boolean', default: false },
  },
});
const devices = Number(args.devices);
const total = Number(args.records);
const perDevice = Math.floor(total / devices);
const runs = Number(args.runs);
const INTERVAL_MS = 10_000;

const name = `fleetml_bench_${randomBytes(3).toString('hex')}`;
const admin = new pg.Client({ connectionString: args.database });
await admin.connect();
await admin.query(`CREATE DATABASE ${name}`);
const url = new URL(args.database);
url.pathname = `/${name}`;
const pool = await openPostgres(url.toString());
const log = (msg: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${msg}\n`);

try {
  const now = Date.now();
  const start = now - perDevice * INTERVAL_MS;
  // Day partitions for the span, then the rows straight from SQL.
  const store = new PgTelemetryStore(pool, DEFAULT_MONITORING_OPTIONS);
  const days = new Set<string>();
  for (let t = start - (start % 86_400_000); t <= now; t += 86_400_000)
    days.add(new Date(t).toISOString().slice(0, 10));
  await store.ensurePartitions(days);
  const generated = performance.now();
  const chunk = Math.max(1, Math.floor(1_000_000 / perDevice));
  for (let d0 = 0; d0 < devices; d0 += chunk) {
    await pool.query(
      `INSERT INTO telemetry (device_id, seq, day, at, received_at, cpu_load, mem_used, mem_total, temp_c, model_id,
         lat_count, p50_ms, p90_ms, p99_ms, max_ms, mean_ms)
       SELECT 'dev-' || d, s, (to_timestamp(($1::bigint + s * $2::bigint + d) / 1000.0) AT TIME ZONE 'UTC')::date,
         to_timestamp(($1::bigint + s * $2::bigint + d) / 1000.0), to_timestamp(($1::bigint + s * $2::bigint + d) / 1000.0),
         25, 1e9, 4e9, 50, 'model-' || (d % 3), 100,
         4 + d % 10, (4 + d % 10) * 1.5, (4 + d % 10) * 2.2, (4 + d % 10) * 3, (4 + d % 10) * 1.15
       FROM generate_series($3::int, $4::int) d, generate_series(0, $5::int - 1) s`,
      [start, INTERVAL_MS, d0, Math.min(devices, d0 + chunk) - 1, perDevice],
    );
    log(`raw rows: devices ${Math.min(devices, d0 + chunk)}/${devices}`);
  }
  const rawS = (performance.now() - generated) / 1000;
  // Rollups: records of one (bucket, model, profile, speed class) share one summary.
  for (const resolution of [RESOLUTION.minute, RESOLUTION.hour]) {
    const { rows } = await pool.query<{
      bucket: string;
      model: string;
      profile: string;
      cls: number;
      n: string;
    }>(
      `SELECT (floor(extract(epoch FROM at) * 1000 / $1) * $1)::bigint bucket, model_id model,
         'profile-' || (substr(device_id, 5)::int % 5) profile, substr(device_id, 5)::int % 10 cls, count(*) n
       FROM telemetry GROUP BY 1, 2, 3, 4`,
      [resolution],
    );
    const groups = new Map<
      string,
      {
        bucket: number;
        model: string;
        profile: string;
        n: number;
        sum: number;
        max: number;
        hist: Float64Array;
      }
    >();
    for (const r of rows) {
      const key = `${r.bucket}|${r.model}|${r.profile}`;
      let g = groups.get(key);
      if (!g)
        groups.set(
          key,
          (g = {
            bucket: Number(r.bucket),
            model: r.model,
            profile: r.profile,
            n: 0,
            sum: 0,
            max: 0,
            hist: emptyHistogram(),
          }),
        );
      const p50 = 4 + r.cls;
      const n = Number(r.n);
      addSummary(g.hist, { count: 100 * n, p50Ms: p50, p90Ms: p50 * 1.5, p99Ms: p50 * 2.2, maxMs: p50 * 3 });
      g.n += n;
      g.sum += p50 * 1.15 * 100 * n;
      g.max = Math.max(g.max, p50 * 3);
    }
    const list = [...groups.values()];
    for (let i = 0; i < list.length; i += 2000) {
      const slice = list.slice(i, i + 2000).map((g) => ({
        resolution,
        bucket_start: g.bucket,
        model_id: g.model,
        profile: g.profile,
        records: g.n,
        lat_count: 100 * g.n,
        lat_sum_ms: g.sum,
        lat_max_ms: g.max,
        hist: encodeHistogram(g.hist)?.toString('base64') ?? null,
      }));
      await pool.query(
        `INSERT INTO telemetry_fleet_rollup SELECT resolution, bucket_start, model_id, profile, records, lat_count, lat_sum_ms, lat_max_ms, decode(hist, 'base64') FROM jsonb_to_recordset($1::jsonb) AS r(resolution integer,
           bucket_start bigint, model_id text, profile text, records bigint, lat_count float8, lat_sum_ms float8,
           lat_max_ms float8, hist text)`,
        [JSON.stringify(slice)],
      );
    }
    log(`rollups at ${resolution / 60_000} min: ${list.length} rows`);
  }
  await pool.query(
    `INSERT INTO telemetry_device_seen SELECT 'dev-' || d, 'model-' || (d % 3), 'profile-' || (d % 5), $1
     FROM generate_series(0, $2::int - 1) d`,
    [now, devices],
  );
  await pool.query('ANALYZE');
  const records = Number((await pool.query<{ n: string }>('SELECT count(*) n FROM telemetry')).rows[0].n);

  const query = new PgFleetLatencyQuery(pool, DEFAULT_MONITORING_OPTIONS);
  const cases: Array<{ label: string; by: GroupBy; windowMs: number; runs: number }> = [
    { label: 'by model, 1 h (minute rollups)', by: 'model', windowMs: 3_600_000, runs },
    { label: 'by model, 24 h (hour rollups)', by: 'model', windowMs: 86_400_000, runs },
    { label: 'by profile, 24 h (hour rollups)', by: 'profile', windowMs: 86_400_000, runs },
    { label: 'by device, 15 min (raw rows)', by: 'device', windowMs: 900_000, runs: Math.min(runs, 5) },
  ];
  const results: Array<Array<string | number>> = [];
  for (const c of cases) {
    const times: number[] = [];
    let groups = 0;
    let fleetP99: number | null = null;
    for (let i = 0; i < c.runs + 2; i++) {
      const t0 = performance.now();
      const answer = await query.run(c.by, c.windowMs, now);
      const ms = performance.now() - t0;
      if (i >= 2) times.push(ms); // two warm-up runs
      groups = answer.groups.length;
      fleetP99 = answer.fleet.p99Ms;
    }
    times.sort((a, b) => a - b);
    const p = (q: number) => times[Math.min(times.length - 1, Math.floor(q * times.length))].toFixed(1);
    results.push([c.label, groups, fleetP99?.toFixed(2) ?? '–', p(0.5), p(0.95), times.length]);
    log(`${c.label}: p50 ${p(0.5)} ms, p95 ${p(0.95)} ms`);
  }
  const body = [
    `\`npx tsx scripts/bench/scale-latency.ts --devices ${devices} --records ${total}\` — ${new Date().toISOString().slice(0, 10)}, ${machineLine()}, PostgreSQL 15 (Debian defaults), load average ${loadavg()[0].toFixed(1)} at the end (the machine is shared).`,
    '',
    `${records.toLocaleString('en-US')} raw records from ${devices.toLocaleString('en-US')} devices (one every 10 s, ${((perDevice * INTERVAL_MS) / 3_600_000).toFixed(1)} h), generated in ${rawS.toFixed(0)} s with generate_series. PgFleetLatencyQuery.run, ${runs} timed runs after 2 warm-ups (by device: 5):`,
    '',
    markdownTable(['query', 'groups', 'fleet p99 ms', 'p50 ms', 'p95 ms', 'runs'], results),
    '',
    'Target: p95 ≤ 50 ms for the fleet query (by model/profile, read from the fleet rollups). By device reads raw rows of the window and grows with them: it is the baseline, and the reason fleet-wide queries go through rollups.',
  ].join('\n');
  if (!args['no-write']) await writeBenchmarkSection('Fleet latency query on PostgreSQL (issue 17)', body);
  process.stdout.write(`${body}\n`);
} finally {
  await pool.end();
  await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin.end();
}
