import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PgAdvisoryLeadership } from '../../../cloud/fleet/leader/pg-advisory.js';
import { DEFAULT_MONITORING_OPTIONS } from '../../../cloud/fleet/monitoring/options.js';
import { PgIngestQueue } from '../../../cloud/fleet/store/pg-ingest.js';
import { PgFleetLatencyQuery } from '../../../cloud/fleet/store/pg-latency.js';
import { PgTelemetryStore } from '../../../cloud/fleet/store/pg-telemetry.js';
import { openPostgres, type PgPool } from '../../../cloud/fleet/store/postgres.js';
import type { TelemetryRecord } from '../../../shared/protocol/index.js';
import { waitFor } from '../../faults/procs.js';
import { freshDatabase, postgresUnavailable } from './pg.js';

const skipReason = await postgresUnavailable();
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
