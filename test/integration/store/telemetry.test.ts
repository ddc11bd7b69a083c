import { sql } from 'kysely';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { SqliteTelemetryWriter } from '../../../cloud/fleet/ingest/sqlite-records.js';
import { TelemetryRepository } from '../../../cloud/fleet/ingest/telemetry.js';
import { DEFAULT_MONITORING_OPTIONS } from '../../../cloud/fleet/monitoring/options.js';
import { openDatabase } from '../../../cloud/fleet/store/db.js';
import { type FleetStore, migrateFleetStore, openFleetStore } from '../../../cloud/fleet/store/kysely.js';
import { PgTelemetryStore } from '../../../cloud/fleet/store/pg-telemetry.js';
import { migratePostgres } from '../../../cloud/fleet/store/postgres.js';
import type { BenchReport, TelemetryRecord } from '../../../shared/protocol/index.js';
import { TEST_POSTGRES } from '../scale/pg.js';
import { describeEachBackend, type TestBackend } from '../support/backends.js';

const SHA_A = 'a'.repeat(64);
const SHA_B = 'b'.repeat(64);
const pools: pg.Pool[] = [];
afterAll(async () => {
  for (const pool of pools) await pool.end();
});

function bench(p50Ms: number, sha256 = SHA_A, inputShapes?: Record<string, number[]>): BenchReport {
  return {
    v: 1,
    modelId: `m-${sha256[0]}`,
    sha256,
    ep: 'cpu',
    runs: 50,
    warmupRuns: 5,
    p50Ms,
    p90Ms: p50Ms * 1.2,
    p99Ms: p50Ms * 2,
    maxMs: p50Ms * 3,
    meanMs: p50Ms * 1.1,
    throughput: 1000 / p50Ms,
    loadMs: 12,
    at: new Date().toISOString(),
    ...(inputShapes ? { inputShapes } : {}),
  };
}

function record(seq: number, atMs: number, latencyMs: number | null): TelemetryRecord {
  return {
    seq,
    at: new Date(atMs).toISOString(),
    cpuLoad: 10 * seq,
    memUsedBytes: 1e9 + seq,
    memTotalBytes: 4e9,
    tempC: 40 + seq,
    modelId: latencyMs === null ? null : 'm-a',
    latency:
      latencyMs === null
        ? null
        : {
            count: 60,
            p50Ms: latencyMs,
            p90Ms: latencyMs,
            p99Ms: latencyMs,
            maxMs: latencyMs,
            meanMs: latencyMs,
          },
  };
}

/**
 * Raw records the way each backend's ingest writes them: SQLite's writer, or PostgreSQL's
 * day-partitioned store (its tables come from pg-migrations.ts, applied to the test's schema).
 */
async function recordWriter(
  backend: TestBackend,
  store: FleetStore,
): Promise<(deviceId: string, records: TelemetryRecord[]) => Promise<void>> {
  if (backend.name === 'sqlite') {
    const writer = new SqliteTelemetryWriter(backend.sqlite());
    return async (deviceId, records) => void writer.ingest(deviceId, records);
  }
  const { rows } = await sql<{ db: string; schema: string }>`
    SELECT current_database() db, current_schema() schema`.execute(store.db);
  const url = new URL(TEST_POSTGRES);
  url.pathname = `/${rows[0].db}`;
  const pool = new pg.Pool({
    connectionString: url.toString(),
    max: 2,
    options: `-c search_path=${rows[0].schema}`,
  });
  // The backend drops its database (terminating these sessions) before the file's afterAll ends the pool.
  pool.on('error', () => {});
  pools.push(pool);
  await migratePostgres(pool);
  const pgStore = new PgTelemetryStore(pool, DEFAULT_MONITORING_OPTIONS);
  return async (deviceId, records) => void (await pgStore.write([{ deviceId, profile: null, records }]));
}

