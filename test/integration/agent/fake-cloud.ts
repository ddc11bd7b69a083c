import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Aedes } from 'aedes';
import mqtt, { type MqttClient } from 'mqtt';
import { LocalArtifactStore } from '../../../cloud/fleet/delivery/local-artifacts.js';
import { createTransferServer, type TransferServer } from '../../../cloud/fleet/delivery/transfer-server.js';
import { FleetError } from '../../../shared/errors/index.js';
import { createLogger } from '../../../shared/logger.js';
import { type FleetKeyPair, fleetKeyFingerprint } from '../../../shared/manifest/index.js';
import {
  type BenchReport,
  CLOUD_SUBSCRIPTIONS,
  decodeJson,
  deviceTopic,
  type EventMessage,
  encodeJson,
  enrollReplyTopic,
  enrollRequestSchema,
  parseTopic,
  type StateReport,
  type TargetState,
  type TelemetryRecord,
} from '../../../shared/protocol/index.js';
import { TEST_FLEET_KEYS } from './fixtures.js';

/** An in-process aedes broker on a free loopback port. */
export async function startAedes(port = 0): Promise<{ url: string; port: number; close(): Promise<void> }> {
  const broker = await Aedes.createBroker();
  const server = net.createServer(broker.handle);
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const actual = (server.address() as net.AddressInfo).port;
  return {
    url: `mqtt://127.0.0.1:${actual}`,
    port: actual,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        broker.close(() => {});
        // Existing client sockets keep server.close() waiting; aedes closes them.
        setTimeout(resolve, 200);
      }),
  };
}

/** Plays the cloud's part with a plain MQTT client, the real ArtifactStore and transfer server. */
export class FakeCloud {
  client!: MqttClient;
  store!: LocalArtifactStore;
  transfer!: TransferServer;
  dir!: string;
  readonly bench: Array<{ deviceId: string; report: BenchReport }> = [];
  readonly telemetry: Array<{ deviceId: string; record: TelemetryRecord }> = [];
  readonly states: Array<{ deviceId: string; report: StateReport }> = [];
  readonly events: Array<{ deviceId: string; event: EventMessage }> = [];
  readonly status: Array<{ deviceId: string; online: boolean }> = [];
  readonly enrolled: string[] = [];
  token = 'test-token-123';
  fleetPublicKey: string | undefined;
  /** Delay before each block is published, ms (slows a transfer so a test can cut it mid-way). */
  blockDelayMs = 0;
  /** Enrollment requests still to refuse as a cloud whose store is unreachable does (STORE_UNAVAILABLE). */
  enrollOutageRequests = 0;
  /** Transfer requests still to refuse as a cloud whose store is unreachable does (STORE_UNAVAILABLE). */
  storeOutageRequests = 0;
  /** Acknowledge telemetry batches as the real cloud does after storing them. */
  ackTelemetry = true;
  private waiters: Array<() => void> = [];

  /** Offers `keys` (default TEST_FLEET_KEYS) at enrollment; its token carries their fingerprint. */
  static async start(url: string, keys: FleetKeyPair = TEST_FLEET_KEYS): Promise<FakeCloud> {
    const cloud = new FakeCloud();
    cloud.fleetPublicKey = keys.publicKey;
    cloud.token = `test-token-123.${fleetKeyFingerprint(keys.publicKey)}`;
    cloud.dir = await mkdtemp(join(tmpdir(), 'fleetml-cloud-'));
    cloud.store = new LocalArtifactStore(join(cloud.dir, 'artifacts'));
    await cloud.connect(url);
    return cloud;
  }

