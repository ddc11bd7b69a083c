import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { floatInput, makeModel, makeNode } from '../../../cloud/compression/onnx/build.js';
import { decodeModel, encodeModel } from '../../../cloud/compression/onnx/proto.js';
import { floatTensor } from '../../../cloud/compression/onnx/tensor.js';
import { FleetHarness, waitFor } from './fleet-harness.js';

// Rollouts judged on what users feel (issue 13): two real agents serve `digits` to a client that
// calls them all along; the canary waits the soak time, then its real-traffic error rate and
// p99 on the new release are compared with the old release's on the same device before the next
// wave may start.
const SAMPLE = new URL('../../../cloud/samples/mnist-mlp.onnx', import.meta.url);
const SOAK_S = 4;

describe('rollouts with a soak on real traffic', () => {
  let fleet: FleetHarness;
  let running = true;
  let clients: Promise<void>[] = [];
  const body = JSON.stringify({
    inputs: [{ name: 'input', shape: [1, 1, 28, 28], datatype: 'FP32', data: new Array(784).fill(0.3) }],
  });

  beforeAll(async () => {
    fleet = await FleetHarness.start(2);
    // One application per device, calling its agent's inference service without pause.
    clients = fleet.agents.map(async (agent) => {
      while (running) {
        await fetch(`${agent.inference!.url}/v2/models/digits/infer`, { method: 'POST', body })
          .then((r) => r.arrayBuffer())
          .catch(() => {});
        await new Promise((r) => setTimeout(r, 20));
      }
    });
  }, 90_000);
  afterAll(async () => {
    running = false;
    await Promise.all(clients);
    await fleet?.stop();
  });

  const digits = async (tag: string) => {
    const model = decodeModel(await readFile(SAMPLE));
    model.docString = tag;
    return fleet.cloud.services.models.add(encodeModel(model), { name: 'digits' });
  };

  /** Until the cloud holds real traffic of `modelId` from every device. */
  const trafficFrom = (modelId: string) =>
    waitFor(
      `traffic on ${modelId} from both devices`,
      async () => {
        const now = Date.now();
        const [s] = await fleet.cloud.services.monitor.serving.summary(now - 600_000, now + 60_000, 'fleet', {
          modelId,
        });
        return s && s.devices === 2 && s.requests > 20 && s;
      },
      90_000,
    );

  it('waits out the soak, compares with the old release, then goes on', async () => {
    const { rollouts, rolloutStore } = fleet.cloud.services;
    const a = await digits('a');
    const first = await rollouts.create(a.id, { devices: fleet.deviceIds() }, {}, 'test');
    expect((await fleet.waitRollout(first.id)).status).toBe('succeeded');
    await trafficFrom(a.id);

    const b = await digits('b');
    const rollout = await rollouts.create(
      b.id,
      { devices: fleet.deviceIds() },
      { canaryPercent: 50, soakS: SOAK_S, maxErrorRateIncreasePoints: 1 },
      'test',
    );
    const done = await fleet.waitRollout(rollout.id, 120_000);
    expect(done.status).toBe('succeeded');
    const [canary, next] = (await rolloutStore.executions(rollout.id)).sort((x, y) => x.wave - y.wave);
    expect(canary.wave).toBe(0);
    expect(next.wave).toBe(1);
    // The next wave started only after the canary had served the new release for the soak time.
    expect(Date.parse(next.startedAt!) - Date.parse(canary.finishedAt!)).toBeGreaterThanOrEqual(
      SOAK_S * 1000,
    );
    // ...and it had real traffic on it to judge.
    const now = Date.now();
    const [onCanary] = await fleet.cloud.services.monitor.serving.summary(
      now - 600_000,
      now + 60_000,
      'fleet',
      {
        modelId: b.id,
        deviceId: canary.deviceId,
      },
    );
    expect(onCanary.requests).toBeGreaterThan(0);
    expect(onCanary.errorRate).toBe(0);
  }, 240_000);

  it('stops after the soak when users get errors on the new release, and rolls the canary back', async () => {
    const { rollouts, rolloutStore, devices } = fleet.cloud.services;
    const previous = (await devices.get(fleet.deviceIds()[0])).activeModelId!;
    await trafficFrom(previous);
    // Loads and passes its checks on the device, but takes [N, 784]: the application's
    // [1, 1, 28, 28] requests fail on it with ONNX_SHAPE.
    const flat = makeModel(
      [makeNode('MatMul', ['input', 'w'], ['logits'])],
      [floatInput('input', ['N', 784])],
      [floatInput('logits', ['N', 10])],
      { initializers: [floatTensor('w', [784, 10], new Float32Array(7840).fill(0.01))] },
    );
    const broken = await fleet.cloud.services.models.add(encodeModel(flat), { name: 'digits' });
    const rollout = await rollouts.create(
      broken.id,
      { devices: fleet.deviceIds() },
      { canaryPercent: 50, soakS: SOAK_S, maxErrorRateIncreasePoints: 1 },
      'test',
    );
    const done = await fleet.waitRollout(rollout.id, 120_000);
    expect(done.status).toBe('aborted');
    expect(done.reason).toMatch(/^wave 0: real-traffic error rate 100\.00 % on the new release vs 0\.00 %/);
    const executions = await rolloutStore.executions(rollout.id);
    const canary = executions.find((e) => e.wave === 0)!;
    expect(canary.status).toBe('succeeded');
    expect(canary.rolledBack).toBe(true);
    // Judged only once the soak was over.
    expect(Date.parse(done.updatedAt) - Date.parse(canary.finishedAt!)).toBeGreaterThanOrEqual(SOAK_S * 1000);
    expect(executions.filter((e) => e.wave > 0).every((e) => e.status === 'canceled')).toBe(true);
    await waitFor(
      'rollback',
      async () => (await devices.get(canary.deviceId)).activeModelId === previous,
      60_000,
    );
  }, 240_000);
});
