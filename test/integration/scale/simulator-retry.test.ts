import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSimulation } from '../../../cloud/simulator/fleet.js';
import { FakeCloud, startAedes } from '../agent/fake-cloud.js';
import { buildMlp, makeManifest, makeTarget } from '../agent/fixtures.js';

// Simulated devices must fail and retry as agents do, or a benchmark's rollout waits for a
// device that gave up: during a PostgreSQL restart the transfer server refuses block requests
// (STORE_UNAVAILABLE), and a simulated device used to report a final failure and stop there.
describe('simulated device: a refused download', () => {
  let broker: Awaited<ReturnType<typeof startAedes>>;
  let cloud: FakeCloud;
  beforeAll(async () => {
    broker = await startAedes();
    cloud = await FakeCloud.start(broker.url);
  });
  afterAll(async () => {
    await cloud?.close();
    await broker?.close();
  });

  it('enrolls after a retryable refusal (the cloud’s store busy), as the agent does', async () => {
    cloud.enrollOutageRequests = 2;
    const enrolledBefore = cloud.enrolled.length;
    const sim = startSimulation({
      cloud: broker.url,
      enrollToken: cloud.token,
      devices: 1,
      durationS: 60,
      telemetryIntervalS: 5,
      rampS: 0,
      enrollRetryS: 120, // re-asks after a refusal come sooner than this
      namePrefix: 'enroll-retry',
    });
    try {
      await cloud.waitFor(
        () => sim.counters.connected === 1,
        40_000,
        'the device enrolled after two refusals',
      );
      expect(cloud.enrollOutageRequests).toBe(0);
      expect(cloud.enrolled.length).toBe(enrolledBefore + 1);
    } finally {
      sim.stop();
      await sim.done;
    }
  }, 90_000);

  it('is retried after a pause when the refusal is retryable, and fails for good when the artifact is not offered', async () => {
    const sim = startSimulation({
      cloud: broker.url,
      enrollToken: cloud.token,
      devices: 1,
      durationS: 120,
      telemetryIntervalS: 5,
      rampS: 0,
      namePrefix: 'retry',
    });
    try {
      await cloud.waitFor(() => sim.counters.connected === 1, 30_000, 'the simulated device');
      const deviceId = sim.devices[0].identity.deviceId;
      const model = buildMlp({ seed: 3 });
      await cloud.store.put(model);
      const manifest = makeManifest(model);
      cloud.storeOutageRequests = 1;
      await cloud.publishTarget(makeTarget(deviceId, 1, manifest));
      const refused = await cloud.waitFor(
        () => cloud.states.find((s) => s.report.phase === 'failed'),
        30_000,
        'the refused download reported',
      );
      expect(refused.report.error?.code).toBe('TRANSFER_TRUNCATED'); // retryable: the rollout waits
      expect(refused.report.error?.message).toMatch(/STORE_UNAVAILABLE/);
      const active = await cloud.waitFor(
        () => cloud.states.find((s) => s.report.phase === 'active' && s.report.targetVersion === 1),
        30_000,
        'the download tried again and the model active',
      );
      expect(active.report.activeModel?.sha256).toBe(manifest.sha256);
      expect(sim.counters.transferFailures).toBe(1);

      // An artifact the cloud does not have: ARTIFACT_NOT_FOUND, final, and not asked for again.
      const missing = makeManifest(buildMlp({ seed: 4 }), { version: 2 });
      await cloud.publishTarget(makeTarget(deviceId, 2, missing));
      const gone = await cloud.waitFor(
        () => cloud.states.find((s) => s.report.phase === 'failed' && s.report.targetVersion === 2),
        30_000,
        'the missing artifact reported',
      );
      expect(gone.report.error?.code).toBe('ARTIFACT_NOT_FOUND');
      const failures = sim.counters.transferFailures;
      await new Promise((r) => setTimeout(r, 6000)); // longer than the retry pause
      expect(sim.counters.transferFailures).toBe(failures);
    } finally {
      sim.stop();
      await sim.done;
    }
  }, 120_000);
});