describeEachBackend('telemetry repository', (backend) => {
  it('keeps benchmark reports with their input shapes; the latest per device and per artifact', async () => {
    const telemetry = new TelemetryRepository(await backend.open());
    expect(await telemetry.latestBench('d1')).toBeNull();
    await telemetry.addBench('d1', bench(5));
    await telemetry.addBench('d1', bench(4, SHA_A, { x: [1, 3, 48, 192] }));
    await telemetry.addBench('d2', bench(9));
    await telemetry.addBench('d2', bench(7, SHA_B));
    expect(await telemetry.latestBench('d1')).toMatchObject({
      modelId: 'm-a',
      sha256: SHA_A,
      ep: 'cpu',
      runs: 50,
      p50Ms: 4,
      p99Ms: 8,
      inputShapes: { x: [1, 3, 48, 192] },
    });
    const latest = await telemetry.latestBenchByDevice();
    expect([...latest.keys()].sort()).toEqual(['d1', 'd2']);
    expect(latest.get('d1')?.p50Ms).toBe(4);
    expect(latest.get('d2')).toMatchObject({ sha256: SHA_B, p50Ms: 7, inputShapes: null });
    const perArtifact = await telemetry.artifactBenches([SHA_A]);
    expect(perArtifact.sort((a, b) => (a.deviceId < b.deviceId ? -1 : 1))).toEqual([
      { sha256: SHA_A, deviceId: 'd1', p50Ms: 4 },
      { sha256: SHA_A, deviceId: 'd2', p50Ms: 9 },
    ]);
    expect(await telemetry.artifactBenches([])).toEqual([]);
  });

  it('stores a benchmark report sent again unchanged once (devices resend it when targets are republished)', async () => {
    const store = await backend.open();
    const telemetry = new TelemetryRepository(store);
    const report = bench(6);
    await telemetry.addBench('d1', report);
    await telemetry.addBench('d1', { ...report });
    await telemetry.addBench('d1', { ...report, p50Ms: 7 }); // another measurement at the same time
    const rows = await store.db
      .selectFrom('bench_reports')
      .select('p50_ms')
      .where('device_id', '=', 'd1')
      .execute();
    expect(rows.map((r) => r.p50_ms).sort()).toEqual([6, 7]);
  });

  it('reads the latest benchmark of many devices at once, past one query’s id list', async () => {
    const telemetry = new TelemetryRepository(await backend.open());
    const ids = Array.from({ length: 603 }, (_, i) => `d${i}`);
    for (const [i, id] of ids.entries()) {
      if (i % 3 === 0) continue; // every third device never benchmarked
      if (i % 5 === 0) await telemetry.addBench(id, bench(20)); // an older report
      await telemetry.addBench(id, bench(1 + (i % 7), i % 2 ? SHA_B : SHA_A));
    }
    const latest = await telemetry.latestBenches(ids);
    expect(latest.size).toBe(402);
    for (const [i, id] of ids.entries()) {
      if (i % 3 === 0) expect(latest.has(id)).toBe(false);
      else expect(latest.get(id)).toMatchObject({ p50Ms: 1 + (i % 7), sha256: i % 2 ? SHA_B : SHA_A });
    }
    expect((await telemetry.latestBenches(['d1', 'nobody'])).size).toBe(1);
  });

  it('lists a device’s events newest first, up to a limit', async () => {
    const telemetry = new TelemetryRepository(await backend.open());
    for (let i = 1; i <= 4; i++) {
      await telemetry.addEvent('d1', 'info', `E${i}`, `event ${i}`, `2026-01-01T00:00:0${i}.000Z`);
    }
    await telemetry.addEvent('d2', 'warn', 'OTHER', 'not d1', '2026-01-01T00:00:09.000Z');
    await telemetry.addEvent(null, 'info', 'CLOUD', 'no device', '2026-01-01T00:00:09.000Z');
    expect((await telemetry.events('d1')).map((e) => e.code)).toEqual(['E4', 'E3', 'E2', 'E1']);
    expect(await telemetry.events('d1', 2)).toEqual([
      { level: 'info', code: 'E4', message: 'event 4', at: '2026-01-01T00:00:04.000Z' },
      { level: 'info', code: 'E3', message: 'event 3', at: '2026-01-01T00:00:03.000Z' },
    ]);
    expect(await telemetry.events('nobody')).toEqual([]);
  });

  it('reads snapshots, the latency series and counts from raw records', async () => {
    const store = await backend.open();
    const write = await recordWriter(backend, store);
    const names = new Map([['m-a', 'mnist']]);
    const telemetry = new TelemetryRepository(store, { modelName: async (id) => names.get(id) });
    const now = Date.now();
    await write('d1', [record(1, now - 3000, null), record(2, now - 2000, 5), record(3, now - 1000, 6)]);
    await write('d2', [record(1, now - 1000, null)]);
    // A resend of d1's last record is stored once.
    await write('d1', [record(3, now - 1000, 6)]);

    expect(await telemetry.count()).toBe(4);
    expect(await telemetry.count('d1')).toBe(3);
    expect(await telemetry.latestSnapshot('d1')).toEqual({
      at: new Date(now - 1000).toISOString(),
      cpuLoad: 30,
      memUsedBytes: 1e9 + 3,
      memTotalBytes: 4e9,
      tempC: 43,
    });
    expect(await telemetry.latestSnapshot('nobody')).toBeNull();
    const snapshots = await telemetry.latestSnapshotByDevice(['d1', 'd2', 'nobody']);
    expect([...snapshots.keys()].sort()).toEqual(['d1', 'd2']);
    expect(snapshots.get('d1')?.tempC).toBe(43);
    expect(snapshots.get('d2')).toMatchObject({ at: new Date(now - 1000).toISOString(), cpuLoad: 10 });
    expect(await telemetry.latestSnapshotByDevice([])).toEqual(new Map());

    const series = await telemetry.latencySeries('d1', new Date(now - 3_600_000).toISOString());
    expect(series).toEqual([
      {
        at: new Date(now - 2000).toISOString(),
        count: 60,
        p50Ms: 5,
        p90Ms: 5,
        p99Ms: 5,
        maxMs: 5,
        modelId: 'm-a',
        modelName: 'mnist',
      },
      {
        at: new Date(now - 1000).toISOString(),
        count: 60,
        p50Ms: 6,
        p90Ms: 6,
        p99Ms: 6,
        maxMs: 6,
        modelId: 'm-a',
        modelName: 'mnist',
      },
    ]);
    expect(await telemetry.latencySeries('d1', new Date(now + 3_600_000).toISOString())).toEqual([]);
  });
});

