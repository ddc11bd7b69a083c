import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FleetmlProcess, RecordingProxy, type SpawnedCloud, spawnCloud, waitFor } from './support.js';

// Issue 12, finding 3 (transport half): enrollment token, device secret and fleet key travelled
// in clear text over the default plain MQTT. A sniffer on the device's link (a recording TCP
// proxy between agent and broker) watches a real agent enroll and connect against
// `fleetml cloud start` with its default configuration, using the URL `tokens enroll` prints.
describe('attack: a sniffer on the default configuration', () => {
  let cloud: SpawnedCloud;
  let proxy: RecordingProxy;
  let agent: FleetmlProcess | undefined;

  beforeAll(async () => {
    cloud = await spawnCloud();
    proxy = await RecordingProxy.start(cloud.mqttPort);
  }, 120_000);
  afterAll(async () => {
    await agent?.kill('SIGTERM');
    await proxy?.close();
    await cloud?.stop();
  });

  it('sees no enrollment token, device secret or fleet key', async () => {
    const caFile = join(cloud.dir, 'ca.pem');
    const enroll = new FleetmlProcess([
      'tokens',
      'enroll',
      '--api',
      `${cloud.httpUrl}/api`,
      '--token',
      cloud.token,
      '--ca-out',
      caFile,
    ]);
    expect((await enroll.exited).code).toBe(0);
    const field = (name: string) =>
      enroll.lines
        .find((l) => l.startsWith(`${name}: `))
        ?.slice(name.length + 2)
        .trim() ?? '';
    const issued = {
      token: field('token'),
      brokerUrl: field('broker'),
      caPem: await readFile(caFile, 'utf8').catch(() => null),
    };
    expect(issued.token).toMatch(/^enr_/);
    // The agent reaches the broker through the sniffer: same scheme, the proxy's address.
    const url = new URL(issued.brokerUrl);
    const viaProxy = `${url.protocol}//127.0.0.1:${proxy.port}`;
    const dataDir = join(cloud.dir, 'agent');
    agent = new FleetmlProcess([
      'agent',
      'start',
      '--cloud',
      viaProxy,
      '--enroll-token',
      issued.token,
      '--data-dir',
      dataDir,
      ...(issued.caPem ? ['--ca', caFile] : []),
    ]);
    const identity = await waitFor(
      'the agent to enroll',
      () =>
        readFile(join(dataDir, 'identity.json'), 'utf8').then(
          (t) => JSON.parse(t) as { deviceId: string; secret: string; fleetPublicKey: string | null },
          () => undefined,
        ),
      90_000,
    );
    // Connected as itself: the device secret has crossed the link by now.
    await waitFor(
      'the device online',
      async () => {
        const response = await fetch(`${cloud.httpUrl}/api/devices`, {
          headers: { authorization: `Bearer ${cloud.token}` },
        });
        const { devices } = (await response.json()) as { devices: Array<{ id: string; online: boolean }> };
        return devices.some((d) => d.id === identity.deviceId && d.online);
      },
      60_000,
    );
    const wire = proxy.captured();
    expect(wire.length).toBeGreaterThan(1000);
    expect(identity.fleetPublicKey).toBeTruthy();
    for (const [what, secret] of [
      ['enrollment token', issued.token],
      ['device secret', identity.secret],
      ['fleet key', identity.fleetPublicKey ?? ''],
      ['device id', identity.deviceId],
    ] as const) {
      expect(wire.includes(Buffer.from(secret)), `${what} seen on the wire`).toBe(false);
    }
  }, 180_000);
});
