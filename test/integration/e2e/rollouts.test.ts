import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FleetHarness, waitFor } from './fleet-harness.js';

// Rollouts against four real agents on a real broker: canary then waves, an abort with
// rollback when the canary breaks the latency objective, failures, and a device timeout.
describe('rollouts', () => {
  let fleet: FleetHarness;
  beforeAll(async () => {
    fleet = await FleetHarness.start(4);
  }, 90_000);
  afterAll(async () => fleet?.stop());

  it('runs the canary first, then the waves, and succeeds', async () => {
    const model = await fleet.model('good-a');
    const { rollouts, rolloutStore, devices } = fleet.cloud.services;
    const rollout = await rollouts.create(
      model.id,
      { devices: fleet.deviceIds() },
      { canaryPercent: 25, waveSize: 2 },
      'test',
    );
    const done = await fleet.waitRollout(rollout.id);
    expect(done.status).toBe('succeeded');
    const executions = rolloutStore.executions(rollout.id);
    expect(executions.map((e) => e.wave)).toEqual([0, 1, 1, 2]);
    expect(executions.every((e) => e.status === 'succeeded' && e.p50Ms !== null)).toBe(true);
    const canary = executions[0];
    for (const later of executions.slice(1))
      expect(Date.parse(later.startedAt!)).toBeGreaterThanOrEqual(Date.parse(canary.finishedAt!));
    for (const id of fleet.deviceIds()) expect((await devices.get(id)).activeModelId).toBe(model.id);
  });

  it('aborts when the canary breaks the latency objective, and rolls it back', async () => {
    const previous = (await fleet.cloud.services.devices.get(fleet.deviceIds()[0])).activeModelId;
    const model = await fleet.model('slow-b');
    const { rollouts, rolloutStore, devices } = fleet.cloud.services;
    const rollout = await rollouts.create(
      model.id,
      { devices: fleet.deviceIds() },
      { canaryPercent: 25, latencyObjectiveMs: 0.000001 },
      'test',
    );
    const done = await fleet.waitRollout(rollout.id);
    expect(done.status).toBe('aborted');
    expect(done.reason).toMatch(/exceeds the objective/);
    const executions = rolloutStore.executions(rollout.id);
    const canary = executions.find((e) => e.wave === 0)!;
    expect(canary.status).toBe('succeeded');
    expect(canary.rolledBack).toBe(true);
    expect(executions.filter((e) => e.wave > 0).every((e) => e.status === 'canceled')).toBe(true);
    // The canary converges back on its previous model; the others never left it.
    await waitFor('rollback', async () => (await devices.get(canary.deviceId)).activeModelId === previous);
    for (const id of fleet.deviceIds()) expect((await devices.get(id)).activeModelId).toBe(previous);
  });

  it('marks a model that cannot load as failed, with the reason, and aborts', async () => {
    const broken = await fleet.model('broken-c', true);
    const { rollouts, rolloutStore } = fleet.cloud.services;
    const rollout = await rollouts.create(
      broken.id,
      { devices: fleet.deviceIds() },
      { canaryPercent: 25, abortFailurePercent: 0 },
      'test',
    );
    const done = await fleet.waitRollout(rollout.id);
    expect(done.status).toBe('aborted');
    const canary = rolloutStore.executions(rollout.id).find((e) => e.wave === 0)!;
    expect(canary.status).toBe('failed');
    expect(canary.reason).toMatch(/^RUNTIME_LOAD|^GOLDEN|^ONNX/);
  });

  it('times out a device that never answers', async () => {
    const silent = fleet.agents[3];
    await silent.stop();
    const model = await fleet.model('late-d');
    const { rollouts, rolloutStore } = fleet.cloud.services;
    const rollout = await rollouts.create(
      model.id,
      { devices: [silent.identity.deviceId] },
      { deviceTimeoutS: 5 },
      'test',
    );
    const done = await fleet.waitRollout(rollout.id, 30_000);
    const [execution] = rolloutStore.executions(rollout.id);
    expect(execution.status).toBe('timed_out');
    expect(done.status).toBe('aborted');
  });
});
