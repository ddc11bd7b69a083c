import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveConfig } from '../../../agent/config.js';
import { type AgentHandle, startAgent } from '../../../agent/main.js';
import type { CloudHandle } from '../../../cloud/main.js';
import { createLogger } from '../../../shared/logger.js';
import { waitFor } from '../e2e/fleet-harness.js';
import { backendOf, onPgMosquitto, startCloudForTests } from '../support/backend-mode.js';

const SAMPLE = new URL('../../../cloud/samples/mnist-mlp.onnx', import.meta.url);

// Every log line of a cloud (with TLS) and an agent at level trace, through enrollment, API
// calls (good, wrong and query-string tokens), a deployment and a refused enrollment: no
// enrollment token, device secret, API token or private key may appear in any of them.
// On pg-mosquitto the broker is Mosquitto (plain MQTT on loopback, no fleet CA) and the
// cloud's password on it joins the secrets.
const caFile = (dir: string) => (onPgMosquitto ? undefined : join(dir, 'cloud', 'tls', 'ca.pem'));
const TLS_KEYS = onPgMosquitto ? [] : ['ca.key', 'server.key'];
describe('secrets never reach the logs', () => {
  let dir: string;
  let cloud: CloudHandle;
  let agent: AgentHandle;
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      lines.push(...chunk.toString().split('\n').filter(Boolean));
      done();
    },
  });
  const secrets: Record<string, string> = {};

  const api = async (token: string, method: string, path: string, body?: unknown) => {
    const binary = Buffer.isBuffer(body);
    const response = await fetch(`${cloud.httpUrl}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body === undefined
          ? {}
          : { 'content-type': binary ? 'application/octet-stream' : 'application/json' }),
      },
      body: body === undefined ? undefined : binary ? new Uint8Array(body as Buffer) : JSON.stringify(body),
    });
    return {
      status: response.status,
      body: (await response.json().catch(() => null)) as Record<string, unknown>,
    };
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleetml-logs-'));
    cloud = await startCloudForTests({
      dataDir: join(dir, 'cloud'),
      httpPort: 0,
      mqttPort: 0,
      tls: true,
      logger: createLogger({ name: 'cloud', level: 'trace', destination: sink }),
    });
  });
  afterAll(async () => {
    await agent?.stop();
    await cloud?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('through enrollment, API calls and a deployment at level trace', async () => {
    secrets.admin = cloud.adminToken;
    const enroll = await api(cloud.adminToken, 'POST', '/api/enroll-tokens', { uses: 1 });
    expect(enroll.status).toBe(201);
    secrets.enroll = enroll.body.token as string;
    const operator = await api(cloud.adminToken, 'POST', '/api/tokens', { name: 'ops', role: 'operator' });
    secrets.operator = operator.body.token as string;
    expect((await api('fml_not-a-real-token-at-all', 'GET', '/api/devices')).status).toBe(401);
    // EventSource sends its token in the query string.
    const stream = new AbortController();
    await fetch(`${cloud.httpUrl}/api/stream?token=${secrets.operator}`, { signal: stream.signal })
      .then((r) => r.body?.cancel())
      .catch(() => {});
    stream.abort();

    agent = await startAgent({
      config: resolveConfig({
        cloudUrl: cloud.mqttUrl,
        enrollToken: secrets.enroll,
        caFile: caFile(dir),
        dataDir: join(dir, 'agent'),
        telemetryIntervalS: 0.5,
        benchRuns: 3,
        logLevel: 'trace',
      }),
      logger: createLogger({ name: 'agent', level: 'trace', destination: sink }),
    });
    secrets.device = agent.identity.secret;
    const model = await api(secrets.operator, 'POST', '/api/models?name=mnist', await readFile(SAMPLE));
    expect(model.status).toBe(201);
    const deploy = await api(secrets.operator, 'POST', '/api/deployments', {
      model: model.body.id,
      devices: [agent.identity.deviceId],
    });
    expect(deploy.status).toBe(201);
    await waitFor('the deployment', () => cloud.services.telemetry.latestBench(agent.identity.deviceId));
    // A used-up token is refused (and logged as refused).
    const again = await startAgent({
      config: resolveConfig({
        cloudUrl: cloud.mqttUrl,
        enrollToken: secrets.enroll,
        caFile: caFile(dir),
        dataDir: join(dir, 'agent-2'),
        enrollTimeoutS: 1,
      }),
      logger: createLogger({ name: 'agent', level: 'trace', destination: sink }),
    }).catch((error: Error) => error);
    expect(again).toBeInstanceOf(Error);
    await new Promise((r) => setTimeout(r, 600));

    const signing = JSON.parse(await readFile(join(dir, 'cloud', 'keys', 'fleet-signing.json'), 'utf8'));
    secrets.signingKey = signing.privateKey;
    const pemLines: string[] = [];
    const mqttPassword = backendOf(cloud)?.broker.cloudPassword;
    if (mqttPassword) secrets.mqttPassword = mqttPassword;
    for (const key of TLS_KEYS) {
      const pem = await readFile(join(dir, 'cloud', 'tls', key), 'utf8');
      pemLines.push(...pem.split('\n').filter((l) => l.length >= 40 && !l.startsWith('-----')));
    }

    const text = lines.join('\n');
    // The capture is real: trace lines from both sides, with the events that carry secrets nearby.
    expect(lines.length).toBeGreaterThan(15);
    expect(text).toContain('"msg":"device enrolled"');
    expect(text).toContain('"name":"agent"');
    for (const [what, secret] of Object.entries(secrets)) {
      expect(secret?.length, what).toBeGreaterThan(10);
      expect(text.includes(secret), `${what} appears in the logs`).toBe(false);
    }
    for (const line of pemLines)
      expect(text.includes(line), 'a private key line appears in the logs').toBe(false);
  });

  it('keeps every file holding a secret at mode 600', async () => {
    const files = [
      join(dir, 'agent', 'identity.json'),
      join(dir, 'cloud', 'admin-token'),
      join(dir, 'cloud', 'keys', 'fleet-signing.json'),
      ...TLS_KEYS.map((key) => join(dir, 'cloud', 'tls', key)),
    ];
    for (const file of files) expect(((await stat(file)).mode & 0o777).toString(8), file).toBe('600');
    for (const d of [join(dir, 'agent'), join(dir, 'cloud')]) {
      expect((await stat(d)).mode & 0o077, `${d} is open to others`).toBe(0);
    }
  });
});
