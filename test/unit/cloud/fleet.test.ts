import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { beforeEach, describe, expect, it } from 'vitest';
import { LocalArtifactStore } from '../../../cloud/fleet/delivery/local-artifacts.js';
import { ManifestService } from '../../../cloud/fleet/delivery/manifests.js';
import { TargetService } from '../../../cloud/fleet/delivery/targets.js';
import { EnrollmentLedger } from '../../../cloud/fleet/identity/enroll-requests.js';
import { hashSecret } from '../../../cloud/fleet/identity/secrets.js';
import { TokenRepository } from '../../../cloud/fleet/identity/tokens.js';
import { createMessageRouter } from '../../../cloud/fleet/ingest/router.js';
import { directIngest, SqliteTelemetryWriter } from '../../../cloud/fleet/ingest/sqlite-records.js';
import { TelemetryRepository } from '../../../cloud/fleet/ingest/telemetry.js';
import { DeviceRepository } from '../../../cloud/fleet/inventory/devices.js';
import { ModelRegistry } from '../../../cloud/fleet/inventory/models.js';
import { type Db, openDatabase } from '../../../cloud/fleet/store/db.js';
import { type FleetStore, openFleetStore } from '../../../cloud/fleet/store/kysely.js';
import { generateFleetKeyPair, signTarget } from '../../../shared/manifest/index.js';
import {
  deviceTopic,
  enrollReplySchema,
  enrollReplyTopic,
  enrollRequestTopic,
} from '../../../shared/protocol/index.js';

const SAMPLE = readFileSync(new URL('../../../cloud/samples/mnist-mlp.onnx', import.meta.url));
const hardware = {
  hostname: 'bench-box',
  arch: 'x64',
  platform: 'linux',
  cpuModel: 'Xeon',
  cpuCores: 2,
  memoryBytes: 24e9,
  gpu: null,
  executionProviders: ['cpu' as const],
  onnxruntimeVersion: '1.30.0',
  nodeVersion: process.version,
};

class RecordingPublisher {
  readonly messages: Array<{ topic: string; payload: Buffer; retain: boolean }> = [];
  async publish(topic: string, payload: Buffer, options: { retain?: boolean } = {}) {
    this.messages.push({ topic, payload, retain: options.retain ?? false });
  }
}

let db: Db;
let fleet: FleetStore;
let dir: string;
beforeEach(async () => {
  db = openDatabase({ path: ':memory:' });
  fleet = await openFleetStore({ sqlite: db });
  dir = mkdtempSync(join(tmpdir(), 'fleetml-fleet-'));
});

describe('enrollment tokens', () => {
  it('are single-use by default and refuse revoked or expired tokens', async () => {
    const tokens = new TokenRepository(fleet);
    const { token } = await tokens.createEnrollToken();
    await tokens.consumeEnrollToken(token);
    await expect(tokens.consumeEnrollToken(token)).rejects.toThrow(/used up/);
    const revoked = (await tokens.createEnrollToken({ uses: 5 })).token;
    await tokens.revokeEnrollToken(revoked);
    await expect(tokens.consumeEnrollToken(revoked)).rejects.toThrow(/revoked/);
    const expired = (await tokens.createEnrollToken({ ttlSeconds: -1 })).token;
    await expect(tokens.consumeEnrollToken(expired)).rejects.toThrow(/expired/);
  });

  it('stores only hashes of API tokens and enforces roles', async () => {
    const tokens = new TokenRepository(fleet);
    const token = await tokens.createApiToken('ops', 'operator');
    expect(JSON.stringify(db.prepare('SELECT * FROM api_tokens').all())).not.toContain(token);
    expect((await tokens.apiTokenRole(token))?.role).toBe('operator');
    expect(await tokens.apiTokenRole(`${token}x`)).toBeUndefined();
  });
});

describe('targets', () => {
  it('grow their version on every change and are published retained', async () => {
    const publisher = new RecordingPublisher();
    const devices = new DeviceRepository(fleet);
    await devices.create({ id: 'dev-1', name: 'dev', secretHash: hashSecret('s'), profile: null, hardware });
    const models = new ModelRegistry(fleet, new LocalArtifactStore(dir));
    const model = await models.add(SAMPLE, { name: 'mnist' });
    const keys = generateFleetKeyPair();
    const targets = new TargetService(
      fleet,
      publisher,
      new ManifestService(fleet, { signing: { mode: 'online', keys } }),
      { sign: (t) => signTarget(t, keys), devices, models },
    );
    const first = await targets.setModel('dev-1', model);
    const second = await targets.setModel('dev-1', model);
    expect(second.version).toBe(first.version + 1);
    expect(second.model?.manifest.sha256).toBe(model.sha256);
    expect(second.model?.manifest.inputs[0]).toEqual({
      name: 'input',
      shape: ['batch', 1, 28, 28],
      type: 'float32',
    });
    expect(publisher.messages.map((m) => [m.topic, m.retain])).toEqual([
      [deviceTopic('dev-1', 'target'), true],
      [deviceTopic('dev-1', 'target'), true],
    ]);
    expect(await targets.republishAll()).toBe(1);
  });

  it('refuses a model that is not ONNX', async () => {
    const models = new ModelRegistry(fleet, new LocalArtifactStore(dir));
    await expect(models.add(Buffer.from('garbage bytes'), { name: 'bad' })).rejects.toMatchObject({
      code: 'ONNX_DECODE',
    });
    expect(await models.list()).toEqual([]);
  });
});

