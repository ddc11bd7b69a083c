import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegressionDetector } from '../../../cloud/fleet/monitoring/regressions.js';
import { DeviceSeriesQuery } from '../../../cloud/fleet/monitoring/series.js';
import { openFleetStore } from '../../../cloud/fleet/store/kysely.js';
import { PgDeviceLatencyRows } from '../../../cloud/fleet/store/pg-device-latency.js';
import { PgTelemetryStore } from '../../../cloud/fleet/store/pg-telemetry.js';
import { openPostgres, type PgPool } from '../../../cloud/fleet/store/postgres.js';
import type { TelemetryRecord } from '../../../shared/protocol/index.js';
import { createRng } from '../../../shared/random.js';
import { type MonitorFixture, monitorFixture } from '../../unit/cloud/fleet/monitoring/fixture.js';
import { lognormal, record, summarize } from '../../unit/cloud/fleet/monitoring/synthetic.js';
import { freshDatabase, postgresUnavailable } from './pg.js';

const skipReason = await postgresUnavailable();
const MIN = 60_000;

/** id, profile, baseline (model, median ms), current (model, median ms): the unit tests' scenario. */
const DEVICES = [
  ['a1', 'rpi4', 'm1', 10, 'm1', 10],
  ['a2', 'rpi4', 'm1', 10, 'm1', 10.3],
  ['a3', 'rpi4', 'm1', 10, 'm1', 20],
  ['a4', 'rpi4', 'm1', 10, 'm1', 9.8],
  ['b1', 'rpi5', 'm1', 5, 'm2', 9],
  ['b2', 'rpi5', 'm1', 5, 'm2', 9.2],
] as const;

/** Records every `stepMin` minutes over [fromAgoMin, toAgoMin) before `now`. */
function records(
  now: number,
  o: { fromAgoMin: number; toAgoMin: number; stepMin: number; medianMs: number; modelId: string },
  firstSeq: number,
  rng: () => number,
): TelemetryRecord[] {
  const out: TelemetryRecord[] = [];
  let seq = firstSeq;
  for (let ago = o.fromAgoMin; ago > o.toAgoMin; ago -= o.stepMin) {
    const samples = lognormal(rng, 200, o.medianMs, 0.15);
    out.push(record(seq++, now - ago * MIN, summarize(samples), { modelId: o.modelId }));
  }
  return out;
}

// The same records through the SQLite ingest (per-device rollups with histograms) and the
// PostgreSQL store (per-device percentiles from raw records): regressions and device series
// must agree, which is what a replica on --database now answers from.
describe.skipIf(skipReason !== null)(
  `per-device latency on PostgreSQL matches SQLite ${skipReason ? `(skipped: ${skipReason})` : ''}`,
  () => {
    let db: Awaited<ReturnType<typeof freshDatabase>>;
    let pool: PgPool;
    let sqlite: MonitorFixture;
    let pgDetector: RegressionDetector;
    let pgSeries: DeviceSeriesQuery;
    const now = Date.now();

    beforeAll(async () => {
      db = await freshDatabase();
      pool = await openPostgres(db.url);
      sqlite = await monitorFixture();
      const o = sqlite.monitor.options;
      const store = new PgTelemetryStore(pool, o);
      const rows = new PgDeviceLatencyRows(pool, o);
      const profiles = async () => new Map(DEVICES.map(([id, profile]) => [id, profile as string]));
      pgDetector = new RegressionDetector({ rows, profiles }, o);
      pgSeries = new DeviceSeriesQuery({ store: await openFleetStore({ postgres: pool }), latency: rows });
      const rng = createRng(2);
      for (const [id, profile, m0, ms0, m1, ms1] of DEVICES) {
        await sqlite.addDevice(id, profile);
        const before = records(
          now,
          { fromAgoMin: 20 * 60, toAgoMin: 3 * 60, stepMin: 30, medianMs: ms0, modelId: m0 },
          1,
          rng,
        );
        const current = records(
          now,
          { fromAgoMin: 55, toAgoMin: 0, stepMin: 5, medianMs: ms1, modelId: m1 },
          before.length + 1,
          rng,
        );
        const all = [...before, ...current];
        await sqlite.monitor.ingest.submit(id, all);
        await store.write([{ deviceId: id, profile, records: all }], now);
      }
    }, 60_000);
    afterAll(async () => {
      await sqlite?.monitor.stop();
      sqlite?.db.close();
      await pool?.end();
      await db?.drop();
    });

    it('finds the same regressions, with the same ratios within 1 %', async () => {
      const fromSqlite = await sqlite.monitor.regressions.detect(now);
      const fromPostgres = await pgDetector.detect(now);
      const key = (r: (typeof fromSqlite)[number]) => `${r.kind}/${r.deviceId}/${r.profile}/${r.modelId}`;
      // The scenario's regressions (test/unit/cloud/fleet/monitoring/queries.test.ts), found on both.
      expect(fromPostgres.map(key).sort()).toEqual(fromSqlite.map(key).sort());
      expect(fromPostgres.map(key)).toEqual(expect.arrayContaining(['device-vs-profile/a3/rpi4/m1']));
      const sqliteRatio = new Map(fromSqlite.map((r) => [key(r), r]));
      for (const r of fromPostgres) {
        const s = sqliteRatio.get(key(r))!;
        expect(r.currentSamples).toBe(s.currentSamples);
        expect(r.baselineSamples).toBe(s.baselineSamples);
        expect(Math.abs(r.ratio / s.ratio - 1)).toBeLessThan(0.01);
      }
    });

    it('gives a device the same series: counts exact, percentiles within 1 %', async () => {
      const fromSqlite = await sqlite.monitor.series.run('a3', 86_400_000, now);
      const fromPostgres = await pgSeries.run('a3', 86_400_000, now);
      expect(fromPostgres.resolution).toBe('minute');
      expect(fromPostgres.points.map((p) => [p.at, p.count])).toEqual(
        fromSqlite.points.map((p) => [p.at, p.count]),
      );
      expect(fromPostgres.points.filter((p) => p.count > 0).length).toBeGreaterThan(40);
      fromPostgres.points.forEach((p, i) => {
        const s = fromSqlite.points[i];
        for (const q of ['p50Ms', 'p90Ms', 'p99Ms'] as const) {
          expect(Math.abs(p[q]! / s[q]! - 1), `${p.at} ${q}`).toBeLessThan(0.01);
        }
        expect(p.tempMaxC).toBeCloseTo(s.tempMaxC!, 3);
      });
    });
  },
);
