import { expect, it } from 'vitest';
import { BUILTIN_PROFILES } from '../../../cloud/compression/profiles/builtin.js';
import { ProfileRegistry } from '../../../cloud/compression/profiles/registry.js';
import { AuditLog } from '../../../cloud/fleet/inventory/audit.js';
import { Lineage } from '../../../cloud/fleet/inventory/lineage.js';
import { ProfileStore } from '../../../cloud/fleet/inventory/profiles.js';
import { describeEachBackend } from '../support/backends.js';
import { deliveryRig, SAMPLE, sampleVariant } from './delivery-rig.js';

describeEachBackend('audit log, profiles and lineage on the fleet store', (backend) => {
  it('keeps the audit log in order, newest first, with its details', async () => {
    const log = new AuditLog(await backend.open());
    await log.record('ops', 'model.add', { id: 'm-1' });
    await log.record('ops', 'rollout.create', { id: 'r-1', devices: 3 });
    await log.record('admin', 'device.revoke', { id: 'd-1' });
    const recent = await log.recent(2);
    expect(recent.map((e) => [e.actor, e.action, e.details])).toEqual([
      ['admin', 'device.revoke', { id: 'd-1' }],
      ['ops', 'rollout.create', { id: 'r-1', devices: 3 }],
    ]);
    expect(Date.parse(recent[0].at)).not.toBeNaN();
    expect(await log.recent()).toHaveLength(3);
  });

  it('keeps user-defined profiles for every replica, replacing one saved again under its name', async () => {
    const store = await backend.open();
    const here = new ProfileRegistry();
    const profiles = new ProfileStore(store);
    const lab = here.add({ ...BUILTIN_PROFILES[1], name: 'pi-lab', priority: 99 });
    await profiles.save(lab);
    await profiles.save(here.add({ ...lab, description: 'the lab Pi, again' }));
    const elsewhere = new ProfileRegistry();
    expect(elsewhere.list().map((p) => p.name)).not.toContain('pi-lab');
    expect(await new ProfileStore(store).loadInto(elsewhere)).toBe(1);
    expect(elsewhere.get('pi-lab').description).toBe('the lab Pi, again');
  });

  it('averages what devices of each profile measured for each variant of a family', async () => {
    const store = await backend.open();
    const { addDevice, models } = deliveryRig(store);
    const original = await models.add(SAMPLE, { name: 'mnist' });
    const int8 = await models.add(sampleVariant('int8'), {
      name: 'mnist',
      variant: 'int8',
      sourceModelId: original.id,
      profile: 'rpi5',
    });
    await addDevice('x', 'rpi5');
    await addDevice('y', 'rpi5');
    await addDevice('z');
    const asked: string[][] = [];
    const lineage = new Lineage(store, models, async (sha256s) => {
      asked.push(sha256s);
      return [
        { sha256: int8.sha256, deviceId: 'x', p50Ms: 2 },
        { sha256: int8.sha256, deviceId: 'y', p50Ms: 4 },
        { sha256: int8.sha256, deviceId: 'z', p50Ms: 10 },
        { sha256: int8.sha256, deviceId: 'removed-device', p50Ms: 100 },
      ];
    });
    const family = await lineage.family(int8.id);
    expect(family.root).toBe(original.id);
    expect(asked).toEqual([[original.sha256, int8.sha256]]);
    const byId = new Map(family.variants.map((v) => [v.id, v.deviceLatency]));
    expect(byId.get(int8.id)).toEqual({
      rpi5: { devices: 2, p50Ms: 3 },
      unprofiled: { devices: 1, p50Ms: 10 },
    });
    expect(byId.get(original.id)).toEqual({});
  });
});
