import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DeviceRepository } from '../../../cloud/fleet/inventory/devices.js';
import { PgAdvisoryLeadership } from '../../../cloud/fleet/leader/pg-advisory.js';
import { HealthQuery } from '../../../cloud/fleet/monitoring/health.js';
import { DEFAULT_MONITORING_OPTIONS } from '../../../cloud/fleet/monitoring/options.js';
import { ServingStore } from '../../../cloud/fleet/monitoring/serving.js';
import { openFleetStore } from '../../../cloud/fleet/store/kysely.js';
import { PgIngestQueue } from '../../../cloud/fleet/store/pg-ingest.js';
import { PgFleetLatencyQuery } from '../../../cloud/fleet/store/pg-latency.js';
import { PgTelemetryStore } from '../../../cloud/fleet/store/pg-telemetry.js';
import { openPostgres, type PgPool } from '../../../cloud/fleet/store/postgres.js';
import type { TelemetryRecord } from '../../../shared/protocol/index.js';
import { LatencySketch } from '../../../shared/sketch.js';
import { waitFor } from '../../faults/procs.js';
import { PI_HARDWARE } from '../../support/hardware.js';
import { freshDatabase, postgresUnavailable } from './pg.js';

const skipReason = await postgresUnavailable();
const hardware = PI_HARDWARE;
const DAY = 86_400_000;

function record(seq: number, atMs: number, modelId: string | null, p50 = 10): TelemetryRecord {
  return {
    seq,
    at: new Date(atMs).toISOString(),
    cpuLoad: 20,
    memUsedBytes: 1e9,
    memTotalBytes: 4e9,
    tempC: 50,
    modelId,
    latency: modelId
      ? { count: 100, p50Ms: p50, p90Ms: p50 * 1.5, p99Ms: p50 * 2, maxMs: p50 * 3, meanMs: p50 * 1.1 }
      : null,
  };
}

