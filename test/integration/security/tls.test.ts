import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveConfig } from '../../../agent/config.js';
import { type AgentHandle, startAgent } from '../../../agent/main.js';
import { type CloudHandle, startCloud } from '../../../cloud/main.js';
import { createLogger } from '../../../shared/logger.js';
import { waitFor } from '../e2e/fleet-harness.js';
import { embeddedOnly } from '../support/backend-mode.js';

const SAMPLE = new URL('../../../cloud/samples/mnist-mlp.onnx', import.meta.url);
const quiet = () => createLogger({ name: 't', level: 'silent' });

// The embedded broker's mqtts listener and fleet CA (an external broker brings its own TLS).
const embedded = embeddedOnly("the embedded broker's mqtts listener");
describe.skipIf(embedded.skip)(embedded.title('mqtts with a pinned fleet CA'), () => {
  let dir: string;
  let cloud: CloudHandle;
  let agent: AgentHandle;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleetml-tls-'));
    cloud = await startCloud({
      dataDir: join(dir, 'cloud'),
      httpPort: 0,
      mqttPort: 0,
      tls: true,
      logger: quiet(),
    });
  });
  afterAll(async () => {
    await agent?.stop();
    await cloud?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('creates the CA once, with private keys readable by the owner only', async () => {
    expect(cloud.mqttUrl).toMatch(/^mqtts:\/\//);
    expect(cloud.services.caPem).toContain('BEGIN CERTIFICATE');
    for (const key of ['ca.key', 'server.key']) {
      expect((await stat(join(dir, 'cloud', 'tls', key))).mode & 0o777).toBe(0o600);
    }
  });

  it('refuses a client that does not trust the fleet CA', async () => {
    const error = await mqtt
      .connectAsync(cloud.mqttUrl, {
        reconnectPeriod: 0,
        connectTimeout: 3000,
        username: 'enroll',
        password: 'enroll',
        clientId: 'enroll-x1',
      })
      .then(
        (c) => c.endAsync().then(() => 'connected'),
        (e: Error) => e.message,
      );
    expect(error).toMatch(/certificate|self.signed/i);
  });

  it('enrolls an agent that pins the CA, and delivers a model over mqtts', async () => {
    const caFile = join(dir, 'ca.pem');
    await writeFile(caFile, cloud.services.caPem!);
    const { token } = await cloud.services.issueEnrollToken();
    agent = await startAgent({
      config: resolveConfig({
        cloudUrl: cloud.mqttUrl,
        enrollToken: token,
        dataDir: join(dir, 'agent'),
        caFile,
        benchRuns: 5,
      }),
      logger: quiet(),
    });
    // Pinned: later starts use the copy in the data dir.
    expect(await readFile(join(dir, 'agent', 'fleet-ca.pem'), 'utf8')).toBe(cloud.services.caPem);
    const model = await cloud.services.models.add(await readFile(SAMPLE), { name: 'mnist' });
    await cloud.services.targets.setModel(agent.identity.deviceId, model);
    const bench = await waitFor('benchmark over mqtts', () =>
      cloud.services.telemetry.latestBench(agent.identity.deviceId),
    );
    expect(bench.sha256).toBe(model.sha256);
  });
});
