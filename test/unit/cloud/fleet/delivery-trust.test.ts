import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { beforeEach, describe, expect, it } from 'vitest';
import { tokenFingerprint } from '../../../../agent/fleet-key-pins.js';
import { beginEpoch } from '../../../../cloud/fleet/delivery/epoch.js';
import { GoldenService } from '../../../../cloud/fleet/delivery/goldens.js';
import { LocalArtifactStore } from '../../../../cloud/fleet/delivery/local-artifacts.js';
import { ManifestService } from '../../../../cloud/fleet/delivery/manifests.js';
import { TargetService } from '../../../../cloud/fleet/delivery/targets.js';
import { TokenRepository } from '../../../../cloud/fleet/identity/tokens.js';
import { DeviceRepository } from '../../../../cloud/fleet/inventory/devices.js';
import { type ModelRecord, ModelRegistry } from '../../../../cloud/fleet/inventory/models.js';
import { type Db, openDatabase } from '../../../../cloud/fleet/store/db.js';
import { type FleetStore, openFleetStore } from '../../../../cloud/fleet/store/kysely.js';
import {
  decodeGoldenSet,
  fleetKeyFingerprint,
  generateFleetKeyPair,
  signTarget,
  verifyTarget,
} from '../../../../shared/manifest/index.js';

const SAMPLE = readFileSync(new URL('../../../../cloud/samples/mnist-mlp.onnx', import.meta.url));
const keys = generateFleetKeyPair();
const publisher = { publish: async () => {} };

let db: Db;
let fleet: FleetStore;
let store: LocalArtifactStore;
beforeEach(async () => {
  db = openDatabase({ path: ':memory:' });
  fleet = await openFleetStore({ sqlite: db });
  store = new LocalArtifactStore(mkdtempSync(join(tmpdir(), 'fleetml-trust-')));
});

function services() {
  const goldens = new GoldenService(fleet, store, pino({ level: 'silent' }));
  const manifests = new ManifestService(fleet, {
    signing: { mode: 'online', keys },
    golden: (id) => goldens.find(id),
  });
  const models = new ModelRegistry(fleet, store, (m, bytes) => goldens.register(m, bytes));
  const devices = new DeviceRepository(fleet);
  const targets = new TargetService(fleet, publisher, manifests, {
    sign: (t) => signTarget(t, keys),
    devices,
    models,
  });
  return { goldens, manifests, models, targets, devices };
}

describe('delivery trust (cloud side)', () => {
  it('refuses at issue time a manifest the protocol cannot carry', async () => {
    const { manifests } = services();
    const model: ModelRecord = {
      id: 'm-deep',
      name: 'deep',
      variant: 'fp32',
      sha256: 'a'.repeat(64),
      size: 10,
      inputs: [{ name: 'x', shape: Array.from({ length: 17 }, () => 1), type: 'float32' }],
      outputs: [{ name: 'y', shape: [1], type: 'float32' }],
      sourceModelId: null,
      profile: null,
      metrics: null,
      createdAt: new Date().toISOString(),
      servingShapes: null,
      unresolvedDims: [],
      release: 1,
      releaseStamp: 1,
    };
    db.prepare(
      "INSERT INTO models (id, name, variant, sha256, size, inputs, outputs, created_at) VALUES ('m-deep', 'deep', 'fp32', ?, 10, '[]', '[]', ?)",
    ).run(model.sha256, model.createdAt);
    await expect(manifests.forDeployment(model)).rejects.toMatchObject({ code: 'MANIFEST_INVALID' });
    await expect(manifests.forDeployment({ ...model, inputs: [], name: 'n'.repeat(300) })).rejects.toThrow(
      /name/,
    );
  });

  it('signs device-bound targets with epoch and sequence, and flags a lower release as rollback', async () => {
    const { models, targets, goldens, devices } = services();
    const epoch = await beginEpoch(fleet);
    await devices.create({
      id: 'dev-1',
      name: 'dev',
      secretHash: 'x',
      profile: null,
      hardware: {
        hostname: 'h',
        arch: 'x64',
        platform: 'linux',
        cpuModel: 'cpu',
        cpuCores: 2,
        memoryBytes: 1e9,
        gpu: null,
        executionProviders: ['cpu'],
        onnxruntimeVersion: '1',
        nodeVersion: '20',
      },
    });
    const older = await models.add(SAMPLE, { name: 'mnist' });
    const newer = await models.add(Buffer.concat([SAMPLE]), { name: 'mnist', variant: 'int8' });
    const first = await targets.setModel('dev-1', older);
    const second = await targets.setModel('dev-1', newer);
    const back = await targets.setModel('dev-1', older);
    for (const t of [first, second, back]) verifyTarget(t, keys.publicKey, 'dev-1');
    expect(() => verifyTarget({ ...second, version: 99 }, keys.publicKey, 'dev-1')).toThrow(
      /does not verify/,
    );
    expect(() => verifyTarget(second, keys.publicKey, 'dev-2')).toThrow(/not dev-2/);
    expect([first.epoch, second.version]).toEqual([epoch, first.version + 1]);
    expect(await targets.currentEpoch()).toBe(epoch);
    expect(second.model!.manifest.release).toBeGreaterThan(first.model!.manifest.release!);
    expect(second.rollback).toBeUndefined();
    expect(back.rollback).toBe(true);
    // Golden sets computed at registration are named by the manifest, with bounds by precision.
    const golden = (await goldens.find(older.id))!;
    expect(first.model!.manifest.golden).toMatchObject({ sha256: golden.sha256, minCosine: 0.9999 });
    expect(second.model!.manifest.golden?.minCosine).toBe(0.99);
    const set = decodeGoldenSet(await store.get(golden.sha256));
    expect(set.cases.length).toBe(8);
  });

  it('signs an older release as a rollback even when it was never deployed before (one source of releases)', async () => {
    const { models, targets, devices } = services();
    await devices.create({ id: 'dev-2', name: 'dev', secretHash: 'x', profile: null, hardware: {} as never });
    const first = await models.add(SAMPLE, { name: 'mnist' });
    const second = await models.add(SAMPLE, { name: 'mnist', variant: 'retrained' });
    const variant = await models.add(SAMPLE, { name: 'mnist', variant: 'int8', sourceModelId: first.id });
    expect([first.release, second.release, variant.release]).toEqual([1, 2, 1]);
    const newer = await targets.setModel('dev-2', second);
    // Release 1 goes out for the first time after release 2: it is still the older release.
    const older = await targets.setModel('dev-2', variant);
    expect(older.model!.manifest.release).toBe(first.releaseStamp);
    expect(older.model!.manifest.release).toBeLessThan(newer.model!.manifest.release!);
    expect(older.rollback).toBe(true);
    // Back to release 2: no rollback.
    expect((await targets.setModel('dev-2', second)).rollback).toBeUndefined();
  });

  it('starts a newer epoch on every start, even after the database went back in time', async () => {
    const a = await beginEpoch(fleet, 1000);
    const b = await beginEpoch(fleet, 500);
    expect(b).toBeGreaterThan(a);
  });

  it('puts the fleet key fingerprint into enrollment tokens', async () => {
    const tokens = new TokenRepository(fleet, { fleetKeyFingerprint: fleetKeyFingerprint(keys.publicKey) });
    const { token } = await tokens.createEnrollToken();
    expect(tokenFingerprint(token)).toBe(fleetKeyFingerprint(keys.publicKey));
    await tokens.consumeEnrollToken(token);
  });
});
