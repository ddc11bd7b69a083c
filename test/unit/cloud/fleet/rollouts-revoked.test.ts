import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { beforeEach, describe, expect, it } from 'vitest';
import { LocalArtifactStore } from '../../../../cloud/fleet/delivery/local-artifacts.js';
import { ManifestService } from '../../../../cloud/fleet/delivery/manifests.js';
import { TargetService } from '../../../../cloud/fleet/delivery/targets.js';
import { hashSecret } from '../../../../cloud/fleet/identity/secrets.js';
import { TelemetryRepository } from '../../../../cloud/fleet/ingest/telemetry.js';
import { AuditLog } from '../../../../cloud/fleet/inventory/audit.js';
import { DeviceRepository } from '../../../../cloud/fleet/inventory/devices.js';
import { type ModelRecord, ModelRegistry } from '../../../../cloud/fleet/inventory/models.js';
import { RolloutEngine } from '../../../../cloud/fleet/rollouts/engine.js';
import { RolloutStore } from '../../../../cloud/fleet/rollouts/store.js';
import { openDatabase } from '../../../../cloud/fleet/store/db.js';
import { openFleetStore } from '../../../../cloud/fleet/store/kysely.js';
import { generateFleetKeyPair, signTarget } from '../../../../shared/manifest/index.js';
import { deviceTopic } from '../../../../shared/protocol/index.js';

const SAMPLE = readFileSync(new URL('../../../../cloud/samples/mnist-mlp.onnx', import.meta.url));
const keys = generateFleetKeyPair();
const hardware = {
  hostname: 'h',
  arch: 'x64',
  platform: 'linux',
  cpuModel: 'cpu',
  cpuCores: 2,
  memoryBytes: 1e9,
  gpu: null,
  executionProviders: ['cpu' as const],
  onnxruntimeVersion: '1',
  nodeVersion: '20',
};

async function rolloutRig() {
  const db = openDatabase({ path: ':memory:' });
  const fleet = await openFleetStore({ sqlite: db });
  const published: string[] = [];
  const publisher = { publish: async (topic: string) => void published.push(topic) };
  const devices = new DeviceRepository(fleet);
  const models = new ModelRegistry(
    fleet,
    new LocalArtifactStore(mkdtempSync(join(tmpdir(), 'fleetml-revoked-'))),
  );
  const manifests = new ManifestService(fleet, { signing: { mode: 'online', keys } });
  const targets = new TargetService(fleet, publisher, manifests, {
    sign: (t) => signTarget(t, keys),
    devices,
    models,
  });
  const telemetry = new TelemetryRepository(fleet);
  const store = new RolloutStore(fleet);
  const engine = new RolloutEngine({
    store,
    devices,
    models,
    targets,
    telemetry,
    audit: new AuditLog(fleet),
    logger: pino({ level: 'silent' }),
  });
  for (const id of ['a', 'b']) {
    await devices.create({ id, name: id, secretHash: hashSecret(id), profile: null, hardware });
    await devices.setOnline(id, true, new Date().toISOString());
  }
  const model = await models.add(SAMPLE, { name: 'mnist' });
  /** The device reports the model active, with its benchmark, as an agent would. */
  const succeed = async (deviceId: string, m: ModelRecord) => {
    const version = (await targets.current(deviceId))!.version;
    const at = new Date().toISOString();
    await devices.applyState(deviceId, {
      v: 1,
      targetVersion: version,
      phase: 'active',
      activeModel: { modelId: m.id, sha256: m.sha256, version },
      progress: null,
      error: null,
      at,
    });
    await telemetry.addBench(deviceId, {
      v: 1,
      modelId: m.id,
      sha256: m.sha256,
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
      at,
    });
  };
  return { devices, targets, store, engine, model, published, succeed };
}

const targetsOf = (published: string[], deviceId: string) =>
  published.filter((t) => t === deviceTopic(deviceId, 'target')).length;

describe('a device revoked during a rollout', () => {
  let rig: Awaited<ReturnType<typeof rolloutRig>>;
  beforeEach(async () => {
    rig = await rolloutRig();
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
