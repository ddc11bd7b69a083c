import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deviceTopic } from '../../../shared/protocol/index.js';
import { FleetHarness, waitFor } from '../e2e/fleet-harness.js';
import { embeddedOnly } from '../support/backend-mode.js';

// Least privilege on the embedded broker, with real agents enrolled through the real cloud:
// what a stolen device's credentials can and cannot do.
async function connect(url: string, options: mqtt.IClientOptions): Promise<MqttClient> {
  return mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 5000, ...options });
}

async function refused(url: string, options: mqtt.IClientOptions): Promise<string> {
  try {
    const client = await connect(url, options);
    await client.endAsync();
    return 'accepted';
  } catch (error) {
    return (error as Error).message;
  }
}

// The embedded broker's own authenticator and ACL; Mosquitto's are tested in mosquitto.test.ts.
const embedded = embeddedOnly("the embedded broker's authenticator; Mosquitto's ACL is mosquitto.test.ts");
describe.skipIf(embedded.skip)(embedded.title('broker access control'), () => {
  let fleet: FleetHarness;
  let a: { id: string; secret: string };
  let b: { id: string; secret: string };
  beforeAll(async () => {
    fleet = await FleetHarness.start(2);
    a = { id: fleet.agents[0].identity.deviceId, secret: fleet.agents[0].identity.secret };
    b = { id: fleet.agents[1].identity.deviceId, secret: fleet.agents[1].identity.secret };
  }, 60_000);
  afterAll(async () => fleet?.stop());

  it('refuses anonymous clients, wrong secrets and borrowed client ids', async () => {
    const url = fleet.cloud.mqttUrl;
    expect(await refused(url, {})).toMatch(/Not authorized|Bad username|refused/i);
    expect(await refused(url, { clientId: `fleetml-${a.id}:x`, username: a.id, password: 'wrong' })).not.toBe(
      'accepted',
    );
    // Device A's valid secret under B's client id would evict B: refused.
    expect(await refused(url, { clientId: `fleetml-${b.id}`, username: a.id, password: a.secret })).not.toBe(
      'accepted',
    );
    expect(await refused(url, { clientId: 'anything', username: 'cloud', password: 'guess' })).not.toBe(
      'accepted',
    );
  });

  it("does not let a device read another device's target or use wildcards", async () => {
    const client = await connect(fleet.cloud.mqttUrl, {
      clientId: `fleetml-${a.id}:probe`,
      username: a.id,
      password: a.secret,
    });
    const outcome = async (topic: string) =>
      client.subscribeAsync(topic).then(
        (granted) => granted[0].qos,
        () => 'refused',
      );
    expect(await outcome(deviceTopic(a.id, 'target'))).toBe(0);
    for (const topic of [
      deviceTopic(b.id, 'target'),
      'fleetml/v1/d/+/target',
      '#',
      'fleetml/v1/enroll/+/reply',
    ]) {
      expect(await outcome(topic)).toBe('refused');
    }
    await client.endAsync();
  });

  it('does not let a device publish telemetry in the name of another', async () => {
    const before = await fleet.cloud.services.telemetry.count(b.id);
    const rejectedBefore = fleet.cloud.routerStats.rejected;
    const client = await connect(fleet.cloud.mqttUrl, {
      clientId: `fleetml-${a.id}:probe2`,
      username: a.id,
      password: a.secret,
    });
    const record = {
      seq: 999_999,
      at: new Date().toISOString(),
      cpuLoad: 1,
      memUsedBytes: 1,
      memTotalBytes: 2,
      tempC: null,
      modelId: null,
      latency: null,
    };
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    client.publish(deviceTopic(b.id, 'telemetry'), JSON.stringify({ v: 1, records: [record] }), { qos: 1 });
    await closed; // the broker drops a client that publishes where it may not
    client.end(true);
    await new Promise((r) => setTimeout(r, 300));
    const rows = fleet.cloud.services.db
      .prepare('SELECT count(*) n FROM telemetry WHERE device_id = ? AND seq = 999999')
      .get(b.id) as { n: number };
    expect(rows.n).toBe(0);
    expect(fleet.cloud.routerStats.rejected).toBe(rejectedBefore);
    expect(await fleet.cloud.services.telemetry.count(b.id)).toBeGreaterThanOrEqual(before);
  });

  it('does not let a device publish a target state', async () => {
    const client = await connect(fleet.cloud.mqttUrl, {
      clientId: `fleetml-${a.id}:probe3`,
      username: a.id,
      password: a.secret,
    });
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    client.publish(
      deviceTopic(a.id, 'target'),
      JSON.stringify({ v: 1, deviceId: a.id, version: 10_000, model: null }),
      {
        qos: 1,
        retain: true,
      },
    );
    await closed;
    client.end(true);
    expect((await fleet.cloud.services.targets.current(a.id))?.version ?? 0).toBeLessThan(10_000);
  });

  it('disconnects a revoked device and refuses it afterwards', async () => {
    const response = await fetch(`${fleet.cloud.httpUrl}/api/devices/${b.id}/revoke`, {
      method: 'POST',
      headers: { authorization: `Bearer ${fleet.cloud.adminToken}` },
    });
    expect(response.status).toBe(200);
    await waitFor('revoked device offline', () => !fleet.agents[1].transport.connected);
    expect(
      await refused(fleet.cloud.mqttUrl, {
        clientId: `fleetml-${b.id}:again`,
        username: b.id,
        password: b.secret,
      }),
    ).not.toBe('accepted');
  });
});
