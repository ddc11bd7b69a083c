import { mkdir, rm, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256Hex } from '../../../shared/hash.js';
import { generateFleetKeyPair, signManifest } from '../../../shared/manifest/index.js';
import type { Manifest } from '../../../shared/protocol/index.js';
import { FakeCloud, startAedes } from './fake-cloud.js';
import { buildGolden, buildMlp, makeManifest, makeTarget } from './fixtures.js';
import { startTestAgent, type TestAgent } from './harness.js';

// Signed delivery against a real broker: every rejection is a coded event, and whatever goes
// wrong, the model that was active stays active.
describe('signed delivery and safe install (aedes)', () => {
  const keys = generateFleetKeyPair();
  let broker: Awaited<ReturnType<typeof startAedes>>;
  let cloud: FakeCloud;
  let t: TestAgent;
  let version = 0;
  let good: Manifest;

  beforeAll(async () => {
    broker = await startAedes();
    cloud = await FakeCloud.start(broker.url, keys);
    t = await startTestAgent(broker.url, cloud.token);
  });
  afterAll(async () => {
    await t?.agent.stop();
    await cloud?.close();
    await broker?.close();
    await rm(t.dataDir, { recursive: true, force: true });
  });

  const deviceId = () => t.agent.identity.deviceId;

  /** Publishes a target and waits for its outcome: the failed state report with its error code. */
  async function expectRejected(manifest: Manifest, signature: string | null, code: string): Promise<void> {
    const v = ++version;
    const eventsBefore = cloud.events.length;
    await cloud.publishTarget(makeTarget(deviceId(), v, manifest, keys, signature));
    const state = await cloud.waitFor(
      () => cloud.states.find((s) => s.report.targetVersion === v && s.report.phase === 'failed'),
      15_000,
      `failure of target ${v}`,
    );
    expect(state.report.error?.code).toBe(code);
    expect(state.report.activeModel?.sha256).toBe(good.sha256);
    expect(cloud.events.slice(eventsBefore).map((e) => e.event.code)).toContain(code);
  }

  it('pins the fleet key at enrollment and installs a signed model with its golden check', async () => {
    expect(t.agent.identity.fleetPublicKey).toBe(keys.publicKey);
    const model = buildMlp({ seed: 1 });
    const golden = await buildGolden(model);
    await cloud.store.put(model);
    await cloud.store.put(golden);
    good = makeManifest(model, { version: 5 }, golden);
    await cloud.publishTarget(makeTarget(deviceId(), ++version, good, keys));
    const bench = await cloud.waitFor(
      () => cloud.bench.find((b) => b.report.sha256 === good.sha256),
      20_000,
      'bench of v5',
    );
    // The golden spot check and the thermal marks travel with the benchmark.
    expect(bench.report.golden).toMatchObject({ cases: 3 });
    expect(bench.report.golden!.maxAbsDiff).toBeLessThanOrEqual(1e-4);
    expect(typeof bench.report.throttled).toBe('boolean');
    expect(bench.report.peakRssBytes).toBeGreaterThan(0);
    // The event travels on its own topic and can arrive after the benchmark: wait for it.
    const event = await cloud.waitFor(
      () => cloud.events.find((e) => e.event.code === 'GOLDEN_OK'),
      5000,
      'golden check event',
    );
    expect(event.event.code).toBe('GOLDEN_OK');
  });

  it('answers a target published again (the cloud reconnected) with its current state', async () => {
    // A broker restart loses the reports a device sent while no cloud was subscribed; the cloud
    // publishes its targets again once subscribed, and this answer is how it learns them.
    await cloud.waitFor(
      () => cloud.states.find((s) => s.report.targetVersion === version && s.report.phase === 'active'),
      15_000,
      'the active state of the first target',
    );
    await new Promise((r) => setTimeout(r, 1000)); // nothing else in flight from the first target
    const before = cloud.states.length;
    await cloud.publishTarget(makeTarget(deviceId(), version, good, keys));
    const answer = await cloud.waitFor(
      () => cloud.states.slice(before).find((s) => s.report.targetVersion === version),
      15_000,
      'the state answering a target published again',
    );
    expect(answer.report).toMatchObject({ phase: 'active', activeModel: { sha256: good.sha256 } });
    // With the benchmark of the active model, unchanged: a rollout waits for it too.
    const first = cloud.bench.find((b) => b.report.sha256 === good.sha256)!;
    await cloud.waitFor(
      () =>
        cloud.bench.filter((b) => b.report.sha256 === good.sha256 && b.report.at === first.report.at)
          .length >= 2,
      15_000,
      'the benchmark sent again',
    );
  });

  it('rejects a tampered manifest, a wrong key and an unsigned manifest', async () => {
    const signature = signManifest(good, keys);
    await expectRejected({ ...good, version: 6 }, signature, 'MANIFEST_SIGNATURE');
    await expectRejected(
      { ...good, version: 6 },
      signManifest({ ...good, version: 6 }, generateFleetKeyPair()),
      'MANIFEST_SIGNATURE',
    );
    await expectRejected({ ...good, version: 6 }, null, 'MANIFEST_SIGNATURE');
  });

  it('rejects an expired manifest and a rollback to a lower version', async () => {
    const day = 86_400_000;
    const expired = {
      ...good,
      version: 6,
      issuedAt: new Date(Date.now() - 3 * day).toISOString(),
      expiresAt: new Date(Date.now() - 2 * day).toISOString(),
    };
    await expectRejected(expired, signManifest(expired, keys), 'MANIFEST_EXPIRED');
    const older = makeManifest(buildMlp({ seed: 2 }), { version: 4 });
    await cloud.store.put(buildMlp({ seed: 2 }));
    await expectRejected(older, signManifest(older, keys), 'MANIFEST_ROLLBACK');
  });

  it('leaves the old model active when the new one fails its golden check or does not load', async () => {
    const model = buildMlp({ seed: 3 });
    const wrongGolden = await buildGolden(model, 16, 2, 0.5);
    await cloud.store.put(model);
    await cloud.store.put(wrongGolden);
    const m1 = makeManifest(model, { version: 7 }, wrongGolden);
    await expectRejected(m1, signManifest(m1, keys), 'GOLDEN_MISMATCH');

    const junk = Buffer.from('this is not an onnx model, just bytes '.repeat(50));
    await cloud.store.put(junk);
    const m2 = makeManifest(junk, { version: 8 });
    await expectRejected(m2, signManifest(m2, keys), 'RUNTIME_LOAD');
  });

  it('retries an artifact whose bytes do not match the manifest hash, keeping the old model', async () => {
    const model = buildMlp({ seed: 4 });
    const claimed = sha256Hex(Buffer.from('something else'));
    // A corrupt store entry: bytes under a name they do not hash to.
    const path = cloud.store.pathOf(claimed);
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, model);
    const m = makeManifest(model, { version: 9, sha256: claimed });
    await expectRejected(m, signManifest(m, keys), 'TRANSFER_HASH');
    // Retryable: it comes back after backoff, still failing, still on the old model.
    await cloud.waitFor(
      () => cloud.events.filter((e) => e.event.code === 'TRANSFER_HASH').length >= 2,
      10_000,
      'a retry',
    );
  });

  it('converges on a newer good target after failures, and ignores replays of old ones', async () => {
    const model = buildMlp({ seed: 5 });
    await cloud.store.put(model);
    const m = makeManifest(model, { version: 10 });
    const v = ++version;
    await cloud.publishTarget(makeTarget(deviceId(), v, m, keys));
    const measured = await cloud.waitFor(
      () => cloud.bench.find((b) => b.report.sha256 === m.sha256),
      20_000,
      'bench of v10',
    );
    const benches = cloud.bench.length;
    await cloud.publishTarget(makeTarget(deviceId(), v, m, keys));
    await cloud.publishTarget(makeTarget(deviceId(), 1, good, keys));
    await new Promise((r) => setTimeout(r, 700));
    // Nothing installed or measured again: a replay is answered with the state and the last
    // benchmark report, unchanged.
    for (const b of cloud.bench.slice(benches)) expect(b.report).toEqual(measured.report);
    const last = cloud.states.filter((s) => s.deviceId === deviceId()).at(-1);
    expect(last?.report.activeModel?.sha256).toBe(m.sha256);
  });
});
