import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSimulation } from '../../../cloud/simulator/fleet.js';
import { ROOT, waitFor } from '../../faults/procs.js';
import { startTestCloud, type TestCloud } from '../support/test-cloud.js';

const SAMPLE = join(ROOT, 'cloud/samples/mnist-mlp.onnx');
const DEVICES = 240;

interface Execution {
  deviceId: string;
  wave: number;
  status: string;
  startedAt: string | null;
  finishedAt: string | null;
}

// A rollout in waves to a few hundred simulated devices (the small sibling of
// scripts/bench/wave-rollout.ts, which does it with 10,000): every device gets the model
// through block transfer, and no wave starts before every device of the one before finished.
describe('rollout in waves to simulated devices', () => {
  let t: TestCloud;

  beforeAll(async () => {
    // All the devices enroll from 127.0.0.1: lift the broker's per-address enrollment limit.
    t = await startTestCloud({ enrollmentsPerMinute: 10 * DEVICES }, 'fleetml-waves-');
  });
  afterAll(async () => {
    await t?.stop();
  });

  it(`reaches all ${DEVICES} devices, wave after wave`, async () => {
    const { token } = await t.cloud.services.tokens.createEnrollToken({ uses: DEVICES });
    const sim = startSimulation({
      cloud: t.cloud.mqttUrl,
      enrollToken: token,
      devices: DEVICES,
      durationS: 1200,
      telemetryIntervalS: 30,
      rampS: 5,
      enrollConcurrency: 20,
      enrollRetryS: 20,
      namePrefix: 'waves',
    });
    try {
      await waitFor(
        `${DEVICES} simulated devices connected`,
        () => sim.counters.connected === DEVICES,
        300_000,
        200,
      );
      const upload = await fetch(`${t.cloud.httpUrl}/api/models?name=waves-mnist`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${t.cloud.adminToken}`,
          'content-type': 'application/octet-stream',
        },
        body: await readFile(SAMPLE),
      });
      expect(upload.status).toBe(201);
      const model = { body: (await upload.json()) as { id: string } };
      const created = await t.api('POST', '/api/rollouts', {
        model: model.body.id,
        devices: sim.devices.map((d) => d.identity.deviceId),
        policy: { canaryPercent: 5, waveSize: 80, deviceTimeoutS: 600 },
      });
      expect(created.status).toBe(201);
      const done = await waitFor(
        'the rollout to end',
        async () => {
          const r = (await t.api('GET', `/api/rollouts/${created.body.id}`)).body;
          return r.status !== 'running' ? r : undefined;
        },
        540_000,
        1000,
      );
      expect({ status: done.status, reason: done.reason }).toEqual({ status: 'succeeded', reason: null });
      expect(done.counts).toEqual({ succeeded: DEVICES });
      const executions = done.executions as Execution[];
      // Canary of 5 % (12 devices), then waves of 80: 12, 80, 80, 68.
      const waves = [0, 1, 2, 3].map((w) => executions.filter((e) => e.wave === w));
      expect(waves.map((w) => w.length)).toEqual([12, 80, 80, 68]);
      for (let w = 1; w < waves.length; w++) {
        const previousDone = Math.max(...waves[w - 1].map((e) => Date.parse(e.finishedAt!)));
        const firstStart = Math.min(...waves[w].map((e) => Date.parse(e.startedAt!)));
        expect(firstStart).toBeGreaterThanOrEqual(previousDone);
      }
      // Every device fetched, verified and activated the model, and the cloud knows it.
      expect(sim.counters.modelsActivated).toBe(DEVICES);
      expect(sim.counters.transferFailures).toBe(0);
      const list = (await t.api('GET', '/api/devices')).body;
      const rows = (Array.isArray(list) ? list : list.devices) as Array<{
        name: string;
        activeModel: { id: string } | null;
      }>;
      const updated = rows.filter((d) => d.name.startsWith('waves-') && d.activeModel?.id === model.body.id);
      expect(updated).toHaveLength(DEVICES);
    } finally {
      sim.stop();
      await sim.done;
    }
  }, 900_000);
});
