import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSimulation } from '../../../cloud/simulator/fleet.js';
import { type FleetmlProcess, ROOT, waitFor } from '../../faults/procs.js';
import { Mosquitto, mosquittoBinary } from '../agent/mosquitto.js';
import { freshDatabase, postgresUnavailable } from './pg.js';
import { ReplicaSet } from './replica-procs.js';

const binary = mosquittoBinary();
const skipReason =
  (await postgresUnavailable()) ??
  (binary || process.env.CI ? null : 'mosquitto is not installed (.ci/run installs it)');
const SAMPLE = join(ROOT, 'cloud/samples/mnist-mlp.onnx');
const DEVICES = 24;

const isLeading = (p: FleetmlProcess) => {
  const last = p.logs.filter((l) => l.msg === 'leading' || l.msg === 'following').pop();
  return last?.leader === true;
};

// kill -9 of the leading replica in the middle of a rollout in waves to simulated devices: the
// other replica leads within 15 s and drives the rollout to the end.
describe.skipIf(skipReason !== null)(
  `rollout across a leader's death ${skipReason ? `(skipped: ${skipReason})` : ''}`,
  () => {
    let broker: Mosquitto;
    let dir: string;
    let db: Awaited<ReturnType<typeof freshDatabase>>;
    let set: ReplicaSet;

    beforeAll(async () => {
      broker = await Mosquitto.start(binary ?? '/usr/sbin/mosquitto');
      dir = await mkdtemp(join(tmpdir(), 'fleetml-rollout-failover-'));
      db = await freshDatabase();
      set = new ReplicaSet({ dataDir: join(dir, 'cloud'), mqttUrl: broker.url, database: db.url });
    });
    afterAll(async () => {
      await set?.killAll();
      await broker?.close();
      await db?.drop();
      await rm(dir, { recursive: true, force: true });
    });

    it('the follower takes over within 15 s and the rollout completes', async () => {
      const first = await set.start();
      await waitFor('the first replica to lead', () => isLeading(first), 30_000);
      const second = await set.start();
      const token = (await set.api(second, 'POST', '/api/enroll-tokens', { uses: DEVICES })).body.token;
      const sim = startSimulation({
        cloud: broker.url,
        enrollToken: token,
        devices: DEVICES,
        durationS: 400,
        telemetryIntervalS: 5,
        rampS: 2,
        // A re-asked enrollment gets the same device (idempotent on the request id, no second use
        // of the token); asking less often only spares the loaded cloud the repeats.
        enrollRetryS: 120,
        namePrefix: 'rollout-failover',
      });
      try {
        await waitFor(
          `${DEVICES} devices connected`,
          () => sim.counters.connected === DEVICES,
          120_000,
        ).catch((error) => {
          throw new Error(`${(error as Error).message}; simulator: ${JSON.stringify(sim.counters)}`);
        });
        const model = await set.api(
          second,
          'POST',
          '/api/models?name=failover-mnist',
          await readFile(SAMPLE),
        );
        expect(model.status).toBe(201);
        // Waves of 4 with a soak between them: the rollout lasts long enough to lose its leader.
        const created = await set.api(second, 'POST', '/api/rollouts', {
          model: model.body.id,
          devices: sim.devices.map((d) => d.identity.deviceId),
          policy: { waveSize: 4, soakS: 3, deviceTimeoutS: 300 },
        });
        expect(created.status).toBe(201);
        const id = created.body.id;
        await waitFor(
          'the first wave done',
          async () => (await set.api(second, 'GET', `/api/rollouts/${id}`)).body.counts.succeeded >= 4,
          180_000,
          200,
        );
        const before = (await set.api(second, 'GET', `/api/rollouts/${id}`)).body;
        expect(before.status).toBe('running');
        expect(before.counts.succeeded).toBeLessThan(DEVICES);

        const killedAt = Date.now();
        await first.kill('SIGKILL');
        await waitFor('the second replica to lead', () => isLeading(second), 15_000, 20);
        expect(Date.now() - killedAt).toBeLessThanOrEqual(15_000);

        const after = await waitFor(
          'the rollout to finish',
          async () => {
            const r = (await set.api(second, 'GET', `/api/rollouts/${id}`)).body;
            return r.status !== 'running' ? r : undefined;
          },
          300_000,
          500,
        );
        expect(after.reason ?? '').not.toMatch(/abort/);
        expect(after.status).toBe('succeeded');
        expect(after.counts.succeeded).toBe(DEVICES);
        expect(sim.counters.modelsActivated).toBe(DEVICES);
      } finally {
        sim.stop();
        await sim.done;
      }
    }, 600_000);
  },
);
