import { rm } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildMlp } from '../integration/agent/fixtures.js';
import { startTestAgent, type TestAgent } from '../integration/agent/harness.js';
import { startTestCloud, type TestCloud } from '../integration/support/test-cloud.js';
import { until } from './attack-support.js';

// Finding 6 of issue 12: every manifest the cloud issued had `golden: null`, so the on-device
// golden check never ran. Now the cloud computes golden inputs and outputs when a model is
// registered and names them in the signed manifest; the device checks them on its own execution
// provider and reports the measured fidelity. A model whose golden outputs do not match (here the
// cloud's stored golden set belongs to another model, as a corrupted registry would have it)
// must not activate: the device stays on the model it had.
describe('attack: golden outputs that do not match on the device', () => {
  let t: TestCloud;
  let a: TestAgent;
  let deviceId: string;

  beforeAll(async () => {
    t = await startTestCloud({}, 'fleetml-golden-');
    a = await startTestAgent(t.cloud.mqttUrl, (await t.cloud.services.issueEnrollToken()).token);
    deviceId = a.agent.identity.deviceId;
  });
  afterAll(async () => {
    await a?.agent.stop();
    await t?.stop();
    if (a) await rm(a.dataDir, { recursive: true, force: true });
  });

  const upload = async (seed: number, name: string) => {
    const response = await fetch(`${t.cloud.httpUrl}/api/models?name=${name}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${t.cloud.adminToken}`, 'content-type': 'application/octet-stream' },
      body: buildMlp({ seed }),
    });
    expect(response.status).toBe(201);
    return (await response.json()) as { id: string; sha256: string };
  };

  it('ships golden outputs with every upload and reports the fidelity measured on the device', async () => {
    const model = await upload(71, 'golden-a');
    const s = t.cloud.services;
    await s.targets.setModel(deviceId, await s.models.get(model.id));
    await until(
      'model active',
      async () => (await s.devices.get(deviceId)).activeSha256 === model.sha256,
      60_000,
    );
    const manifest = (await s.targets.current(deviceId))?.model?.manifest;
    expect(manifest?.golden).toBeTruthy();
    const fidelity = await until('the measured fidelity', () => s.deviceAudit.fidelity(deviceId), 10_000);
    expect(fidelity.sha256).toBe(model.sha256);
    expect(fidelity.cases).toBeGreaterThan(0);
    expect(fidelity.cosine).toBeGreaterThan(0.9999);
    expect(fidelity.maxAbs).toBeLessThan(1e-3);
    const api = await t.api('GET', `/api/devices/${deviceId}`);
    expect(api.body.fidelity.cases).toBe(fidelity.cases);
  });

  it('does not activate a model whose golden outputs do not match', async () => {
    const s = t.cloud.services;
    const good = (await s.devices.get(deviceId)).activeSha256;
    const other = await upload(72, 'golden-b');
    const victim = await upload(73, 'golden-c');
    // The registry names the other model's golden set for the victim.
    const otherGolden = (await s.goldens.find(other.id))!;
    await s.fleet.db
      .updateTable('goldens')
      .set({ sha256: otherGolden.sha256, size: otherGolden.size })
      .where('model_id', '=', victim.id)
      .execute();
    const eventsBefore = (await s.telemetry.events(deviceId, 500)).length;
    await s.targets.setModel(deviceId, await s.models.get(victim.id));
    const event = await until(
      'GOLDEN_MISMATCH from the device',
      async () => {
        const all = await s.telemetry.events(deviceId, 500);
        return all.slice(0, all.length - eventsBefore).find((e) => e.code === 'GOLDEN_MISMATCH');
      },
      60_000,
    );
    expect(event.message).toMatch(/cosine/);
    await until(
      'the device to settle',
      async () =>
        (await s.devices.get(deviceId)).phase !== 'downloading' &&
        (await s.devices.get(deviceId)).phase !== 'installing',
      30_000,
    );
    expect((await s.devices.get(deviceId)).activeSha256).toBe(good);
  });
});