describe.skipIf(skipReason !== null)(
  `PostgreSQL telemetry store ${skipReason ? `(skipped: ${skipReason})` : ''}`,
  () => {
    let db: Awaited<ReturnType<typeof freshDatabase>>;
    let pool: PgPool;
    let store: PgTelemetryStore;

    beforeAll(async () => {
      db = await freshDatabase();
      pool = await openPostgres(db.url);
      store = new PgTelemetryStore(pool, DEFAULT_MONITORING_OPTIONS);
    });
    afterAll(async () => {
      await pool?.end();
      await db?.drop();
    });

    it('stores each (device, seq) once: a resent batch adds nothing', async () => {
      const now = Date.now();
      const batch = [record(0, now, 'm1'), record(1, now, 'm1'), record(2, now, 'm1')];
      expect(await store.write([{ deviceId: 'dev-a', profile: 'rpi5', records: batch }], now)).toEqual([3]);
      // The same records again (a lost ack), together with one new one, from another replica's flush.
      const again = [...batch, record(3, now, 'm1')];
      expect(await store.write([{ deviceId: 'dev-a', profile: 'rpi5', records: again }], now + 5000)).toEqual(
        [1],
      );
      expect(await store.count()).toBe(4);
    });

    it('answers the fleet latency query by model and profile from rollups, by device from raw rows', async () => {
      const now = Date.now();
      const records = (seq0: number, p50: number) =>
        Array.from({ length: 5 }, (_, i) => record(seq0 + i, now, 'm2', p50));
      await store.write(
        [
          { deviceId: 'fast-1', profile: 'x86', records: records(0, 5) },
          { deviceId: 'slow-1', profile: 'rpi4', records: records(0, 50) },
        ],
        now,
      );
      const latency = new PgFleetLatencyQuery(pool, DEFAULT_MONITORING_OPTIONS);
      const byProfile = await latency.run('profile', 3_600_000, now);
      const x86 = byProfile.groups.find((g) => g.key === 'x86');
      const rpi4 = byProfile.groups.find((g) => g.key === 'rpi4');
      expect(x86?.devices).toBe(1);
      expect(x86?.records).toBe(5);
      expect(x86?.p50Ms).toBeGreaterThan(4.5);
      expect(x86?.p50Ms).toBeLessThan(5.5);
      expect(rpi4?.p50Ms).toBeGreaterThan(45);
      expect(rpi4?.p50Ms).toBeLessThan(55);
      const byModel = await latency.run('model', 3_600_000, now);
      expect(byModel.groups.find((g) => g.key === 'm2')?.count).toBe(1000);
      const byDevice = await latency.run('device', 3_600_000, now);
      expect(byDevice.groups.find((g) => g.key === 'slow-1')?.p50Ms).toBeGreaterThan(45);
    });

    it('keeps telemetry in day partitions and drops whole days past retention', async () => {
      const now = Date.now();
      const old = now - 3 * DAY; // within the 7-day backfill window: bucketed by its own time
      await store.write([{ deviceId: 'dev-b', profile: null, records: [record(0, old, null)] }], now);
      const days = await store.partitionDays();
      const oldDay = new Date(old - (old % DAY)).toISOString().slice(0, 10);
      expect(days).toContain(oldDay);
      const before = await store.count();
      const result = await store.sweep(now - DAY, now - 30 * DAY, now - 400 * DAY);
      expect(result.partitionsDropped).toContain(oldDay);
      expect(await store.partitionDays()).not.toContain(oldDay);
      expect(await store.count()).toBe(before - 1);
      // A late record for the dropped day is still stored (its partition comes back).
      await store.write([{ deviceId: 'dev-b', profile: null, records: [record(1, old, null)] }], now);
      expect(await store.count()).toBe(before);
    });

    it('keeps per-device rollups and real-traffic sketches in PostgreSQL, merged across flushes', async () => {
      const now = Date.now();
      const served = (seq: number, ms: number[], errors: number): TelemetryRecord => {
        const total = new LatencySketch();
        for (const v of ms) total.add(v);
        return {
          ...record(seq, now, 'm4'),
          tempC: 60 + seq,
          throttledBits: seq === 1 ? 0x4 : 0x10000,
          serving: [
            {
              model: 'mnist',
              version: '4',
              modelId: 'm4',
              requests: ms.length + errors,
              errors,
              totalMs: total.toWire(),
              queueMs: new LatencySketch().toWire(),
              computeMs: total.toWire(),
            },
          ],
        };
      };
      await store.write([{ deviceId: 'dev-s', profile: 'rpi5', records: [served(0, [1, 2, 3], 0)] }], now);
      // Another flush (another replica's, say) for the same buckets, plus a resend of seq 0.
      await store.write(
        [
          {
            deviceId: 'dev-s',
            profile: 'rpi5',
            records: [served(0, [1, 2, 3], 0), served(1, [100, 100], 1)],
          },
        ],
        now,
      );
      const rollups = await pool.query(
        `SELECT resolution, records, temp_n, temp_max, throttled_records, throttled_bits, lat_count
         FROM telemetry_rollup WHERE device_id = 'dev-s' ORDER BY resolution`,
      );
      expect(
        rollups.rows.map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, Number(v)]))),
      ).toEqual(
        [60_000, 3_600_000].map((resolution) => ({
          resolution,
          records: 2,
          temp_n: 2,
          temp_max: 61,
          throttled_records: 1,
          throttled_bits: 0x10004,
          lat_count: 200,
        })),
      );
      const serving = await pool.query(
        `SELECT requests, errors, total FROM serving_rollup WHERE device_id = 'dev-s' AND resolution = 60000`,
      );
      expect(serving.rows).toHaveLength(1);
      expect(Number(serving.rows[0].requests)).toBe(6);
      expect(Number(serving.rows[0].errors)).toBe(1);
      const merged = LatencySketch.fromWire(JSON.parse(serving.rows[0].total));
      expect(merged.count).toBe(5); // 3 + 2 samples: the resend added nothing
      expect(merged.max).toBeGreaterThan(99);
      // The monitoring queries read them there, the devices' profiles from the registry.
      const fleet = await openFleetStore({ postgres: pool });
      const devices = new DeviceRepository(fleet);
      await devices.create({ id: 'dev-s', name: 's', secretHash: 'x', profile: 'rpi5', hardware });
      await devices.setOnline('dev-s', true, new Date(now).toISOString());
      const servingQuery = new ServingStore({
        store: fleet,
        profiles: async () => new Map((await devices.list()).map((d) => [d.id, d.profile])),
      });
      const [rpi5] = await servingQuery.summary(now - 60_000, now + 60_000, 'profile', { profile: 'rpi5' });
      expect(rpi5).toMatchObject({ key: 'rpi5', requests: 6, errors: 1, devices: 1 });
      expect(await servingQuery.summary(now - 60_000, now + 60_000, 'fleet', { profile: 'x86' })).toEqual([]);
      const health = await new HealthQuery(
        { store: fleet, devices: () => devices.list() },
        DEFAULT_MONITORING_OPTIONS,
      ).run(now + 1000);
      expect(health.devices.find((d) => d.id === 'dev-s')).toMatchObject({
        status: 'online',
        records: 2,
        throttled: true,
        throttledBits: 0x10004,
        tempMaxC: 61,
        tempMeanC: 60.5,
      });
      // Retention removes them with the other rollups.
      const swept = await store.sweep(now - 400 * DAY, now + 60_000, now + 3_600_000);
      expect(swept.rollupsDeleted).toBeGreaterThanOrEqual(4);
      expect((await pool.query(`SELECT 1 FROM telemetry_rollup WHERE device_id = 'dev-s'`)).rowCount).toBe(0);
      expect((await pool.query(`SELECT 1 FROM serving_rollup WHERE device_id = 'dev-s'`)).rowCount).toBe(0);
    });

    it('group-commits through the ingest queue and resolves only after the commit', async () => {
      const touched: string[] = [];
      const queue = new PgIngestQueue({
        store,
        profileOf: () => 'x86',
        onCommitted: (ids) => touched.push(...ids),
        options: DEFAULT_MONITORING_OPTIONS,
      });
      const now = Date.now();
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, d) =>
          queue.submit(`q-${d}`, [record(0, now, 'm3'), record(1, now, 'm3')]),
        ),
      );
      expect(results.every((r) => r.added === 2 && r.duplicates === 0)).toBe(true);
      expect(new Set(touched).size).toBe(20);
      expect(queue.stats.commits).toBeLessThan(20); // batches shared transactions
      const resent = await queue.submit('q-0', [record(0, now, 'm3')]);
      expect(resent).toEqual({ added: 0, duplicates: 1 });
      await queue.close();
      await expect(queue.submit('q-0', [record(9, now, 'm3')])).rejects.toMatchObject({
        code: 'INGEST_FAILED',
      });
    });

    it('refuses batches beyond the pending limit with INGEST_OVERLOADED (no ack: the device resends)', async () => {
      const queue = new PgIngestQueue({
        store,
        profileOf: () => null,
        options: { ...DEFAULT_MONITORING_OPTIONS, ingestMaxPendingRecords: 3, ingestMaxDelayMs: 50 },
      });
      const now = Date.now();
      const first = queue.submit('ovl', [record(0, now, null), record(1, now, null)]);
      await expect(queue.submit('ovl', [record(2, now, null), record(3, now, null)])).rejects.toMatchObject({
        code: 'INGEST_OVERLOADED',
      });
      expect((await first).added).toBe(2);
      await queue.close();
    });

    it('elects exactly one leader and hands over when it stops', async () => {
      const a = new PgAdvisoryLeadership(db.url, { pollMs: 200 });
      const b = new PgAdvisoryLeadership(db.url, { pollMs: 200 });
      await a.start();
      await b.start();
      try {
        await waitFor('a leader', () => a.isLeader !== b.isLeader);
        const [leader, follower] = a.isLeader ? [a, b] : [b, a];
        await leader.stop();
        await waitFor('the follower to take over', () => follower.isLeader, 10_000);
      } finally {
        await a.stop();
        await b.stop();
      }
    });
  },
);
