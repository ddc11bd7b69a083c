import { rm } from 'node:fs/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { FakeCloud, startAedes } from './fake-cloud.js';
import { startTestAgent, type TestAgent } from './harness.js';

// Telemetry produced while the broker is down waits in the on-device SQLite outbox and arrives,
// in order, after the broker returns; (device, seq) identifies every record exactly once.
describe('telemetry store-and-forward (aedes restart)', () => {
  let t: TestAgent | undefined;
  let cloud: FakeCloud | undefined;
  let broker: Awaited<ReturnType<typeof startAedes>> | undefined;

  afterAll(async () => {
    await t?.agent.stop();
    await cloud?.close();
    await broker?.close();
    if (t) await rm(t.dataDir, { recursive: true, force: true });
  });

  it('drains the backlog after an outage with no gaps and no double counting', async () => {
    broker = await startAedes();
    const port = broker.port;
    cloud = await FakeCloud.start(broker.url);
    t = await startTestAgent(broker.url, cloud.token, {
      telemetryIntervalS: 0.2,
      telemetryAckTimeoutMs: 1000,
      telemetryAck: 'cloud',
    });
    const deviceId = t.agent.identity.deviceId;
    await cloud.waitFor(() => cloud!.telemetry.length >= 2, 10_000, 'first telemetry');

    await broker.close();
    await new Promise((r) => setTimeout(r, 400));
    const seqBeforeOutage = Math.max(...cloud.telemetry.map((r) => r.record.seq));
    await new Promise((r) => setTimeout(r, 1500));
    expect(t.agent.outbox.size).toBeGreaterThanOrEqual(4);
    const outageEnd = new Date().toISOString();

    broker = await startAedes(port);
    await cloud.waitFor(
      () => cloud!.telemetry.find((r) => r.record.at > outageEnd),
      20_000,
      'telemetry after the broker returned',
    );
    const contiguous = () => {
      const u = [
        ...new Set(cloud!.telemetry.filter((r) => r.deviceId === deviceId).map((r) => r.record.seq)),
      ];
      return u.length === Math.max(...u) - Math.min(...u) + 1 && Math.min(...u) === 1;
    };
    await cloud.waitFor(contiguous, 20_000, 'the backlog to drain').catch(() => {});
    const seqs = cloud.telemetry.filter((r) => r.deviceId === deviceId).map((r) => r.record.seq);
    const unique = [...new Set(seqs)];
    const max = Math.max(...unique);
    // Every sequence number from the first to the last arrived: nothing lost in the outage.
    expect(unique.sort((a, b) => a - b)).toEqual(
      Array.from({ length: max - unique[0] + 1 }, (_, i) => unique[0] + i),
    );
    expect(max).toBeGreaterThan(seqBeforeOutage + 4);
    expect(unique[0]).toBe(1);
    // What was produced during the outage left the outbox only after the cloud acknowledged it.
    await cloud.waitFor(() => t!.agent.outbox.size <= 3, 5000, 'outbox drained');
    // At-least-once on the wire; duplicates only from the batch in flight at the cut, which
    // the cloud drops by (device, seq).
    expect(seqs.length - unique.length).toBeLessThanOrEqual(100);
  });
});
