import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveConfig } from '../../agent/config.js';
import { type AgentHandle, startAgent } from '../../agent/main.js';
import type { CloudHandle } from '../../cloud/main.js';
import { createLogger } from '../../shared/logger.js';
import { ENROLL_USERNAME, enrollCredentials } from '../../shared/protocol/index.js';
import { startCloudForTests } from '../integration/support/backend-mode.js';
import { FleetmlProcess, freePort, waitFor } from './support.js';

// Issue 12, findings 5 and 4 on Debian's Mosquitto: with the public enrollment credentials
// (`enroll`/`enroll`) and a device's client id, anyone evicted that device (9 times in 20 s).
// Here Mosquitto runs exactly the configuration `fleetml broker mosquitto-config` writes.
const MOSQUITTO = '/usr/sbin/mosquitto';
const PLUGIN = '/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so';

async function attempt(url: string, options: mqtt.IClientOptions): Promise<string> {
  return mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 5000, ...options }).then(
    (c) => c.endAsync().then(() => 'connected'),
    (e: Error) => e.message,
  );
}

describe.skipIf(!existsSync(MOSQUITTO) || !existsSync(PLUGIN))(
  'attack: session eviction on Mosquitto',
  () => {
    let dir: string;
    let broker: ChildProcess;
    const brokerLog: string[] = [];
    let cloud: CloudHandle;
    let agent: AgentHandle;
    let url: string;

    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), 'fleetml-sec-mosq-'));
      // Mosquitto started as root drops to its own user, which must reach the generated files.
      await chmod(dir, 0o755);
      const port = await freePort();
      url = `mqtt://127.0.0.1:${port}`;
      const config = new FleetmlProcess([
        'broker',
        'mosquitto-config',
        '--dir',
        join(dir, 'mosquitto'),
        '--port',
        String(port),
        '--json',
      ]);
      expect((await config.exited).code).toBe(0);
      const { password, conf } = JSON.parse(config.lines.find((l) => l.startsWith('{')) ?? '{}');
      broker = spawn(MOSQUITTO, ['-v', '-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
      for (const stream of [broker.stdout!, broker.stderr!])
        stream.on('data', (d) => brokerLog.push(String(d)));
      await waitFor('mosquitto', () =>
        attempt(url, { username: 'cloud', password }).then((r) => r === 'connected'),
      );
      // On FLEETML_TEST_BACKEND=pg-mosquitto the cloud keeps its state in PostgreSQL.
      cloud = await startCloudForTests({
        dataDir: join(dir, 'cloud'),
        httpPort: 0,
        mqttUrl: url,
        mqttUsername: 'cloud',
        mqttPassword: password,
        mosquittoDynsec: true,
        logger: createLogger({ name: 't', level: 'silent' }),
      });
      const response = await fetch(`${cloud.httpUrl}/api/enroll-tokens`, {
        method: 'POST',
        headers: { authorization: `Bearer ${cloud.adminToken}`, 'content-type': 'application/json' },
        body: '{}',
      });
      const { token } = (await response.json()) as { token: string };
      agent = await startAgent({
        config: resolveConfig({
          cloudUrl: url,
          enrollToken: token,
          dataDir: join(dir, 'agent'),
          reconnectPeriodMs: 200,
          telemetryIntervalS: 1,
        }),
        logger: createLogger({ name: 'a', level: 'silent' }),
      });
      await waitFor(
        'device online',
        async () => (await cloud.services.devices.list()).some((d) => d.online),
        60_000,
      );
    }, 120_000);

    afterAll(async () => {
      await agent?.stop().catch(() => {});
      await cloud?.stop();
      broker?.kill('SIGTERM');
      await rm(dir, { recursive: true, force: true });
    });

    it('lets nobody with public or foreign credentials take over or evict the device session', async () => {
      const { deviceId, secret } = agent.identity;
      const clientId = `fleetml-${deviceId}`;
      const outcomes: string[] = [];
      for (let i = 0; i < 10; i++) {
        outcomes.push(await attempt(url, { clientId, username: ENROLL_USERNAME, password: ENROLL_USERNAME }));
      }
      // The used enrollment token's own credentials are bound to their own client id.
      const enrollAs = enrollCredentials('enr_not_a_real_token');
      outcomes.push(
        await attempt(url, { clientId, username: enrollAs.username, password: enrollAs.password }),
      );
      // Even the device's own secret works only under its own client id.
      outcomes.push(await attempt(url, { clientId: `${clientId}:x`, username: deviceId, password: secret }));
      for (const outcome of outcomes) expect(outcome).toMatch(/Not authorized|Bad username/i);
      expect(brokerLog.join('').match(/already connected, closing old connection/g) ?? []).toHaveLength(0);
      expect((await cloud.services.devices.get(deviceId)).online).toBe(true);
    });

    it('ends the device session at once on revocation and refuses it from then on', async () => {
      const { deviceId, secret } = agent.identity;
      const revoke = await fetch(`${cloud.httpUrl}/api/devices/${deviceId}/revoke`, {
        method: 'POST',
        headers: { authorization: `Bearer ${cloud.adminToken}` },
      });
      expect(revoke.status).toBe(200);
      await waitFor(
        'mosquitto to drop the device',
        () =>
          brokerLog
            .join('')
            .includes(`Client fleetml-${deviceId} been disconnected by administrative action`),
        10_000,
      );
      expect(
        await attempt(url, { clientId: `fleetml-${deviceId}`, username: deviceId, password: secret }),
      ).toMatch(/Not authorized|Bad username/i);
    });
  },
);
