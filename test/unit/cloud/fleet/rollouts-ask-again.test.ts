import { describe, expect, it } from 'vitest';
import { ASK_AGAIN_AFTER_MS } from '../../../../cloud/fleet/rollouts/step.js';
import { deviceTopic } from '../../../../shared/protocol/index.js';
import { rolloutRig } from '../../../support/rollout-rig.js';

// A device's report can be lost on the way (a replica killed with it in hand, a broker restart
// before any replica subscribed again). The rollout then asks again, by publishing the device's
// target once more (same version), rather than waiting for the device timeout.
describe('a rollout asks a device it has not heard from again', () => {
  it(`republishes the same target to an unfinished device every ${ASK_AGAIN_AFTER_MS / 1000} s, and not to finished ones`, async () => {
    const { engine, targets, model, clock, report, statuses, published } = await rolloutRig(['a', 'b']);
    const rollout = await engine.create(model.id, { devices: ['a', 'b'] }, { deviceTimeoutS: 3600 }, 't');
    const version = (await targets.current('b'))!.version;
    const sent = (id: string) => published.filter((t) => t === deviceTopic(id, 'target')).length;
    expect([sent('a'), sent('b')]).toEqual([1, 1]);
    await report('a', model, true); // b's report is lost
    await engine.tick();
    expect(await statuses(rollout.id)).toEqual(['succeeded', 'in_progress']);
    clock.offsetMs = ASK_AGAIN_AFTER_MS / 2;
    await engine.tick();
    expect(sent('b')).toBe(1);
    clock.offsetMs = ASK_AGAIN_AFTER_MS + 1000;
    await engine.tick();
    await engine.tick();
    expect([sent('a'), sent('b')]).toEqual([1, 2]); // once per interval, never to the finished device
    expect((await targets.current('b'))!.version).toBe(version); // asked again, not a new target
    clock.offsetMs = 2 * ASK_AGAIN_AFTER_MS + 2000;
    await engine.tick();
    expect(sent('b')).toBe(3);
    await report('b', model, true); // the device's answer
    await engine.tick();
    expect(await statuses(rollout.id)).toEqual(['succeeded', 'succeeded']);
    clock.offsetMs = 4 * ASK_AGAIN_AFTER_MS;
    await engine.tick();
    expect(sent('b')).toBe(3);
  });
});