describe('message router', () => {
  function setup() {
    const publisher = new RecordingPublisher();
    const devices = new DeviceRepository(fleet);
    const tokens = new TokenRepository(fleet);
    const telemetry = new TelemetryRepository(fleet);
    const router = createMessageRouter({
      devices,
      enrollments: new EnrollmentLedger(fleet),
      telemetry,
      ingest: directIngest(new SqliteTelemetryWriter(db), (id, at) => devices.touch(id, at)),
      publisher,
      logger: pino({ level: 'silent' }),
    });
    return { publisher, devices, tokens, telemetry, router };
  }

  it('enrolls a device with a valid token and refuses a bad one', async () => {
    const { publisher, devices, tokens, router } = setup();
    const { token } = await tokens.createEnrollToken();
    const request = { v: 1, requestId: 'req1', token, agentVersion: '0.1.0', hardware };
    await router.handle(enrollRequestTopic('req1'), Buffer.from(JSON.stringify(request)));
    const reply = enrollReplySchema.parse(JSON.parse(publisher.messages[0].payload.toString()));
    expect(reply.ok).toBe(true);
    expect(await devices.list()).toHaveLength(1);
    await router.handle(
      enrollRequestTopic('req2'),
      Buffer.from(JSON.stringify({ ...request, requestId: 'req2' })),
    );
    const refused = enrollReplySchema.parse(JSON.parse(publisher.messages[1].payload.toString()));
    expect(refused).toMatchObject({ ok: false, error: { code: 'ENROLL_TOKEN' } });
    expect(await devices.list()).toHaveLength(1);
  });

  it('answers a re-sent enrollment request (lost reply) with the same identity, naming the request', async () => {
    const { publisher, devices, tokens, router } = setup();
    const { token } = await tokens.createEnrollToken();
    const request = { v: 1, requestId: 'req-lost-reply', token, agentVersion: '0.1.0', hardware };
    for (let i = 0; i < 2; i++)
      await router.handle(enrollRequestTopic('enroll-topic'), Buffer.from(JSON.stringify(request)));
    const [first, second] = publisher.messages.map((m) =>
      enrollReplySchema.parse(JSON.parse(m.payload.toString())),
    );
    expect(publisher.messages.map((m) => m.topic)).toEqual([
      enrollReplyTopic('enroll-topic'),
      enrollReplyTopic('enroll-topic'),
    ]);
    expect(first).toMatchObject({ ok: true, requestId: 'req-lost-reply' });
    expect(second).toEqual(first);
    expect(await devices.list()).toHaveLength(1);
  });

  it('drops malformed messages with a code and keeps handling good ones', async () => {
    const { devices, telemetry, router } = setup();
    await devices.create({ id: 'dev-1', name: 'dev', secretHash: hashSecret('s'), profile: null, hardware });
    const topic = deviceTopic('dev-1', 'telemetry');
    await router.handle(topic, Buffer.from('{"v":1,'));
    await router.handle(topic, Buffer.from(JSON.stringify({ v: 1, records: [{ seq: 'x' }] })));
    await router.handle(deviceTopic('ghost', 'telemetry'), Buffer.from('{}'));
    await router.handle('fleetml/v1/d/dev-1/nonsense', Buffer.from('{}'));
    expect(router.stats.rejectedByCode).toEqual({
      MSG_NOT_JSON: 1,
      MSG_SCHEMA: 1,
      FORBIDDEN: 1,
      MSG_TOPIC: 1,
    });
    const record = {
      seq: 1,
      at: new Date().toISOString(),
      cpuLoad: 12,
      memUsedBytes: 1,
      memTotalBytes: 2,
      tempC: null,
      modelId: null,
      latency: null,
    };
    const batch = Buffer.from(JSON.stringify({ v: 1, records: [record] }));
    await router.handle(topic, batch);
    await router.handle(topic, batch); // a resent batch is stored once
    expect(await telemetry.count('dev-1')).toBe(1);
    expect(router.stats.handled).toBe(2);
  });
});
