import { Registry } from 'prom-client';
import { expect, it } from 'vitest';
import { beginEpoch } from '../../../cloud/fleet/delivery/epoch.js';
import { TargetService } from '../../../cloud/fleet/delivery/targets.js';
import { FLEET_MIGRATIONS } from '../../../cloud/fleet/store/fleet-migrations.js';
import { migrateFleetStore } from '../../../cloud/fleet/store/kysely.js';
import { signManifest, signTarget, verifyManifest, verifyTarget } from '../../../shared/manifest/index.js';
import {
  type BenchReport,
  deviceTopic,
  type StateReport,
  type TargetState,
} from '../../../shared/protocol/index.js';
import { describeEachBackend } from '../support/backends.js';
import { deliveryRig, keys, SAMPLE, sampleVariant } from './delivery-rig.js';

const state = (over: Partial<StateReport>): StateReport => ({
  v: 1,
  targetVersion: null,
  phase: 'active',
  activeModel: null,
  progress: null,
  error: null,
  at: new Date().toISOString(),
  ...over,
});

const bench = (modelId: string, sha256: string, cosine: number): BenchReport => ({
  v: 1,
  modelId,
  sha256,
  ep: 'cpu',
  runs: 10,
  warmupRuns: 1,
  p50Ms: 1,
  p90Ms: 1,
  p99Ms: 1,
  maxMs: 1,
  meanMs: 1,
  throughput: 1000,
  loadMs: 1,
  at: new Date().toISOString(),
  golden: { cases: 8, cosine, maxAbsDiff: 1e-6, accuracy: null },
});

