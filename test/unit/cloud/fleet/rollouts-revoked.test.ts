import { beforeEach, describe, expect, it } from 'vitest';
import type { ModelRecord } from '../../../../cloud/fleet/inventory/models.js';
import { deviceTopic } from '../../../../shared/protocol/index.js';
import { rolloutRig } from '../../../support/rollout-rig.js';

/** The shared rig, with the devices' success report under the name these tests use. */
async function revokedRig() {
  const rig = await rolloutRig(['a', 'b']);
  const succeed = (deviceId: string, m: ModelRecord) => rig.report(deviceId, m, true);
  return { ...rig, succeed };
}

const targetsOf = (published: string[], deviceId: string) =>
  published.filter((t) => t === deviceTopic(deviceId, 'target')).length;

describe('a device revoked during a rollout', () => {
  let rig: Awaited<ReturnType<typeof revokedRig>>;
  beforeEach(async () => {
    rig = await revokedRig();
  });

  it('gets no target when its wave starts, and does not count as a failure', async () => {
    const { devices, targets, store, engine, model, published, succeed } = rig;
    const rollout = await engine.create(model.id, { devices: ['a', 'b'] }, { canaryPercent: 50 }, 't');
    expect((await store.executions(rollout.id)).map((e) => [e.deviceId, e.wave, e.status])).toEqual([
      ['a', 0, 'in_progress'],
      ['b', 1, 'queued'],
    ]);
    await devices.revoke('b');
    await succeed('a', model);
    await engine.tick();
    expect((await store.executions(rollout.id)).map((e) => [e.deviceId, e.status, e.reason])).toEqual([
      ['a', 'succeeded', null],
      ['b', 'canceled', 'device revoked'],
    ]);
    expect((await store.get(rollout.id))?.status).toBe('succeeded');
    expect(targetsOf(published, 'b')).toBe(0);
    expect(await targets.current('b')).toBeUndefined();
  });

  it('is let go while in progress, and the target service refuses it directly', async () => {
    const { devices, targets, store, engine, model, published, succeed } = rig;
    const rollout = await engine.create(model.id, { devices: ['a', 'b'] }, {}, 't');
    expect(targetsOf(published, 'b')).toBe(1);
    await devices.revoke('b');
    await succeed('a', model);
    await engine.tick();
    expect((await store.executions(rollout.id)).map((e) => [e.deviceId, e.status, e.reason])).toEqual([
      ['a', 'succeeded', null],
      ['b', 'canceled', 'device revoked'],
    ]);
    expect((await store.get(rollout.id))?.status).toBe('succeeded');
    await expect(targets.setModel('b', model)).rejects.toMatchObject({ code: 'DEVICE_REVOKED' });
    expect(targetsOf(published, 'b')).toBe(1);
    expect(await targets.republishAll()).toBe(1); // a's target only
  });
});
