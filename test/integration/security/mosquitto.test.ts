import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveConfig } from '../../../agent/config.js';
import { type AgentHandle, startAgent } from '../../../agent/main.js';
import { CLOUD_USERNAME } from '../../../cloud/fleet/broker/acl.js';
import { writeMosquittoSetup } from '../../../cloud/fleet/broker/dynsec-setup.js';
import { newSecret } from '../../../cloud/fleet/identity/secrets.js';
import type { CloudHandle } from '../../../cloud/main.js';
import { createLogger } from '../../../shared/logger.js';
import { deviceTopic } from '../../../shared/protocol/index.js';
import { waitFor } from '../e2e/fleet-harness.js';
import { startCloudForTests, storedTelemetry } from '../support/backend-mode.js';

// The same least-privilege rules on Debian's Mosquitto, from the files fleetml generates.
const MOSQUITTO = '/usr/sbin/mosquitto';
const SAMPLE = new URL('../../../cloud/samples/mnist-mlp.onnx', import.meta.url);
const quiet = () => createLogger({ name: 't', level: 'silent' });

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as { port: number }).port;
  await new Promise((r) => server.close(r));
  return port;
}

describe.skipIf(!existsSync(MOSQUITTO))('external Mosquitto with generated password file and ACL', () => {
  let dir: string;
  let broker: ChildProcess;
  let cloud: CloudHandle;
  const agents: AgentHandle[] = [];
  let url: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleetml-mosq-'));
    // Mosquitto started as root drops to its own user, which must read the generated files.
    await chmod(dir, 0o755);
    const port = await freePort();
    url = `mqtt://127.0.0.1:${port}`;
    const cloudPassword = newSecret();
    const { conf } = await writeMosquittoSetup({ dir: join(dir, 'mosquitto'), port, cloudPassword });
    broker = spawn(MOSQUITTO, ['-c', conf], { stdio: 'ignore' });
    await waitFor('mosquitto', () =>
      mqtt.connectAsync(url, { username: CLOUD_USERNAME, password: cloudPassword, reconnectPeriod: 0 }).then(
        (c) => c.endAsync().then(() => true),
        () => false,
      ),
    );
    cloud = await startCloudForTests({
      dataDir: join(dir, 'cloud'),
      httpPort: 0,
      mqttUrl: url,
      mqttUsername: CLOUD_USERNAME,
      mqttPassword: cloudPassword,
      mosquittoDynsec: true,
      logger: quiet(),
    });
    for (let i = 0; i < 2; i++) {
      const { token } = await cloud.services.issueEnrollToken();
      agents.push(
        await startAgent({
          config: resolveConfig({
            cloudUrl: url,
            enrollToken: token,
            dataDir: join(dir, `agent-${i}`),
            benchRuns: 5,
            reconnectPeriodMs: 200,
          }),
          logger: quiet(),
        }),
      );
    }
    await waitFor(
      'agents online',
      async () => (await cloud.services.devices.list()).filter((d) => d.online).length === 2,
    );
  }, 60_000);

  afterAll(async () => {
    for (const a of agents) await a.stop().catch(() => {});
    await cloud?.stop();
    broker?.kill('SIGTERM');
    await rm(dir, { recursive: true, force: true });
  });

  it('enrolls devices as dynamic security clients (hashed secrets) and delivers a model', async () => {
    const security = await readFile(join(dir, 'mosquitto', 'dynamic-security.json'), 'utf8');
    for (const a of agents) expect(security).toContain(`"fleetml-${a.identity.deviceId}"`);
    expect(security).not.toContain(agents[0].identity.secret);
    const model = await cloud.services.models.add(await readFile(SAMPLE), { name: 'mnist' });
    await cloud.services.targets.setModel(agents[0].identity.deviceId, model);
    const bench = await waitFor('benchmark via mosquitto', () =>
      cloud.services.telemetry.latestBench(agents[0].identity.deviceId),
    );
    expect(bench.sha256).toBe(model.sha256);
  });

  it("keeps a device out of another device's topics", async () => {
    const [a, b] = agents.map((x) => x.identity);
    const client = await mqtt.connectAsync(url, {
      clientId: `fleetml-${a.deviceId}`,
      username: a.deviceId,
      password: a.secret,
      reconnectPeriod: 0,
    });
    const received: string[] = [];
    client.on('message', (topic) => received.push(topic));
    await client.subscribeAsync(deviceTopic(b.deviceId, 'target')).catch(() => undefined);
    await client.subscribeAsync(deviceTopic(a.deviceId, 'target'));
    await waitFor(
      'own retained target',
      () => received.includes(deviceTopic(a.deviceId, 'target')) || undefined,
      5000,
    ).catch(() => undefined);
    const record = {
      seq: 777_777,
      at: new Date().toISOString(),
      cpuLoad: 1,
      memUsedBytes: 1,
      memTotalBytes: 2,
      tempC: null,
      modelId: null,
      latency: null,
    };
    await client
      .publishAsync(deviceTopic(b.deviceId, 'telemetry'), JSON.stringify({ v: 1, records: [record] }), {
        qos: 1,
      })
      .catch(() => undefined);
    await new Promise((r) => setTimeout(r, 500));
    await client.endAsync();
    expect(received).not.toContain(deviceTopic(b.deviceId, 'target'));
    expect((await storedTelemetry(cloud, b.deviceId)).filter((r) => r.seq === 777_777)).toEqual([]);
  });

  it('refuses unknown credentials', async () => {
    const outcome = await mqtt
      .connectAsync(url, { username: 'someone', password: 'guess', reconnectPeriod: 0, connectTimeout: 3000 })
      .then(
        (c) => c.endAsync().then(() => 'connected'),
        (e: Error) => e.message,
      );
    expect(outcome).toMatch(/Not authorized|Bad username/i);
  });
});
