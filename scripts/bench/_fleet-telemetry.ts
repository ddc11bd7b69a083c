/**
 * Synthetic fleet telemetry written straight into SQLite for scripts/bench/latency-query.ts:
 * raw rows plus the minute and hour rollups the ingest path would have written for them.
 */

import { hashSecret } from '../../cloud/fleet/identity/secrets.js';
import { DeviceRepository } from '../../cloud/fleet/inventory/devices.js';
import { addSummaryRange, emptyHistogram } from '../../cloud/fleet/monitoring/histogram.js';
import { RESOLUTION } from '../../cloud/fleet/monitoring/options.js';
import type { RollupAggregate, RollupStore } from '../../cloud/fleet/monitoring/rollups.js';
import type { Db } from '../../cloud/fleet/store/db.js';
import { inTransaction, openFleetStore } from '../../cloud/fleet/store/kysely.js';

const DAY = 86_400_000;
const PROFILES = ['rpi4', 'rpi5', 'jetson-orin-nano', 'x86-avx2'];
export const MODELS = ['mnist-fp32', 'mnist-int8', 'mnist-distilled'];
const hardware = {
  hostname: 'bench',
  arch: 'arm64',
  platform: 'linux',
  cpuModel: 'Cortex-A72',
  cpuCores: 4,
  memoryBytes: 4e9,
  gpu: null,
  executionProviders: ['cpu' as const],
  onnxruntimeVersion: '1.30.0',
  nodeVersion: process.version,
};