  async connect(url: string): Promise<void> {
    const logger = createLogger({ name: 'fake-cloud', level: 'silent' });
    this.client = mqtt.connect(url, {
      clientId: `cloud-${randomBytes(4).toString('hex')}`,
      reconnectPeriod: 200,
    });
    this.transfer = createTransferServer({
      store: this.store,
      authorize: async () => {
        if (this.storeOutageRequests <= 0) return true;
        this.storeOutageRequests--;
        throw new FleetError('STORE_UNAVAILABLE', 'the fleet store is not reachable (test outage)');
      },
      publish: async (topic, payload) => {
        if (this.blockDelayMs > 0) await new Promise((r) => setTimeout(r, this.blockDelayMs));
        await this.client.publishAsync(topic, payload, { qos: 0 });
      },
      logger,
    });
    this.client.on('message', (topic, payload) => this.onMessage(topic, payload));
    await new Promise<void>((resolve) => this.client.once('connect', () => resolve()));
    await this.client.subscribeAsync(CLOUD_SUBSCRIPTIONS, { qos: 1 });
  }

  private onMessage(topic: string, payload: Buffer): void {
    const parsed = parseTopic(topic);
    if (!parsed) return;
    try {
      if (parsed.kind === 'enroll' && parsed.direction === 'req') {
        const req = decodeJson(enrollRequestSchema, payload);
        if (this.enrollOutageRequests > 0) {
          this.enrollOutageRequests--;
          const refusal = {
            v: 1,
            ok: false,
            requestId: req.requestId,
            error: { code: 'STORE_UNAVAILABLE', message: 'the fleet store is not reachable (test outage)' },
          };
          void this.client.publishAsync(enrollReplyTopic(parsed.requestId), encodeJson(refusal), { qos: 1 });
          return;
        }
        const reply =
          req.token === this.token
            ? {
                v: 1,
                ok: true,
                // Request ids derive from the token now (one enroll client per token): number devices instead.
                deviceId: `dev-${this.enrolled.length + 1}-${randomBytes(3).toString('hex')}`,
                secret: randomBytes(16).toString('hex'),
                profile: null,
                ...(this.fleetPublicKey ? { fleetPublicKey: this.fleetPublicKey } : {}),
              }
            : { v: 1, ok: false, error: { code: 'ENROLL_TOKEN', message: 'unknown token' } };
        if (reply.ok) this.enrolled.push((reply as { deviceId: string }).deviceId);
        // Like the cloud: the reply goes to the topic the request came on (the client's id).
        void this.client.publishAsync(enrollReplyTopic(parsed.requestId), encodeJson(reply), { qos: 1 });
      } else if (parsed.kind === 'device') {
        const { deviceId, channel } = parsed;
        const body = channel === 'transfer/req' ? null : JSON.parse(payload.toString());
        if (channel === 'transfer/req') void this.transfer.handleRequest(deviceId, payload);
        else if (channel === 'bench') this.bench.push({ deviceId, report: body });
        else if (channel === 'state') this.states.push({ deviceId, report: body });
        else if (channel === 'event') this.events.push({ deviceId, event: body });
        else if (channel === 'status') this.status.push({ deviceId, online: body.online });
        else if (channel === 'telemetry') {
          for (const record of body.records) this.telemetry.push({ deviceId, record });
          if (this.ackTelemetry && body.records.length > 0) {
            const ack = { v: 1, from: body.records[0].seq, to: body.records.at(-1).seq };
            void this.client.publishAsync(deviceTopic(deviceId, 'telemetry/ack'), encodeJson(ack), {
              qos: 1,
            });
          }
        }
      }
    } catch {
      // the fake cloud ignores what it cannot parse
    }
    for (const w of this.waiters.splice(0)) w();
  }

  async publishTarget(target: TargetState | Buffer | string): Promise<void> {
    const deviceId =
      Buffer.isBuffer(target) || typeof target === 'string' ? this.enrolled[0] : target.deviceId;
    const payload = Buffer.isBuffer(target) || typeof target === 'string' ? target : encodeJson(target);
    await this.client.publishAsync(deviceTopic(deviceId, 'target'), payload, { qos: 1, retain: true });
  }

  /** Resolves when `predicate` holds, checking after every message; rejects after `timeoutMs`. */
  async waitFor<T>(
    predicate: () => T | undefined | false,
    timeoutMs = 15_000,
    what = 'condition',
  ): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = predicate();
      if (value) return value;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 250));
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  async close(): Promise<void> {
    await this.client.endAsync(true);
    await rm(this.dir, { recursive: true, force: true });
  }
}
