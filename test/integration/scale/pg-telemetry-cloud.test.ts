import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../../cloud/fleet/store/db.js';
import { startSimulation } from '../../../cloud/simulator/fleet.js';
import { ROOT, waitFor } from '../../faults/procs.js';
import { startTestCloud, type TestCloud } from '../support/test-cloud.js';
import { freshDatabase, postgresUnavailable } from './pg.js';

const skipReason = await postgresUnavailable();
const SAMPLE = join(ROOT, 'cloud/samples/mnist-mlp.onnx');
/** What devices send: it must land in PostgreSQL, and none of it in the cloud's SQLite file. */
const TELEMETRY_TABLES = ['bench_reports', 'events', 'telemetry', 'telemetry_rollup'] as const;

// The cloud on --database postgres://… with simulated devices speaking the real protocol:
// benchmark reports, events and telemetry are stored in PostgreSQL, read back from there by the
// API, and the cloud's local SQLite file holds none of them.
describe.skipIf(skipReason !== null)(
  `telemetry on PostgreSQL ${skipReason ? `(skipped: ${skipReason})` : ''}`,
  () => {
    let db: Awaited<ReturnType<typeof freshDatabase>>;
    let t: TestCloud;
    let client: pg.Client;

    beforeAll(async () => {
      db = await freshDatabase();
      t = await startTestCloud({ database: db.url }, 'fleetml-pg-telemetry-');
      client = new pg.Client({ connectionString: db.url });
      await client.connect();
    }, 120_000);
    afterAll(async () => {
      await client?.end();
      await t?.stop();
      await db?.drop();
    });

    it('builds none of the SQLite telemetry parts (ingest queue, rollups, serving writer)', () => {
      // They prepared statements on the SQLite file and held a flush timer for nothing.
      expect(t.cloud.services.monitor.sqlite).toBeNull();
      expect(() => t.cloud.services.monitor.ingest).toThrow(/PostgreSQL/);
    });

    it('stores bench reports, events and telemetry from devices in PostgreSQL only', async () => {
      const { token } = await t.cloud.services.tokens.createEnrollToken({ uses: 3 });
      const sim = startSimulation({
        cloud: t.cloud.mqttUrl,
        enrollToken: token,
        devices: 3,
        durationS: 120,
        telemetryIntervalS: 1,
        rampS: 1,
        eventProbability: 1,
        namePrefix: 'pgtel',
      });
      let ids: string[] = [];
      let modelId = '';
      try {
        await waitFor('3 simulated devices connected', () => sim.counters.connected === 3, 60_000);
        ids = sim.devices.map((d) => d.identity.deviceId);
        const model = await t.cloud.services.models.add(await readFile(SAMPLE), { name: 'pg-mnist' });
        modelId = model.id;
        expect((await t.api('POST', '/api/deployments', { model: model.id, devices: ids })).status).toBe(201);
        for (const id of ids) {
          // The device list's p50 is the device's benchmark report, read back from PostgreSQL.
          await waitFor(
            `${id} benchmarked`,
            async () => {
              const d = (await t.api('GET', `/api/devices/${id}`)).body;
              return d.activeModel?.id === model.id && d.p50Ms > 0 ? d : undefined;
            },
            60_000,
          );
          await waitFor(`${id} events`, async () => {
            const { events } = (await t.api('GET', `/api/devices/${id}/events`)).body;
            const codes = (events as Array<{ code: string }>).map((e) => e.code);
            return codes.includes('SIM_HEARTBEAT') && codes.includes('DEVICE_ONLINE');
          });
        }
        // Every device (the regression check below compares all three): the last one to
        // activate the model may not have reported on it yet.
        for (const id of ids) {
          await waitFor(`${id}: telemetry with the model’s latency`, async () => {
            const series = (await t.api('GET', `/api/devices/${id}/latency?window=1h`)).body.series;
            return series.some(
              (p: { modelId: string; modelName: string }) =>
                p.modelId === model.id && p.modelName === 'pg-mnist',
            );
          });
        }
        // A device-vs-profile comparison counts once each side has 100 inferences on the model
        // (regressionMinSamples): keep the devices reporting until the slowest one is flagged.
        await waitFor(
          'a device-vs-profile regression',
          async () => {
            const { regressions } = (await t.api('GET', '/api/fleet/regressions?window=1h&threshold=0.01'))
              .body;
            return (regressions as Array<{ kind: string }>).some((r) => r.kind === 'device-vs-profile');
          },
          90_000,
        );
        // The fleet page's list: each device's latest benchmark and snapshot, from PostgreSQL.
        const list = (await t.api('GET', '/api/devices')).body.devices as Array<{
          id: string;
          p50Ms: number | null;
          cpuLoad: number | null;
        }>;
        for (const id of ids) {
          expect(list.find((d) => d.id === id)).toMatchObject({
            p50Ms: expect.any(Number),
            cpuLoad: expect.any(Number),
          });
        }
      } finally {
        sim.stop();
      }
      const result = await sim.done;
      expect(result.recordsAcked).toBeGreaterThan(0);

      const count = async (table: string) =>
        Number(
          (await client.query(`SELECT count(*) n FROM ${table} WHERE device_id = ANY($1)`, [ids])).rows[0].n,
        );
      expect(await count('bench_reports')).toBeGreaterThanOrEqual(3);
      expect(await count('events')).toBeGreaterThanOrEqual(6);
      const stored = await count('telemetry');
      expect(stored).toBeGreaterThanOrEqual(result.recordsAcked);
      expect(stored).toBeLessThanOrEqual(result.recordsSent);
      // Per-device minute and hour rollups count every stored record once.
      const rolled = await client.query(
        'SELECT resolution, sum(records) n FROM telemetry_rollup WHERE device_id = ANY($1) GROUP BY resolution',
        [ids],
      );
      expect(rolled.rows.map((r) => Number(r.n))).toEqual([stored, stored]);

      // The API answers from there: health counts the records, per device from the PG rollups.
      const health = (await t.api('GET', '/api/fleet/health')).body;
      expect(health.telemetryRecords).toBe(stored);
      const healthOf = new Map(health.devices.map((d: { id: string; records: number }) => [d.id, d]));
      for (const id of ids) expect((healthOf.get(id) as { records: number }).records).toBeGreaterThan(0);

      // Regressions read PostgreSQL: the device whose reports on the model are slowest (by their
      // mean p99) is slower than its two peers (same hardware, so same profile), by more than 1 %,
      // over exactly the inferences it reported.
      const { rows: slowest } = await client.query(
        `SELECT device_id, sum(lat_count) n FROM telemetry WHERE device_id = ANY($1) AND model_id = $2
         GROUP BY device_id ORDER BY avg(p99_ms) DESC`,
        [ids, modelId],
      );
      expect(slowest).toHaveLength(3);
      const regressions = (await t.api('GET', '/api/fleet/regressions?window=1h&threshold=0.01')).body
        .regressions as Array<{ kind: string; deviceId: string; modelId: string; currentSamples: number }>;
      const vsPeers = regressions.filter((r) => r.kind === 'device-vs-profile');
      expect(vsPeers[0]).toMatchObject({
        deviceId: slowest[0].device_id,
        modelId,
        currentSamples: Number(slowest[0].n),
      });
      const strict = (await t.api('GET', '/api/fleet/regressions?window=1h&threshold=50')).body;
      expect(strict.regressions).toEqual([]);

      const local = openDatabase({ path: join(t.dir, 'cloud', 'fleetml.db') });
      try {
        for (const table of TELEMETRY_TABLES) {
          const row = local.prepare(`SELECT count(*) n FROM ${table}`).get() as { n: number };
          expect({ table, n: row.n }).toEqual({ table, n: 0 });
        }
      } finally {
        local.close();
      }
    }, 240_000);
  },
);
