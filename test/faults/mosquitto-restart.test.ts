import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentHandle } from '../../agent/main.js';
import { CLOUD_USERNAME } from '../../cloud/fleet/broker/acl.js';
import { writeMosquittoSetup } from '../../cloud/fleet/broker/dynsec-setup.js';
import { newSecret } from '../../cloud/fleet/identity/secrets.js';
import type { CloudHandle } from '../../cloud/main.js';
import { createLogger } from '../../shared/logger.js';
import { deviceTopic } from '../../shared/protocol/index.js';
import { startCloudForTests, storedTelemetry } from '../integration/support/backend-mode.js';
import { auditTelemetry, startFaultAgent } from './fleet.js';
import { buildMlp } from './models.js';
import { freePort, waitFor } from './procs.js';

const MOSQUITTO = '/usr/sbin/mosquitto';
const quiet = () => createLogger({ name: 't', level: 'silent' });

// Scenario 2 on an external broker: Debian's mosquitto with fleetml's generated password file
// and ACL, stopped with SIGTERM and started again (no persistence: retained targets and
// sessions are gone) during a rollout and during telemetry.
describe.skipIf(!existsSync(MOSQUITTO))('fault: external mosquitto restarts', () => {
  let dir: string;
  let broker: ChildProcess | null = null;
  let cloud: CloudHandle;
  let url: string;
  let cloudPassword: string;
  const agents: Array<{ agent: AgentHandle; dataDir: string }> = [];

  const brokerUp = () =>
    waitFor('mosquitto to accept the cloud', () =>
      mqtt.connectAsync(url, { username: CLOUD_USERNAME, password: cloudPassword, reconnectPeriod: 0 }).then(
        (c) => c.endAsync().then(() => true),
        () => false,
      ),
    );
  const startBroker = async () => {
    broker = spawn(MOSQUITTO, ['-c', join(dir, 'mosquitto', 'mosquitto.conf')], { stdio: 'ignore' });
    await brokerUp();
  };
  const stopBroker = async () => {
    const child = broker!;
    broker = null;
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleetml-fault-mosq-'));
    // Mosquitto started as root drops to its own user, which must read the generated files.
    await chmod(dir, 0o755);
    const port = await freePort();
    url = `mqtt://127.0.0.1:${port}`;
    cloudPassword = newSecret();
    // What `fleetml broker mosquitto-config` writes (dynamic security; no persistence: retained
    // targets are gone after a restart and the cloud publishes them again).
    await writeMosquittoSetup({ dir: join(dir, 'mosquitto'), port, cloudPassword });
    await startBroker();
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
      // One token per device: on Mosquitto an enrollment token's client id is bound to it.
      const { token } = await cloud.services.issueEnrollToken();
      const dataDir = join(dir, `agent-${i}`);
      agents.push({ agent: await startFaultAgent(url, token, dataDir), dataDir });
    }
    await waitFor(
      'agents online',
      async () => (await cloud.services.devices.list()).filter((d) => d.online).length === 2,
    );
  }, 90_000);

  afterAll(async () => {
    for (const { agent } of agents) await agent.stop().catch(() => {});
    await cloud?.stop();
    broker?.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  });

  it('a rollout completes across a broker restart mid-transfer', async () => {
    const { models, rollouts, rolloutStore } = cloud.services;
    const model = await models.add(buildMlp({ inputs: 1024, hidden: 512, seed: 21 }), { name: 'mosq' });
    const rollout = await rollouts.create(
      model.id,
      { devices: agents.map((a) => a.agent.identity.deviceId) },
      {},
      'test',
    );
    await waitFor(
      'a transfer in progress',
      () => {
        const a = agents[0].agent;
        return (
          a.reconciler.currentPhase === 'downloading' && (a.downloader.lastStats?.receivedBlocks ?? 0) >= 5
        );
      },
      60_000,
      5,
    );
    await stopBroker();
    await new Promise((r) => setTimeout(r, 300));
    await startBroker();
    const done = await waitFor(
      'the rollout',
      async () => {
        const r = await rolloutStore.get(rollout.id);
        return r && r.status !== 'running' ? r : undefined;
      },
      90_000,
    );
    expect(done.status).toBe('succeeded');
    for (const { agent } of agents) {
      expect((await cloud.services.devices.get(agent.identity.deviceId)).activeSha256).toBe(model.sha256);
      expect(agent.reconciler.currentPhase).toBe('active');
    }
    // The restarted broker lost its retained messages; the cloud published the targets again,
    // so a device connecting now still finds its own. (Read with the cloud's credentials: on
    // Mosquitto a device's credentials work only under its own, busy, client id.)
    const { deviceId } = agents[0].agent.identity;
    const probe = await mqtt.connectAsync(url, {
      username: CLOUD_USERNAME,
      password: cloudPassword,
      reconnectPeriod: 0,
    });
    const retained = new Promise<Buffer>((resolve) =>
      probe.once('message', (_t, payload) => resolve(payload)),
    );
    await probe.subscribeAsync(deviceTopic(deviceId, 'target'));
    const target = JSON.parse((await retained).toString());
    await probe.endAsync();
    expect(target.model.manifest.sha256).toBe(model.sha256);
  });

  it('telemetry across a broker restart: nothing lost, nothing stored twice', async () => {
    await new Promise((r) => setTimeout(r, 500));
    await stopBroker();
    await new Promise((r) => setTimeout(r, 800));
    await startBroker();
    await new Promise((r) => setTimeout(r, 500));
    const audit = await auditTelemetry(agents, (deviceId) => storedTelemetry(cloud, deviceId));
    console.log(JSON.stringify({ scenario: 'mosquitto-restart', audit }));
    for (const a of audit) {
      expect(a.produced).toBeGreaterThan(10);
      expect(a.lost).toBe(0);
      expect(a.duplicated).toBe(0);
      expect(a.stored).toBe(a.produced);
    }
  });
});
