import { rm } from 'node:fs/promises';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLOUD_USERNAME } from '../../cloud/fleet/broker/acl.js';
import { deviceTopic, encodeJson } from '../../shared/protocol/index.js';
import { buildMlp } from '../integration/agent/fixtures.js';
import { startTestAgent, type TestAgent } from '../integration/agent/harness.js';
import { backendOf } from '../integration/support/backend-mode.js';
import { startTestCloud, type TestCloud } from '../integration/support/test-cloud.js';
import { until } from './attack-support.js';

// Finding 2 of issue 12: whoever can publish on a device's target topic (here: anyone, the
// broker is open, as a rogue or compromised broker would be) tries to install an old, genuinely
// signed model with a huge target version, replays a genuine old target, and reports a version
// the cloud never issued. The device must refuse both targets, keep following the cloud, and the
// cloud must raise an alarm for the unknown version. On pg-mosquitto, Mosquitto refuses anonymous
// clients, so the attacker holds the cloud's own broker credentials (a leaked cloud password or a
// compromised broker): the device's defence and the cloud's alarm must hold all the same.
describe('attack: forged, replayed and high-version targets on the target topic', () => {
  let t: TestCloud;
  let a: TestAgent;
  let deviceId: string;

  beforeAll(async () => {
    t = await startTestCloud({ openBroker: true }, 'fleetml-forge-');
    a = await startTestAgent(t.cloud.mqttUrl, (await t.cloud.services.issueEnrollToken()).token);
    deviceId = a.agent.identity.deviceId;
  });
  afterAll(async () => {
    await a?.agent.stop();
    await t?.stop();
    if (a) await rm(a.dataDir, { recursive: true, force: true });
  });

  const deploy = async (seed: number, name: string) => {
    const s = t.cloud.services;
    const model = await s.models.add(buildMlp({ seed }), { name });
    await s.targets.setModel(deviceId, model);
    await until(
      `${name} active`,
      async () => (await s.devices.get(deviceId)).activeSha256 === model.sha256,
      60_000,
    );
    return { model, target: (await s.targets.current(deviceId))! };
  };
  const events = () => t.cloud.services.telemetry.events(deviceId, 200);
  const connectAttacker = (clientId: string) => {
    const external = backendOf(t.cloud);
    const credentials = external ? { username: CLOUD_USERNAME, password: external.broker.cloudPassword } : {};
    return mqtt.connectAsync(t.cloud.mqttUrl, { clientId, reconnectPeriod: 0, ...credentials });
  };

  it('refuses a forged high-version target and a replayed one, then follows the cloud again', async () => {
    const old = await deploy(51, 'lineage');
    const current = await deploy(52, 'lineage');
    const attacker = await connectAttacker('attacker');
    try {
      const topic = deviceTopic(deviceId, 'target');
      const eventsBefore = (await events()).length;
      // A forged target: a huge version around the old model's genuinely signed manifest.
      const forged = { ...old.target, version: 1_000_000, issuedAt: new Date().toISOString() };
      await attacker.publishAsync(topic, encodeJson(forged), { qos: 1, retain: true });
      // The device says it refused it (or, if it fell for it, switches model).
      await until(
        'the device to react to the forged target',
        async () =>
          (await events()).length > eventsBefore ||
          (await t.cloud.services.devices.get(deviceId)).activeSha256 !== current.model.sha256,
        30_000,
      );
      expect((await t.cloud.services.devices.get(deviceId)).activeSha256).toBe(current.model.sha256);
      // A replay of the genuine older target.
      const replayBefore = (await events()).length;
      await attacker.publishAsync(topic, encodeJson(old.target), { qos: 1, retain: true });
      await new Promise((r) => setTimeout(r, 1500));
      expect((await t.cloud.services.devices.get(deviceId)).activeSha256).toBe(current.model.sha256);
      expect((await events()).length).toBeGreaterThanOrEqual(replayBefore);
    } finally {
      await attacker.endAsync(true);
    }
    // The cloud's next real target still gets through.
    const next = await deploy(53, 'lineage');
    expect((await t.cloud.services.devices.get(deviceId)).activeSha256).toBe(next.model.sha256);
  });

  it('raises an alarm in the API and /metrics when a device reports a version the cloud never issued', async () => {
    const attacker = await connectAttacker('attacker-2');
    try {
      const report = {
        v: 1,
        targetVersion: 1_000_000,
        phase: 'active',
        activeModel: { modelId: 'm-ffffffff', sha256: 'f'.repeat(64), version: 1_000_000 },
        progress: null,
        error: null,
        at: new Date().toISOString(),
      };
      await attacker.publishAsync(deviceTopic(deviceId, 'state'), encodeJson(report), { qos: 1 });
      const alarms = await until(
        'an alarm on the device',
        async () => {
          const list = await t.cloud.services.deviceAudit.alarms(deviceId);
          return list.length > 0 ? list : undefined;
        },
        10_000,
      );
      expect(alarms[0].message).toMatch(/never issued|issued at most/);
      const api = await t.api('GET', `/api/devices/${deviceId}`);
      expect(api.body.alarms?.map((x: { code: string }) => x.code)).toContain('UNKNOWN_VERSION');
      const metrics = await fetch(`${t.cloud.httpUrl}/metrics`, {
        headers: { authorization: `Bearer ${t.cloud.adminToken}` },
      }).then((r) => r.text());
      expect(metrics).toMatch(new RegExp(`fleetml_device_alarms\\{[^}]*device="${deviceId}"[^}]*\\} 1`));
    } finally {
      await attacker.endAsync(true);
    }
  });
});