// Existing SQLite files already hold these tables (migrations.ts 1 and 10): 0200 keeps their rows.
describe('telemetry tables of an existing SQLite file', () => {
  it('keeps reports and events written before fleet migration 0200', async () => {
    const db = openDatabase({ path: ':memory:' });
    try {
      const before = await openFleetStore({ sqlite: db }, { migrateTo: '0002_release_stamps' });
      db.prepare(
        `INSERT INTO bench_reports (device_id, model_id, sha256, ep, runs, p50_ms, p90_ms, p99_ms, max_ms, mean_ms,
           throughput, load_ms, at, received_at, input_shapes) VALUES ('old', 'm', ?, 'cpu', 1, 2, 2, 2, 2, 2, 1, 1, 'x', 'x', NULL)`,
      ).run(SHA_A);
      db.prepare(
        `INSERT INTO events (device_id, level, code, message, at) VALUES ('old', 'info', 'OLD', 'kept', 'x')`,
      ).run();
      await migrateFleetStore(before);
      const telemetry = new TelemetryRepository(before);
      expect(await telemetry.latestBench('old')).toMatchObject({ p50Ms: 2, inputShapes: null });
      expect((await telemetry.events('old')).map((e) => e.code)).toEqual(['OLD']);
      const indexes = db
        .prepare(`SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events'`)
        .all();
      expect(indexes).toContainEqual({ name: 'events_by_device' });
    } finally {
      db.close();
    }
  });
});
