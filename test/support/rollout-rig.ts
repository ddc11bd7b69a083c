import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { LocalArtifactStore } from '../../cloud/fleet/delivery/local-artifacts.js';
import { ManifestService } from '../../cloud/fleet/delivery/manifests.js';
import { TargetService } from '../../cloud/fleet/delivery/targets.js';
import { hashSecret } from '../../cloud/fleet/identity/secrets.js';
import { TelemetryRepository } from '../../cloud/fleet/ingest/telemetry.js';
import { AuditLog } from '../../cloud/fleet/inventory/audit.js';
import { DeviceRepository } from '../../cloud/fleet/inventory/devices.js';
import { type ModelRecord, ModelRegistry } from '../../cloud/fleet/inventory/models.js';
import { RolloutEngine } from '../../cloud/fleet/rollouts/engine.js';
import { RolloutStore } from '../../cloud/fleet/rollouts/store.js';
import { openDatabase } from '../../cloud/fleet/store/db.js';
import { openFleetStore } from '../../cloud/fleet/store/kysely.js';
import { generateFleetKeyPair, signTarget } from '../../shared/manifest/index.js';
import { PI_HARDWARE } from './hardware.js';

const SAMPLE = readFileSync(new URL('../../cloud/samples/mnist-mlp.onnx', import.meta.url));
const keys = generateFleetKeyPair();

/**
 * The rollout engine on a real store and target service (SQLite in memory), with a clock the
 * test moves (pacing and waiting rules are about minutes, and a test must not wait for them) and
 * a log of the target topics published.
 */
export async function rolloutRig(deviceIds: readonly string[]) {
  const fleet = await openFleetStore({ sqlite: openDatabase({ path: ':memory:' }) });
  const devices = new DeviceRepository(fleet);
  const models = new ModelRegistry(
    fleet,
    new LocalArtifactStore(mkdtempSync(join(tmpdir(), 'fleetml-rig-'))),
  );
  const published: string[] = [];
  const targets = new TargetService(
    fleet,
    { publish: async (topic) => void published.push(topic) },
    new ManifestService(fleet, { signing: { mode: 'online', keys } }),
    { sign: (t) => signTarget(t, keys), devices, models },
  );
  const telemetry = new TelemetryRepository(fleet);
  const store = new RolloutStore(fleet);
  const clock = { offsetMs: 0 };
  const engine = new RolloutEngine({
    store,
    devices,
    models,
    targets,
    telemetry,
    audit: new AuditLog(fleet),
    logger: pino({ level: 'silent' }),
    now: () => Date.now() + clock.offsetMs,
  });
  for (const id of deviceIds) {
    await devices.create({ id, name: id, secretHash: hashSecret(id), profile: null, hardware: PI_HARDWARE });
    await devices.setOnline(id, true, new Date().toISOString());
  }
  const model = await models.add(SAMPLE, { name: 'mnist' });
  /** The device reports the outcome of its target as an agent would: active (with a benchmark) or failed. */
  const report = async (deviceId: string, m: ModelRecord, ok: boolean) => {
    const version = (await targets.current(deviceId))!.version;
    const at = new Date().toISOString();
    await devices.applyState(deviceId, {
      v: 1,
      targetVersion: version,
      phase: ok ? 'active' : 'failed',
      activeModel: ok ? { modelId: m.id, sha256: m.sha256, version } : null,
      progress: null,
      error: ok ? null : { code: 'RUNTIME_LOAD', message: 'onnxruntime could not load the model' },
      at,
    });
    if (!ok) return;
    await telemetry.addBench(deviceId, {
      ...{ v: 1, modelId: m.id, sha256: m.sha256, ep: 'cpu', runs: 10, warmupRuns: 1 },
      ...{ p50Ms: 1, p90Ms: 1, p99Ms: 1, maxMs: 1, meanMs: 1, throughput: 1000, loadMs: 1, at },
    });
  };
  const statuses = async (rolloutId: string) => (await store.executions(rolloutId)).map((e) => e.status);
  return { engine, store, devices, targets, model, clock, report, statuses, published };
}
