import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { type DeployFlags, register, rolloutPolicy } from '../../../../cloud/cli/deploy.js';
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
import { PI_HARDWARE } from '../../../support/hardware.js';

const SAMPLE = readFileSync(new URL('../../../../cloud/samples/mnist-mlp.onnx', import.meta.url));
const keys = generateFleetKeyPair();
const DEVICES = ['a', 'b', 'c', 'd', 'e'];

/**
 * The rollout engine on a real store and target service, with a clock the test moves: the pacing
 * rules are about minutes, and a test must not wait for them.
 */
async function rig() {
  const fleet = await openFleetStore({ sqlite: openDatabase({ path: ':memory:' }) });
  const devices = new DeviceRepository(fleet);
  const models = new ModelRegistry(
    fleet,
    new LocalArtifactStore(mkdtempSync(join(tmpdir(), 'fleetml-pace-'))),
  );
  const targets = new TargetService(
    fleet,
    { publish: async () => {} },
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
  for (const id of DEVICES) {
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
  return { engine, store, model, clock, report, statuses };
}

/** The policy `fleetml deploy mnist --to … ARGV` sends (its other flags at their defaults). */
function deployPolicy(argv: string[]) {
  const program = new Command('fleetml');
  register(program);
  const deploy = program.commands.find((c) => c.name() === 'deploy')!;
  deploy.parseOptions(['mnist', '--to', DEVICES.join(','), ...argv]);
  return rolloutPolicy(deploy.opts() as DeployFlags);
}

describe('deploy --max-per-minute: the engine starts at most that many devices in any minute', () => {
  it('starts 2 of 5 at once, the next 2 a minute later, the last one a minute after that', async () => {
    const { engine, model, clock, statuses } = await rig();
    const policy = deployPolicy(['--max-per-minute', '2']);
    expect(policy.maxPerMinute).toBe(2);
    const rollout = await engine.create(model.id, { devices: DEVICES }, policy, 't');
    const started = async () => (await statuses(rollout.id)).filter((s) => s !== 'queued').length;
    expect(await started()).toBe(2);
    await engine.tick();
    expect(await started()).toBe(2); // still inside the first minute
    clock.offsetMs = 30_000;
    await engine.tick();
    expect(await started()).toBe(2);
    clock.offsetMs = 61_000;
    await engine.tick();
    expect(await started()).toBe(4);
    clock.offsetMs = 122_000;
    await engine.tick();
    expect(await started()).toBe(5);
  });

  it('without it, every device of the wave starts at once', async () => {
    const { engine, model, statuses } = await rig();
    const rollout = await engine.create(model.id, { devices: DEVICES }, deployPolicy([]), 't');
    expect(await statuses(rollout.id)).toEqual(DEVICES.map(() => 'in_progress'));
  });
});

describe('deploy --abort-min-devices: failures are judged only once that many devices finished', () => {
  it('with 3, one failure among the first finished does not abort; the failure rate over 3 does', async () => {
    const { engine, store, model, report, statuses } = await rig();
    const policy = deployPolicy(['--abort-min-devices', '3', '--abort-failure-percent', '20']);
    expect(policy).toMatchObject({ abortMinDevices: 3, abortFailurePercent: 20 });
    const rollout = await engine.create(model.id, { devices: DEVICES }, policy, 't');
    await report('a', model, false);
    await engine.tick();
    await report('b', model, true);
    await engine.tick();
    expect((await store.get(rollout.id))?.status).toBe('running');
    expect(await statuses(rollout.id)).toEqual([
      'failed',
      'succeeded',
      'in_progress',
      'in_progress',
      'in_progress',
    ]);
    await report('c', model, true);
    await engine.tick();
    const done = await store.get(rollout.id);
    expect(done?.status).toBe('aborted');
    expect(done?.reason).toMatch(/1 of 3 devices failed \(33 % > 20 %\)/);
  });

  it('at the default of 1, the first failure aborts', async () => {
    const { engine, store, model, report } = await rig();
    const rollout = await engine.create(model.id, { devices: DEVICES }, deployPolicy([]), 't');
    await report('a', model, false);
    await engine.tick();
    expect((await store.get(rollout.id))?.status).toBe('aborted');
  });
});
