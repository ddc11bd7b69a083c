import { readFile } from 'node:fs/promises';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deviceTopic } from '../../shared/protocol/index.js';
import { FleetHarness, waitFor } from '../integration/e2e/fleet-harness.js';

// Issue 12, finding 4: a revoked device's second session `fleetml-<id>:<suffix>` survived
// revocation, kept publishing and received a new target; the API accepted a deployment (201).
const SAMPLE = new URL('../../cloud/samples/mnist-mlp.onnx', import.meta.url);

describe('attack: a revoked device keeps a second session (embedded broker)', () => {
  let fleet: FleetHarness;

  beforeAll(async () => {
    fleet = await FleetHarness.start(1);
  }, 90_000);
  afterAll(async () => fleet?.stop());

  it('closes every session at once, refuses the device from then on, and refuses deployments to it', async () => {
    const { deviceId, secret } = fleet.agents[0].identity;
    const url = fleet.cloud.mqttUrl;
    const second = await mqtt.connectAsync(url, {
      clientId: `fleetml-${deviceId}:second`,
      username: deviceId,
      password: secret,
      reconnectPeriod: 0,
    });
    const targets: string[] = [];
    second.on('message', (topic) => targets.push(topic));
    await second.subscribeAsync(deviceTopic(deviceId, 'target'));
    const closed = new Promise<void>((resolve) => second.once('close', () => resolve()));

    const api = (method: string, path: string, body?: unknown) =>
      fetch(`${fleet.cloud.httpUrl}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${fleet.cloud.adminToken}`,
          ...(body ? { 'content-type': 'application/json' } : {}),
        },
        body: body ? JSON.stringify(body) : undefined,
      });
    expect((await api('POST', `/api/devices/${deviceId}/revoke`)).status).toBe(200);
    // "At once": the broker closes the session itself; generous bound for a loaded machine.
    await waitFor(
      'the second session to be closed by the broker',
      () =>
        Promise.race([closed.then(() => true), new Promise<false>((r) => setTimeout(() => r(false), 100))]),
      10_000,
    );

    // It cannot come back, and what it publishes goes nowhere.
    const again = await mqtt
      .connectAsync(url, {
        clientId: `fleetml-${deviceId}:third`,
        username: deviceId,
        password: secret,
        reconnectPeriod: 0,
        connectTimeout: 5000,
      })
      .then(
        (c) => c.endAsync().then(() => 'connected'),
        (e: Error) => e.message,
      );
    expect(again).toMatch(/Not authorized|Bad username/i);

    const model = await fleet.cloud.services.models.add(await readFile(SAMPLE), { name: 'after-revoke' });
    const deploy = await api('POST', '/api/deployments', { model: model.id, devices: [deviceId] });
    expect(deploy.status).toBe(409);
    expect(((await deploy.json()) as { error: { code: string } }).error.code).toBe('DEVICE_REVOKED');
    const rollout = await api('POST', '/api/rollouts', { model: model.id, devices: [deviceId] });
    expect(rollout.status).toBe(409);
    expect((await fleet.cloud.services.targets.current(deviceId))?.model?.manifest.sha256).not.toBe(
      model.sha256,
    );
    second.end(true);
  });
});
