/**
 * One replica's telemetry commits on PostgreSQL: PgTelemetryStore.write, the transaction each
 * group commit of PgIngestQueue runs (raw rows, fleet rollups, per-device rollups, real-traffic
 * sketches, devices seen).
 *
 *   npx tsx scripts/bench/pg-write.ts [--devices 1000] [--records 2] [--flushes 30] [--serving]
 *     [--database postgres://fleetml:fleetml@127.0.0.1:5432/fleetml_test]
 *
 * Creates a scratch database, then commits `flushes` batches of `devices` × `records` records
 * (each with a latency summary, temperature and throttling bits; with --serving also one
 * real-traffic sketch per record), one after another, and prints records/s and the flush times,
 * and the CPU time the flushes cost: PostgreSQL's server processes for this database (from
 * /proc, so the server must run on this machine) and this process. On a loaded machine the CPU
 * times vary far less than the wall times. It prints only (no --write): compare two checkouts by
 * running it in each, alternating.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { DEFAULT_MONITORING_OPTIONS } from '../../cloud/fleet/monitoring/options.js';
import { PgTelemetryStore } from '../../cloud/fleet/store/pg-telemetry.js';
import { openPostgres } from '../../cloud/fleet/store/postgres.js';
import type { TelemetryRecord } from '../../shared/protocol/index.js';
import { LatencySketch } from '../../shared/sketch.js';
import { machineLine } from './report.js';

const { values: args } = parseArgs({
  options: {
    devices: { type: 'string', default: '1000' },
    records: { type: 'string', default: '2' },
    flushes: { type: 'string', default: '30' },
    serving: { type: 'boolean', default: false },
    database: { type: 'string', default: 'postgres://fleetml:fleetml@127.0.0.1:5432/fleetml_test' },
  },
});
const devices = Number(args.devices);
const perFlush = Number(args.records);
const flushes = Number(args.flushes);
const PROFILES = ['rpi4', 'rpi5', 'jetson-orin-nano', 'x86-avx2'];

const sketch = new LatencySketch();
for (let i = 1; i <= 50; i++) sketch.add(2 + i / 10);
const wire = sketch.toWire();

function record(d: number, seq: number, atMs: number): TelemetryRecord {
  const p50 = 4 + (d % 10);
  return {
    seq,
    at: new Date(atMs).toISOString(),
    cpuLoad: 20 + (d % 50),
    memUsedBytes: 1e9,
    memTotalBytes: 4e9,
    tempC: 50 + (d % 20),
    modelId: `model-${d % 3}`,
    latency: {
      count: 100,
      p50Ms: p50,
      p90Ms: p50 * 1.5,
      p99Ms: p50 * 2.2,
      maxMs: p50 * 3,
      meanMs: p50 * 1.1,
    },
    throttledBits: d % 7 === 0 ? 0x4 : 0,
    ...(args.serving
      ? {
          serving: [
            {
              model: 'mnist',
              version: String(d % 3),
              modelId: `model-${d % 3}`,
              requests: 50,
              errors: 0,
              totalMs: wire,
              queueMs: wire,
              computeMs: wire,
            },
          ],
        }
      : {}),
  };
}

/** CPU ms (user + system) the server processes of the pool's database have used so far. */
async function serverCpuMs(pool: pg.Pool): Promise<number> {
  const { rows } = await pool.query<{ pid: number }>(
    'SELECT pid FROM pg_stat_activity WHERE datname = current_database()',
  );
  let ticks = 0;
  for (const { pid } of rows) {
    try {
      // /proc/<pid>/stat after the command name: state is field 3, utime 14, stime 15.
      const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1].split(' ');
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch {
      // the server is elsewhere, or the process ended: counted as 0
    }
  }
  return ticks * 10; // USER_HZ is 100 on Linux
}

const name = `fleetml_bench_${randomBytes(3).toString('hex')}`;
const admin = new pg.Client({ connectionString: args.database });
await admin.connect();
await admin.query(`CREATE DATABASE ${name}`);
const url = new URL(args.database);
url.pathname = `/${name}`;
const pool = await openPostgres(url.toString());
try {
  const store = new PgTelemetryStore(pool, DEFAULT_MONITORING_OPTIONS);
  const ms: number[] = [];
  const started = Date.now();
  let serverStart = 0;
  let clientStart = process.cpuUsage();
  for (let f = 0; f < flushes; f++) {
    if (f === 1) {
      // The first flush creates the day's partition and the pool's connections: not counted.
      serverStart = await serverCpuMs(pool);
      clientStart = process.cpuUsage();
    }
    const now = started + f * 1000;
    const batches = Array.from({ length: devices }, (_, d) => ({
      deviceId: `dev-${d}`,
      profile: PROFILES[d % PROFILES.length],
      records: Array.from({ length: perFlush }, (_, k) => record(d, f * perFlush + k, now)),
    }));
    const t = performance.now();
    await store.write(batches, now);
    ms.push(performance.now() - t);
  }
  const client = process.cpuUsage(clientStart);
  const serverMs = (await serverCpuMs(pool)) - serverStart;
  const timed = ms.slice(1); // the first flush creates the day's partition
  const sorted = timed.slice().sort((a, b) => a - b);
  const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
  const total = timed.reduce((a, b) => a + b, 0);
  const records = devices * perFlush * timed.length;
  process.stdout.write(
    `${JSON.stringify({
      machine: machineLine(),
      load: loadavg()[0].toFixed(1),
      devices,
      recordsPerFlush: devices * perFlush,
      flushes: timed.length,
      serving: args.serving,
      recordsPerS: Math.round((records / total) * 1000),
      flushP50Ms: Number(at(50).toFixed(1)),
      flushP95Ms: Number(at(95).toFixed(1)),
      serverCpuMsPerFlush: Math.round(serverMs / timed.length),
      clientCpuMsPerFlush: Math.round((client.user + client.system) / 1000 / timed.length),
      stored: Number((await pool.query('SELECT count(*) n FROM telemetry')).rows[0].n),
    })}\n`,
  );
} finally {
  await pool.end();
  await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin.end();
}