/** Inverse normal CDF by bisection on a numeric CDF: only called 64 times. */
function normalQuantile(p: number): number {
  const cdf = (z: number) => {
    // Simpson integration of the density from 0 to z: plenty for picking jitter levels.
    const n = 200;
    const f = (x: number) => Math.exp((-x * x) / 2) / Math.sqrt(2 * Math.PI);
    let sum = f(0) + f(z);
    for (let i = 1; i < n; i++) sum += (i % 2 ? 4 : 2) * f((z * i) / n);
    return 0.5 + (sum * z) / (3 * n);
  };
  let lo = -8;
  let hi = 8;
  for (let i = 0; i < 60; i++) {
    const mid = (lo + hi) / 2;
    if (cdf(mid) < p) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

export const summaryOf = (p50: number) => ({
  count: 80,
  p50Ms: p50,
  p90Ms: p50 * 1.25,
  p99Ms: p50 * 1.7,
  maxMs: p50 * 2.2,
  meanMs: p50 * 1.05,
});

/** `devices` devices (ids dev-0000…) with `perDevice` records each, evenly over the day before `now`. */
export async function generateFleetTelemetry(
  db: Db,
  rollups: RollupStore,
  o: { devices: number; perDevice: number; now: number },
): Promise<void> {
  const { devices, perDevice, now } = o;
  const start = now - DAY;
  const step = DAY / perDevice;
  await inTransaction(await openFleetStore({ sqlite: db }), async (tx) => {
    const deviceRepo = new DeviceRepository(tx);
    for (let d = 0; d < devices; d++) {
      const id = `dev-${String(d).padStart(4, '0')}`;
      await deviceRepo.create({
        id,
        name: id,
        secretHash: hashSecret(id),
        profile: PROFILES[d % 4],
        hardware,
      });
      await deviceRepo.setOnline(id, true, new Date(now).toISOString());
    }
  });
  // Generation has to be fast for 10 M records on 2 shared cores: raw rows are produced by one
  // SQL statement per device (no per-row JS binding), and the rollups by the same histogram code
  // as ingest, from the same values: a record's p50 jitter takes one of LEVELS log-normal levels
  // picked by a hash of (device, seq), so each level's histogram is computed once per device.
  const LEVELS = 64;
  const levelOf = (d: number, k: number) => (k * 7919 + d * 104_729 + ((k * k) % 1013)) % LEVELS;
  const cpuOf = (d: number, k: number) => 20 + ((k * 31 + d) % 30);
  const tempOf = (d: number, k: number) => 45 + ((k * 17 + d) % 15);
  db.exec('CREATE TEMP TABLE levels (i INTEGER PRIMARY KEY, f REAL NOT NULL)');
  const factors = Array.from({ length: LEVELS }, (_, i) =>
    Math.exp(0.1 * normalQuantile((i + 0.5) / LEVELS)),
  );
  const putLevel = db.prepare('INSERT INTO temp.levels (i, f) VALUES (?, ?)');
  for (const [i, f] of factors.entries()) putLevel.run(i, f);
  const insertRaw = db.prepare(`
    WITH RECURSIVE k(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM k WHERE n < @count - 1),
    r AS (
      SELECT n, strftime('%Y-%m-%dT%H:%M:%fZ', (@start + n * @step + @offset) / 1000.0, 'unixepoch') at,
        @base * (SELECT f FROM temp.levels WHERE i = (n * 7919 + @d * 104729 + ((n * n) % 1013)) % ${LEVELS}) p50
      FROM k
    )
    INSERT INTO telemetry (device_id, seq, at, received_at, cpu_load, mem_used, mem_total, temp_c, model_id,
      lat_count, p50_ms, p90_ms, p99_ms, max_ms, mean_ms)
    SELECT @id, n + 1, at, at, 20 + ((n * 31 + @d) % 30), 1500000000, 4000000000, 45 + ((n * 17 + @d) % 15), @model,
      80, p50, p50 * 1.25, p50 * 1.7, p50 * 2.2, p50 * 1.05
    FROM r`);
  for (let d = 0; d < devices; d++) {
    const id = `dev-${String(d).padStart(4, '0')}`;
    const base = 2 + (d % 37) * 0.7;
    const modelId = MODELS[d % 3];
    const offset = (d % 100) * 10;
    const pool = factors.map((f) => {
      const h = emptyHistogram();
      const [first, last] = addSummaryRange(h, summaryOf(base * f));
      return { first, last, h };
    });
    const aggregates = new Map<string, RollupAggregate>();
    for (let k = 0; k < perDevice; k++) {
      const at = Math.floor(start + k * step + offset);
      const level = levelOf(d, k);
      const l = summaryOf(base * factors[level]);
      const { first, last, h } = pool[level];
      for (const resolution of [RESOLUTION.minute, RESOLUTION.hour]) {
        const bucket = at - (at % resolution);
        const key = `${resolution}|${bucket}`;
        let a = aggregates.get(key);
        if (!a) {
          a = {
            resolution,
            bucket_start: bucket,
            device_id: id,
            model_id: modelId,
            records: 0,
            lat_count: 0,
            lat_sum_ms: 0,
            lat_max_ms: null,
            hist: emptyHistogram(),
            cpu_sum: 0,
            temp_n: 0,
            temp_sum: 0,
            temp_max: null,
            throttled_records: 0,
            throttled_bits: 0,
            last_at: at,
          };
          aggregates.set(key, a);
        }
        a.records++;
        a.lat_count += l.count;
        a.lat_sum_ms += l.meanMs * l.count;
        a.lat_max_ms = Math.max(a.lat_max_ms ?? 0, l.maxMs);
        for (let i = first; i <= last; i++) a.hist![i] += h[i];
        a.cpu_sum += cpuOf(d, k);
        a.temp_n++;
        a.temp_sum += tempOf(d, k);
        a.temp_max = Math.max(a.temp_max ?? -Infinity, tempOf(d, k));
        a.last_at = at;
      }
    }
    db.transaction(() => {
      insertRaw.run({ id, d, count: perDevice, start, step, offset, base, model: modelId });
      rollups.write({ pending: aggregates });
    })();
    if (d % 100 === 99) process.stderr.write(`generated ${(d + 1) * perDevice} records\n`);
  }
}
