import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveConfig } from '../../../agent/config.js';
import { type AgentHandle, startAgent } from '../../../agent/main.js';
import type { CloudHandle } from '../../../cloud/main.js';
import { createLogger } from '../../../shared/logger.js';
import { waitFor } from '../e2e/fleet-harness.js';
import { startCloudForTests } from '../support/backend-mode.js';

// Offline signing: the cloud never sees the private key. Manifests wait unsigned, are signed
// with the CLI "on another machine" and attached; nothing unsigned is ever deployed.
const BIN = fileURLToPath(new URL('../../../bin/fleetml.mjs', import.meta.url));
const SAMPLE = new URL('../../../cloud/samples/mnist-mlp.onnx', import.meta.url);
const cli = async (...args: string[]) =>
  JSON.parse((await promisify(execFile)(process.execPath, [BIN, ...args, '--json'])).stdout);

describe('offline manifest signing', () => {
  let dir: string;
  let cloud: CloudHandle;
  let agent: AgentHandle;
  let keyFile: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleetml-offline-'));
    keyFile = join(dir, 'offline-key.json');
    const generated = await cli('keys', 'generate', '--out', keyFile);
    cloud = await startCloudForTests({
      dataDir: join(dir, 'cloud'),
      httpPort: 0,
      mqttPort: 0,
      signingPublicKey: generated.publicKey,
      logger: createLogger({ name: 't', level: 'silent' }),
    });
    const { token } = await cloud.services.issueEnrollToken();
    agent = await startAgent({
      config: resolveConfig({
        cloudUrl: cloud.mqttUrl,
        enrollToken: token,
        dataDir: join(dir, 'agent'),
        benchRuns: 5,
      }),
      logger: createLogger({ name: 't', level: 'silent' }),
    });
  }, 60_000);
  afterAll(async () => {
    await agent?.stop();
    await cloud?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('keeps the private key out of the cloud', async () => {
    expect((await stat(keyFile)).mode & 0o777).toBe(0o600);
    await expect(stat(join(dir, 'cloud', 'keys', 'fleet-signing.json'))).rejects.toThrow();
  });

  it('refuses to deploy until a valid offline signature is attached', async () => {
    const model = await cloud.services.models.add(await readFile(SAMPLE), { name: 'offline' });
    const deviceId = agent.identity.deviceId;
    const api = (method: string, path: string, body?: unknown) =>
      fetch(`${cloud.httpUrl}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${cloud.adminToken}`,
          ...(body ? { 'content-type': 'application/json' } : {}),
        },
        body: body ? JSON.stringify(body) : undefined,
      }).then(async (r) => ({ status: r.status, body: (await r.json()) as any }));

    const early = await api('POST', '/api/deployments', { model: model.id, devices: [deviceId] });
    expect(early.status).toBe(409);
    expect(early.body.error.code).toBe('CONFLICT');

    const pending = await api('GET', '/api/manifests/pending');
    expect(pending.body.manifests.map((m: any) => m.modelId)).toEqual([model.id]);
    const manifestFile = join(dir, `${model.id}.json`);
    await writeFile(manifestFile, JSON.stringify(pending.body.manifests[0]));

    const forged = await api('POST', `/api/manifests/${model.id}/signature`, {
      signature: `ed25519:0000000000000000:${'A'.repeat(86)}==`,
    });
    expect(forged.status).toBe(400);
    expect(forged.body.error.code).toBe('MANIFEST_SIGNATURE');

    const { signature } = await cli('sign', manifestFile, '--key', keyFile);
    const attached = await api('POST', `/api/manifests/${model.id}/signature`, { signature });
    expect(attached.status).toBe(200);
    // Targets are signed by the cloud's online target key, which the fleet key certifies once.
    const { targetKey } = (await api('GET', '/api/manifests/pending')).body;
    expect(targetKey.delegated).toBe(false);
    const bogus = await api('POST', '/api/manifests/target-key/delegation', {
      signature: `ed25519:0000000000000000:${'A'.repeat(86)}==`,
    });
    expect(bogus.body.error.code).toBe('TARGET_SIGNATURE');
    const delegation = await cli('keys', 'delegate', '--key', keyFile, '--target-key', targetKey.publicKey);
    const delegated = await api('POST', '/api/manifests/target-key/delegation', {
      signature: delegation.signature,
    });
    expect(delegated.body.delegated).toBe(true);
    const deployed = await api('POST', '/api/deployments', { model: model.id, devices: [deviceId] });
    expect(deployed.status).toBe(201);
    const bench = await waitFor('benchmark of the offline-signed model', () =>
      cloud.services.telemetry.latestBench(deviceId),
    );
    expect(bench.sha256).toBe(model.sha256);
  });
});