describeEachBackend('delivery on the fleet store', (backend) => {
  it('issues targets with growing versions under the newest epoch, and re-signs them after a new one', async () => {
    const store = await backend.open();
    const { addDevice, devices, models, targets, published } = deliveryRig(store);
    const first = await beginEpoch(store);
    await addDevice('a');
    await addDevice('b');
    const model = await models.add(SAMPLE, { name: 'mnist' });
    const one = await targets.setModel('a', model);
    const two = await targets.setModel('a', model);
    expect([one.version, two.version, two.epoch]).toEqual([1, 2, first]);
    verifyTarget(two, keys.publicKey, 'a');
    expect(await targets.current('a')).toEqual(two);
    await targets.setModel('b', model);
    await devices.revoke('b');

    const second = await beginEpoch(store);
    expect(second).toBeGreaterThan(first);
    expect(await targets.currentEpoch()).toBe(second);
    published.length = 0;
    expect(await targets.republishAll()).toBe(1); // b is revoked: not republished
    expect(published.map((t) => [t.deviceId, t.version, t.epoch])).toEqual([['a', 2, second]]);
    verifyTarget(published[0], keys.publicKey, 'a');
    expect((await targets.current('a'))?.epoch).toBe(second);
    const cleared = await targets.setModel('a', null);
    expect([cleared.version, cleared.epoch, cleared.model]).toEqual([3, second, null]);
    expect(await targets.current('nobody')).toBeUndefined();
  });

  // After a broker restart every replica publishes all stored targets again. One that read a
  // device's target just before another replica issued a newer one must not leave the older
  // retained (a device subscribing later would never see the newer): seen with a rollout's
  // next wave issued during a Mosquitto restart.
  it('republishing never leaves an older target retained over one issued meanwhile', async () => {
    const store = await backend.open();
    const rig = deliveryRig(store);
    await rig.addDevice('a');
    const model = await rig.models.add(SAMPLE, { name: 'mnist' });
    await rig.targets.setModel('a', model);
    const retained = new Map<string, number>(); // what the broker keeps, per topic
    const keep = (topic: string, payload: Buffer) =>
      retained.set(topic, (JSON.parse(payload.toString()) as TargetState).version);
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    let holding!: () => void;
    const held = new Promise<void>((r) => (holding = r));
    let first = true;
    const replica = (publish: (topic: string, payload: Buffer) => Promise<void>) =>
      new TargetService(store, { publish }, rig.manifests, {
        sign: (t) => signTarget(t, keys),
        devices: rig.devices,
        models: rig.models,
      });
    const slow = replica(async (topic, payload) => {
      if (first) {
        first = false;
        holding();
        await released; // the stale version is on its way to the broker
      }
      keep(topic, payload);
    });
    const fast = replica(async (topic, payload) => void keep(topic, payload));
    const republishing = slow.republishAll();
    await held;
    const newer = await fast.setModel('a', model);
    release();
    await republishing;
    expect(retained.get(deviceTopic('a', 'target'))).toBe(newer.version);
  });

  it('starts a newer epoch on every start, even when the clock went back', async () => {
    const store = await backend.open();
    const a = await beginEpoch(store, 1000);
    expect(await beginEpoch(store, 500)).toBe(a + 1);
  });

  it('keeps golden sets and one signed manifest per model that names its golden set', async () => {
    const store = await backend.open();
    const { goldens, manifests, models } = deliveryRig(store);
    const model = await models.add(SAMPLE, { name: 'mnist' });
    const golden = await goldens.find(model.id);
    expect(golden).toMatchObject({ modelId: model.id, cases: 8 });
    expect(typeof golden?.size).toBe('number');
    const issued = await manifests.forDeployment(model);
    expect(issued.manifest).toMatchObject({ modelId: model.id, version: 1, release: model.releaseStamp });
    expect(issued.manifest.golden?.sha256).toBe(golden?.sha256);
    verifyManifest(issued.manifest, issued.signature!, keys.publicKey);
    expect(await manifests.forDeployment(model)).toEqual(issued); // not issued again
    expect(await manifests.find(model.id)).toEqual(issued);
    expect(await manifests.pending()).toEqual([]);
  });

  it('holds offline manifests until a signature that verifies is attached', async () => {
    const store = await backend.open();
    const { manifests, models } = deliveryRig(store, {
      signing: { mode: 'offline', publicKey: keys.publicKey },
    });
    const model = await models.add(sampleVariant('offline'), { name: 'mnist' });
    await expect(manifests.forDeployment(model)).rejects.toMatchObject({ code: 'CONFLICT' });
    const manifest = await manifests.prepare(model);
    expect((await manifests.pending()).map((m) => m.modelId)).toEqual([model.id]);
    const other = await models.add(sampleVariant('other'), { name: 'mnist' });
    const wrong = signManifest(await manifests.prepare(other), keys);
    await expect(manifests.attach(model.id, wrong)).rejects.toThrow();
    await manifests.attach(model.id, signManifest(manifest, keys));
    expect((await manifests.pending()).map((m) => m.modelId)).toEqual([other.id]);
    expect((await manifests.forDeployment(model)).signature).toBe(signManifest(manifest, keys));
    await expect(manifests.attach('m-none', wrong)).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it('raises and counts alarms for versions the cloud never issued, and keeps each device fidelity', async () => {
    const store = await backend.open();
    const { addDevice, models, targets, audit } = deliveryRig(store);
    await addDevice('a');
    const model = await models.add(SAMPLE, { name: 'mnist' });
    const target = await targets.setModel('a', model);
    const running = { modelId: model.id, sha256: model.sha256, version: 1 };
    await audit.onState('a', state({ targetVersion: 1, epoch: target.epoch, activeModel: running }));
    expect(await audit.alarms('a')).toEqual([]);
    await audit.onState('a', state({ targetVersion: 7, epoch: target.epoch }));
    await audit.onState(
      'a',
      state({ targetVersion: 1, activeModel: { ...running, sha256: 'f'.repeat(64) } }),
    );
    const [alarm] = await audit.alarms('a');
    expect(alarm).toMatchObject({ code: 'UNKNOWN_VERSION', count: 2 });
    expect(alarm.message).toMatch(/never issued/);
    expect(alarm.lastAt >= alarm.firstAt).toBe(true);
    const registry = new Registry();
    audit.registerMetrics(registry);
    expect(await registry.metrics()).toMatch(/fleetml_device_alarms\{device="a",code="UNKNOWN_VERSION"\} 1/);

    expect(await audit.fidelity('a')).toBeNull();
    await audit.onBench('a', bench(model.id, model.sha256, 0.99));
    await audit.onBench('a', bench(model.id, model.sha256, 0.5));
    expect(await audit.fidelity('a')).toMatchObject({
      modelId: model.id,
      cases: 8,
      cosine: 0.5,
      maxAbs: 1e-6,
    });
    expect(await audit.alarms('b')).toEqual([]);
  });

  it('removes a model together with its manifest and golden set', async () => {
    const store = await backend.open();
    const { goldens, manifests, models } = deliveryRig(store);
    const model = await models.add(SAMPLE, { name: 'mnist' });
    await manifests.forDeployment(model);
    await models.remove(model.id);
    expect([await manifests.find(model.id), await goldens.find(model.id)]).toEqual([undefined, undefined]);
  });

  it('applies a migration named before one already applied (branches merged in any order)', async () => {
    const store = await backend.open();
    const late = {
      ...FLEET_MIGRATIONS,
      '0003_zz_merged_late': {
        up: (db: any) => db.schema.createTable('merged_late').addColumn('id', 'text').execute(),
      },
    };
    await migrateFleetStore(store, undefined, late);
    const tables = (await store.db.introspection.getTables()).map((t) => t.name);
    expect(tables).toContain('merged_late');
  });
});
