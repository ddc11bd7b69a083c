import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentHandle } from '../../agent/main.js';
import type { CloudHandle } from '../../cloud/main.js';
import { createLogger } from '../../shared/logger.js';
import { onPgMosquitto, startCloudForTests, storedTelemetry } from '../integration/support/backend-mode.js';
import { startFaultAgent } from './fleet.js';
import { producedSeq, telemetryCounts, waitFor } from './procs.js';
import { PausableProxy } from './proxy.js';

const OUTBOX_MAX = 30;
const INTERVAL_S = 0.1;

// Scenario 4: the agent's network is cut (a black hole, then refused connections) while it
// samples telemetry every 100 ms into a 30-record outbox. A short cut fits the outbox: the
// backlog drains in order and complete. A long one overflows it: the oldest records go, the
// agent says so (TELEMETRY_DROPPED event, droppedTotal in its records), and the rest arrives.
describe('fault: network cut with telemetry piling up', () => {
  let dir: string;
  let cloud: CloudHandle;
  let proxy: PausableProxy;
  let agent: AgentHandle;
  let dataDir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleetml-fault-net-'));
    cloud = await startCloudForTests({
      dataDir: join(dir, 'cloud'),
      httpPort: 0,
      mqttPort: 0,
      logger: createLogger({ name: 'cloud', level: 'silent' }),
    });
    proxy = await PausableProxy.start(Number(new URL(cloud.mqttUrl).port));
    dataDir = join(dir, 'agent');
    agent = await startFaultAgent(proxy.url, (await cloud.services.issueEnrollToken()).token, dataDir, {
      telemetryIntervalS: INTERVAL_S,
      outboxMaxRecords: OUTBOX_MAX,
      keepaliveS: 1,
    });
  }, 60_000);

  afterAll(async () => {
    await agent?.stop().catch(() => {});
    await proxy?.close();
    await cloud?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const deviceId = () => agent.identity.deviceId;
  const rows = () => storedTelemetry(cloud, deviceId());
  const produced = () => producedSeq(join(dataDir, 'outbox.sqlite'));
  /** Cuts the network for `ms`; returns the highest seq the cloud had stored when the cut began. */
  async function cut(ms: number, expectFull: boolean): Promise<number> {
    const before = (await rows()).at(-1)?.seq ?? 0;
    proxy.pause();
    await new Promise((r) => setTimeout(r, ms));
    if (expectFull) expect(agent.outbox.size).toBe(OUTBOX_MAX);
    expect(agent.transport.connected).toBe(false);
    proxy.resume();
    return before;
  }
  /** Records stored after `after`, in seq order, must have arrived in seq order. */
  async function expectInOrder(after: number) {
    const later = (await rows()).filter((r) => r.seq > after);
    for (let i = 1; i < later.length; i++) expect(later[i].receivedAt >= later[i - 1].receivedAt).toBe(true);
  }

  it('a short cut: the backlog drains complete and in order', async () => {
    await waitFor('telemetry before the cut', async () => (await rows()).length >= 5, 30_000);
    const before = await cut(2000, false);
    const during = produced();
    expect(during - before).toBeGreaterThan(5);
    await waitFor('the backlog to drain', async () => ((await rows()).at(-1)?.seq ?? 0) >= during, 30_000);
    const counts = telemetryCounts(await rows());
    expect(counts.missing).toEqual([]);
    expect(agent.outbox.dropped).toBe(0);
    await expectInOrder(before);
  });

  it('a long cut overflows the bound: the oldest records go, and the drop is reported', async () => {
    // Start from an acknowledged outbox, so that what is dropped is the backlog of this cut.
    await waitFor('the outbox to be acknowledged', () => agent.outbox.size <= 2, 30_000);
    const before = await cut(6000, true);
    const atResume = produced();
    await waitFor('the backlog to drain', async () => ((await rows()).at(-1)?.seq ?? 0) >= atResume, 30_000);
    const dropped = agent.outbox.dropped;
    expect(dropped).toBeGreaterThan(0);
    // Exactly the oldest records of the backlog are missing: one contiguous run right after
    // what the cloud had before the cut, as many as the agent counted.
    // (A batch stored just before the cut whose ack was lost in it, or sent on the reconnect
    // and stored while the still-full outbox dropped it before the ack came back, is counted
    // as dropped but not lost: the count is an upper bound by the records of about one ack
    // round trip at 10 a second, longer through PostgreSQL's commit than SQLite's.)
    const { missing } = telemetryCounts(await rows());
    expect(missing.length).toBeGreaterThan(0);
    expect(missing.length).toBeLessThanOrEqual(dropped);
    expect(missing.length).toBeGreaterThanOrEqual(dropped - (onPgMosquitto ? 10 : 3));
    expect(missing[0]).toBeGreaterThan(before - 5);
    expect(missing.at(-1)! - missing[0] + 1).toBe(missing.length);
    await expectInOrder(before);
    // The loss is itself reported: an event with its code, and the counter in the records.
    // (Several events when the outbox stays full for a few samples after the reconnect.)
    const reported = async () =>
      (await cloud.services.telemetry.events(deviceId()))
        .filter((e) => e.code === 'TELEMETRY_DROPPED')
        .reduce((sum, e) => sum + Number(/: (\d+) oldest/.exec(e.message)?.[1] ?? 0), 0);
    await waitFor(
      'TELEMETRY_DROPPED events for every drop',
      async () => (await reported()) === agent.outbox.dropped,
      30_000,
    );
    await agent.telemetry.tick();
    expect(agent.outbox.peek(1000).at(-1)?.droppedTotal).toBe(agent.outbox.dropped);
    console.log(
      JSON.stringify({
        scenario: 'network-cut',
        produced: produced(),
        dropped,
        missing: [missing[0], missing.at(-1)],
        refused: proxy.refused,
      }),
    );
  });
});
