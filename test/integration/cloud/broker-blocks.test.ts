import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EmbeddedBroker, startEmbeddedBroker } from '../../../cloud/fleet/broker/embedded.js';
import { type FleetTls, loadOrCreateFleetTls } from '../../../cloud/fleet/identity/tls/fleet-ca.js';
import { waitFor } from '../../faults/procs.js';

const BLOCK = 64 * 1024;
const BLOCKS = 400;

// The embedded broker over mqtts, carrying what a rollout makes it carry: the cloud publishing
// 64 KiB blocks back to back while small messages flow the other way, through the connection
// wrapper of packet-guard.ts. (The stall that wrapper once caused, a 'readable' lost when aedes'
// read ended mid-packet, needs an interleaving this test cannot force: write-queue.test.ts
// checks its cause directly.)
describe('embedded broker under large packets', () => {
  let dir: string;
  let tls: FleetTls;
  let broker: EmbeddedBroker;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleetml-broker-blocks-'));
    tls = await loadOrCreateFleetTls({ dir });
    broker = await startEmbeddedBroker({
      port: 0,
      logger: pino({ level: 'silent' }),
      tls: { certPem: tls.certPem, keyPem: tls.keyPem },
    });
  });
  afterAll(async () => {
    await broker?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const connect = (clientId: string) =>
    mqtt.connectAsync(`mqtts://localhost:${broker.port}`, {
      clientId,
      ca: tls.caPem,
      rejectUnauthorized: true,
      reconnectPeriod: 0,
    });

  it('delivers every block of a burst, and the small messages in between', async () => {
    const cloud = await connect('fleetml-cloud-test');
    const device = await connect('fleetml-device-test');
    let blocks = 0;
    let bytes = 0;
    let acks = 0;
    device.on('message', (topic, payload) => {
      if (topic === 'fleetml/v1/d/x/transfer/blk') {
        blocks++;
        bytes += payload.length;
      }
    });
    cloud.on('message', () => acks++);
    await device.subscribeAsync('fleetml/v1/d/x/transfer/blk', { qos: 0 });
    await cloud.subscribeAsync('fleetml/v1/d/x/state', { qos: 1 });
    // Small QoS 1 messages from the device all along, as state and telemetry are.
    const chatter = setInterval(() => {
      for (let i = 0; i < 5; i++) device.publish('fleetml/v1/d/x/state', Buffer.alloc(300, i), { qos: 1 });
    }, 5);
    try {
      for (let i = 0; i < BLOCKS; i++) {
        // Odd sizes move packet boundaries across the TLS records.
        void cloud.publishAsync('fleetml/v1/d/x/transfer/blk', Buffer.alloc(BLOCK - (i % 7) * 13, i), {
          qos: 0,
        });
        if (i % 50 === 0) await new Promise((r) => setImmediate(r));
      }
      await waitFor(`all ${BLOCKS} blocks delivered`, () => blocks === BLOCKS, 120_000, 100);
    } finally {
      clearInterval(chatter);
      await Promise.all([cloud.endAsync(true), device.endAsync(true)]);
    }
    expect(blocks).toBe(BLOCKS);
    expect(bytes).toBe(
      Array.from({ length: BLOCKS }, (_, i) => BLOCK - (i % 7) * 13).reduce((a, b) => a + b),
    );
    expect(acks).toBeGreaterThan(0);
  });
});
