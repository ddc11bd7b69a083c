import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { LocalArtifactStore } from '../../../cloud/fleet/delivery/local-artifacts.js';
import { DeviceRepository } from '../../../cloud/fleet/inventory/devices.js';
import { ModelRegistry } from '../../../cloud/fleet/inventory/models.js';
import { RolloutStore } from '../../../cloud/fleet/rollouts/store.js';
import { DEFAULT_POLICY } from '../../../cloud/fleet/rollouts/types.js';
import { inTransaction } from '../../../cloud/fleet/store/kysely.js';
import { describeEachBackend } from '../support/backends.js';

const SAMPLE = readFileSync(new URL('../../../cloud/samples/mnist-mlp.onnx', import.meta.url));

describeEachBackend('rollout store', (backend) => {
  async function fixture(deviceCount: number) {
    const store = await backend.open();
    const models = new ModelRegistry(
      store,
      new LocalArtifactStore(mkdtempSync(join(tmpdir(), 'fleetml-ro-'))),
    );
    const model = await models.add(SAMPLE, { name: 'mnist' });
    const ids = Array.from({ length: deviceCount }, (_, i) => `d-${String(i).padStart(4, '0')}`);
    await inTransaction(store, async (tx) => {
      const devices = new DeviceRepository(tx);
      for (const id of ids)
        await devices.create({ id, name: id, secretHash: 'x', profile: null, hardware: {} as never });
    });
    return { rollouts: new RolloutStore(store), model, ids };
  }

  it('stores a rollout with its waves (more devices than one statement carries)', async () => {
    const { rollouts, model, ids } = await fixture(1200);
    const rollout = await rollouts.create({
      id: 'r-1',
      modelId: model.id,
      selector: { tag: 'lab' },
      policy: DEFAULT_POLICY,
      createdBy: 'ops',
      waves: [ids.slice(0, 1), ids.slice(1)],
      previousModel: (id) => (id === ids[0] ? 'm-old' : null),
    });
    expect(rollout).toMatchObject({ id: 'r-1', status: 'running', currentWave: 0, selector: { tag: 'lab' } });
    const executions = await rollouts.executions('r-1');
    expect(executions).toHaveLength(1200);
    expect(executions[0]).toMatchObject({
      deviceId: ids[0],
      wave: 0,
      status: 'queued',
      previousModelId: 'm-old',
    });
    expect(executions.filter((e) => e.wave === 1)).toHaveLength(1199);
    expect((await rollouts.active()).map((r) => r.id)).toEqual(['r-1']);
  });

  it('moves executions and the rollout through their states', async () => {
    const { rollouts, model, ids } = await fixture(3);
    await rollouts.create({
      id: 'r-2',
      modelId: model.id,
      selector: { devices: ids },
      policy: DEFAULT_POLICY,
      createdBy: 'ops',
      waves: [ids],
      previousModel: () => null,
    });
    const before = new Date(Date.now() - 1000).toISOString();
    await rollouts.start('r-2', ids[0], 4);
    await rollouts.start('r-2', ids[1], 5);
    expect(await rollouts.startedSince('r-2', before)).toBe(2);
    expect(await rollouts.startedSince('r-2', new Date(Date.now() + 60_000).toISOString())).toBe(0);
    await rollouts.finish('r-2', ids[0], 'succeeded', { p50Ms: 1.5, p99Ms: 3.25 });
    await rollouts.finish('r-2', ids[1], 'failed', { reason: 'MODEL_LOAD: bad' });
    await rollouts.markRolledBack('r-2', ids[0]);
    await rollouts.setWave('r-2', 1);
    await rollouts.setStatus('r-2', 'paused', 'paused by ops');
    await rollouts.setStatus('r-2', 'running'); // no reason given: the last one stays
    expect(await rollouts.get('r-2')).toMatchObject({
      status: 'running',
      reason: 'paused by ops',
      currentWave: 1,
    });
    expect(
      (await rollouts.executions('r-2')).map((e) => [
        e.status,
        e.targetVersion,
        e.p99Ms,
        e.rolledBack,
        e.reason,
      ]),
    ).toEqual([
      ['succeeded', 4, 3.25, true, null],
      ['failed', 5, null, false, 'MODEL_LOAD: bad'],
      ['queued', null, null, false, null],
    ]);
    await rollouts.setStatus('r-2', 'succeeded');
    expect(await rollouts.active()).toEqual([]);
    expect((await rollouts.list()).map((r) => r.id)).toEqual(['r-2']);
    expect(await rollouts.get('nope')).toBeUndefined();
  });
});
