import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CloudHandle, startCloud } from '../../../cloud/main.js';
import { startSimulation } from '../../../cloud/simulator/fleet.js';
import { createLogger } from '../../../shared/logger.js';
import { Mosquitto, mosquittoBinary } from '../agent/mosquitto.js';

const binary = mosquittoBinary();
const skipReason = binary || process.env.CI ? null : 'mosquitto is not installed (.ci/run installs it)';
const quiet = () => createLogger({ name: 't', level: 'silent' });

/** Telemetry records each replica's ingest queue was handed, and how many of those were already stored. */
function ingested(cloud: CloudHandle) {
  const stats = cloud.services.monitor.ingest.stats;
  return { records: stats.records, duplicates: stats.duplicates };
}

// Two cloud replicas on one SQLite file behind a real Mosquitto 2: with MQTT 5 shared
// subscriptions each device message reaches one replica; without them, both.
describe.skipIf(skipReason !== null)(
  `cloud replicas on Mosquitto ${skipReason ? `(skipped: ${skipReason})` : ''}`,
  () => {
    let broker: Mosquitto;
    let dir: string;

    beforeAll(async () => {
      broker = await Mosquitto.start(binary ?? '/usr/sbin/mosquitto');
      dir = await mkdtemp(join(tmpdir(), 'fleetml-replicas-'));
    });
    afterAll(async () => {
      await broker?.close();
      await rm(dir, { recursive: true, force: true });
    });

    const startPair = async (name: string, mqttSharedGroup?: null) => {
      const start = () =>
        startCloud({
          dataDir: join(dir, name),
          httpPort: 0,
          mqttUrl: broker.url,
          mqttSharedGroup,
          logger: quiet(),
        });
      const a = await start();
      const b = await start();
      return [a, b] as const;
    };

    const simulate = async (cloud: CloudHandle, devices: number, prefix: string) => {
      const { token } = await cloud.services.tokens.createEnrollToken({ uses: devices });
      return startSimulation({
        cloud: broker.url,
        enrollToken: token,
        devices,
        durationS: 8,
        telemetryIntervalS: 0.5,
        rampS: 1,
        drainS: 10,
        namePrefix: prefix,
      }).done;
    };

    it('handles each device message once across two replicas and spreads the load', async () => {
      const [a, b] = await startPair('shared');
      try {
        const result = await simulate(a, 6, 'shared');
        expect(result.online).toBe(6);
        expect(result.recordsAcked).toBe(result.recordsSent);
        const [ia, ib] = [ingested(a), ingested(b)];
        // Both replicas took a share of the telemetry…
        expect(ia.records).toBeGreaterThan(0);
        expect(ib.records).toBeGreaterThan(0);
        // …and together exactly what the devices sent: no message was handled twice.
        expect(ia.records + ib.records).toBe(result.recordsSent + result.recordsResent);
        expect(ia.duplicates + ib.duplicates).toBe(result.recordsResent);
        expect(await a.services.telemetryCount()).toBe(result.recordsSent);
        // Enrollment went through the shared subscription too: one device per simulated agent.
        const simulated = (await a.services.devices.list()).filter((d) => d.name.startsWith('shared-'));
        expect(simulated).toHaveLength(6);
      } finally {
        await a.stop();
        await b.stop();
      }
    }, 120_000);

    it('without shared subscriptions both replicas handle every message (the control)', async () => {
      const [a, b] = await startPair('plain', null);
      try {
        const result = await simulate(a, 2, 'plain');
        const [ia, ib] = [ingested(a), ingested(b)];
        expect(ia.records + ib.records).toBeGreaterThanOrEqual(2 * result.recordsSent);
        expect(ia.duplicates + ib.duplicates).toBeGreaterThanOrEqual(result.recordsSent);
      } finally {
        await a.stop();
        await b.stop();
      }
    }, 120_000);

    it('has exactly one leader, and the other replica leads within 15 s after it stops', async () => {
      const [a, b] = await startPair('leader');
      let stopped: CloudHandle | null = null;
      try {
        expect([a.isLeader(), b.isLeader()].filter(Boolean)).toHaveLength(1);
        const [leader, follower] = a.isLeader() ? [a, b] : [b, a];
        const t0 = Date.now();
        await leader.stop();
        stopped = leader;
        while (!follower.isLeader() && Date.now() - t0 < 15_000) await new Promise((r) => setTimeout(r, 100));
        expect(follower.isLeader()).toBe(true);
      } finally {
        if (stopped !== a) await a.stop();
        if (stopped !== b) await b.stop();
      }
    }, 60_000);
  },
);
