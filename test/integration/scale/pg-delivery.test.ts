import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveConfig } from '../../../agent/config.js';
import { type AgentHandle, startAgent } from '../../../agent/main.js';
import { BUILTIN_PROFILES } from '../../../cloud/compression/profiles/builtin.js';
import { openDatabase } from '../../../cloud/fleet/store/db.js';
import { type CloudHandle, startCloud } from '../../../cloud/main.js';
import { createLogger } from '../../../shared/logger.js';
import { waitFor } from '../e2e/fleet-harness.js';
import { freshDatabase, postgresUnavailable } from './pg.js';

const SAMPLE = new URL('../../../cloud/samples/mnist-mlp.onnx', import.meta.url);
const quiet = () => createLogger({ name: 'test', level: 'silent' });
const skip = await postgresUnavailable();

/** The delivery-side tables that must live in PostgreSQL with --database. */
const DELIVERY_TABLES = [
  'targets',
  'manifests',
  'goldens',
  'audit',
  'device_fidelity',
  'cloud_state',
  'profiles',
];

// A real cloud started with `database: postgres://…` (what `fleetml cloud start --database` passes)
// and a real agent: after a deployment, what the cloud issued is in PostgreSQL, where another
// replica would read it, and none of it in the cloud's own SQLite file.
describe.skipIf(skip !== null)(
  `a cloud on PostgreSQL keeps delivery state there${skip ? ` (skipped: ${skip})` : ''}`,
  () => {
    let dir: string;
    let database: Awaited<ReturnType<typeof freshDatabase>>;
    let cloud: CloudHandle | undefined;
    let agent: AgentHandle | undefined;
    let sql: pg.Client;

    const api = async (method: string, path: string, body?: unknown, type = 'application/json') => {
      const response = await fetch(`${cloud!.httpUrl}${path}`, {
        method,
        headers: { authorization: `Bearer ${cloud!.adminToken}`, ...(body ? { 'content-type': type } : {}) },
        body:
          body === undefined
            ? undefined
            : type === 'application/json'
              ? JSON.stringify(body)
              : (body as Buffer),
      });
      return { status: response.status, body: (await response.json()) as any };
    };

    /** The agent's stored reports: records, inferences, lowest p50 and highest max (ms). */
    const reported = async (deviceId: string) => {
      const [r] = (
        await sql.query(
          `SELECT count(*) n, coalesce(sum(lat_count), 0) inferences, min(p50_ms) low, max(max_ms) high
           FROM telemetry WHERE device_id = $1`,
          [deviceId],
        )
      ).rows;
      return {
        records: Number(r.n),
        inferences: Number(r.inferences),
        low: Number(r.low),
        high: Number(r.high),
      };
    };

    /**
     * The device series, the Prometheus figures and regressions answer from PostgreSQL, with the
     * values the (stopped) agent reported there.
     */
    const expectMonitoringReadsFromPostgres = async (deviceId: string, modelId: string) => {
      let last = await reported(deviceId);
      await waitFor('the agent’s last records committed', async () => {
        await new Promise((resolve) => setTimeout(resolve, 1000));
        const now = await reported(deviceId);
        const settled = now.records === last.records;
        last = now;
        return settled;
      });
      const { records, inferences, low, high } = last;
      const near = (ms: number | null | undefined) => {
        expect(ms).toBeGreaterThanOrEqual(low / 1.2);
        expect(ms).toBeLessThanOrEqual(high * 1.2);
      };

      const series = (await api('GET', `/api/fleet/devices/${deviceId}/series?window=1h`)).body;
      expect(series.resolution).toBe('minute');
      const points = series.points as Array<{ count: number; p50Ms: number | null; p99Ms: number | null }>;
      expect(points.reduce((sum, p) => sum + p.count, 0)).toBe(inferences);
      const measured = points.filter((p) => p.count > 0);
      expect(measured.length).toBeGreaterThan(0);
      for (const p of measured) near(p.p50Ms);

      const response = await fetch(`${cloud!.httpUrl}/metrics`, {
        headers: { authorization: `Bearer ${cloud!.adminToken}` },
      });
      const metrics = await response.text();
      const gauge = (name: string, labels: string) => {
        const found = new RegExp(`^${name}\\{${labels}\\} (\\S+)$`, 'm').exec(metrics);
        return found ? Number(found[1]) : undefined;
      };
      expect(gauge('fleetml_telemetry_records_total', 'result="stored"')).toBe(records);
      near(gauge('fleetml_device_latency_ms', `device="${deviceId}",profile="[^"]*",quantile="0.5"`));
      near(gauge('fleetml_model_latency_ms', `model="${modelId}",quantile="0.5"`));
      near(gauge('fleetml_fleet_latency_ms', 'quantile="0.5"'));

      // One device has no peers and no baseline before its model: nothing to flag, from PostgreSQL.
      const regressions = (await api('GET', '/api/fleet/regressions?window=1h&threshold=0.5')).body;
      expect(regressions).toMatchObject({ regressionWindowMs: 3_600_000, regressionThreshold: 0.5 });
      expect(regressions.regressions).toEqual([]);
    };

    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), 'fleetml-pg-delivery-'));
      database = await freshDatabase();
      sql = new pg.Client({ connectionString: database.url });
      await sql.connect();
      cloud = await startCloud({
        dataDir: join(dir, 'cloud'),
        httpPort: 0,
        mqttPort: 0,
        database: database.url,
        logger: quiet(),
      });
      const enroll = await api('POST', '/api/enroll-tokens', { uses: 1 });
      agent = await startAgent({
        config: resolveConfig({
          cloudUrl: cloud.mqttUrl,
          enrollToken: enroll.body.token,
          dataDir: join(dir, 'agent'),
          telemetryIntervalS: 1,
          benchRuns: 10,
          benchWarmupRuns: 1,
          servePort: 0,
        }),
        logger: quiet(),
      });
    }, 120_000);

    afterAll(async () => {
      await agent?.stop();
      await cloud?.stop();
      await sql?.end();
      await database?.drop();
      await rm(dir, { recursive: true, force: true });
    });

    it('deploys a model: targets, manifests, goldens and audit rows are in PostgreSQL, not in SQLite', async () => {
      const deviceId = agent!.identity.deviceId;
      await waitFor(
        'the agent online',
        async () => (await cloud!.services.devices.find(deviceId))?.online,
        60_000,
      );
      const upload = await api(
        'POST',
        '/api/models?name=mnist-mlp',
        await readFile(SAMPLE),
        'application/octet-stream',
      );
      expect(upload.status).toBe(201);
      const model = upload.body as { id: string; sha256: string };
      const rollout = await api('POST', '/api/rollouts', { model: model.id, devices: [deviceId] });
      expect(rollout.status).toBe(201);
      const done = await waitFor(
        'the rollout to finish',
        async () => {
          const r = (await api('GET', `/api/rollouts/${rollout.body.id}`)).body;
          return r.status !== 'running' ? r : undefined;
        },
        90_000,
      );
      expect(done.status, JSON.stringify(done)).toBe('succeeded');
      await waitFor(
        'the golden check',
        async () => (await api('GET', `/api/devices/${deviceId}`)).body.fidelity,
      );

      const one = async (text: string, values: unknown[]) => (await sql.query(text, values)).rows;
      const [target] = await one('SELECT model_id, payload FROM targets WHERE device_id = $1', [deviceId]);
      expect(target.model_id).toBe(model.id);
      expect(JSON.parse(target.payload).model.manifest.sha256).toBe(model.sha256);
      const [manifest] = await one('SELECT body, signature FROM manifests WHERE model_id = $1', [model.id]);
      expect(JSON.parse(manifest.body).modelId).toBe(model.id);
      expect(manifest.signature).toBeTruthy();
      const [golden] = await one('SELECT sha256, cases FROM goldens WHERE model_id = $1', [model.id]);
      expect(JSON.parse(manifest.body).golden.sha256).toBe(golden.sha256);
      const actions = (await one('SELECT action FROM audit ORDER BY id', [])).map((r) => r.action);
      expect(actions).toEqual(expect.arrayContaining(['enroll-token.create', 'model.add', 'rollout.create']));
      const [fidelity] = await one('SELECT model_id, cases FROM device_fidelity WHERE device_id = $1', [
        deviceId,
      ]);
      expect(fidelity).toEqual({ model_id: model.id, cases: golden.cases });
      const [epoch] = await one("SELECT value FROM cloud_state WHERE key = 'epoch'", []);
      expect(JSON.parse(target.payload).epoch).toBe(Number(epoch.value));
      const [device] = await one('SELECT active_model_id FROM devices WHERE id = $1', [deviceId]);
      expect(device.active_model_id).toBe(model.id);
      const saved = await api('POST', '/api/profiles', { ...BUILTIN_PROFILES[1], name: 'pi-on-pg' });
      expect(saved.status).toBe(201);
      expect(await one('SELECT name FROM profiles', [])).toEqual([{ name: 'pi-on-pg' }]);

      await waitFor(
        'telemetry with the model’s latency',
        async () =>
          Number(
            (
              await one(
                'SELECT count(*) n FROM telemetry WHERE device_id = $1 AND model_id = $2 AND lat_count > 0',
                [deviceId, model.id],
              )
            )[0].n,
          ) >= 3,
        60_000,
      );
      await agent!.stop();
      agent = undefined;
      await expectMonitoringReadsFromPostgres(deviceId, model.id);
      await cloud!.stop();
      cloud = undefined;
      const local = openDatabase({ path: join(dir, 'cloud', 'fleetml.db') });
      try {
        for (const table of [...DELIVERY_TABLES, 'devices', 'models', 'rollouts']) {
          const row = local.prepare(`SELECT count(*) n FROM ${table}`).get() as { n: number };
          expect({ table, rows: row.n }).toEqual({ table, rows: 0 });
        }
      } finally {
        local.close();
      }
    }, 240_000);
  },
);
