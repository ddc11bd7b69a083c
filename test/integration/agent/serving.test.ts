import { readFile, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveConfig } from '../../../agent/config.js';
import { type AgentHandle, startAgent } from '../../../agent/main.js';
import { createLogger } from '../../../shared/logger.js';
import { FleetHarness, waitFor } from '../e2e/fleet-harness.js';

// A real cloud and a real agent: what the target names is served under its model name with its
// release as version, the stable path follows each activation, a new release swaps in while a
// client keeps calling, and the request sketches reach the cloud.
const SAMPLE = new URL('../../../cloud/samples/mnist-mlp.onnx', import.meta.url);

describe('the agent serves its active model', () => {
  let fleet: FleetHarness;
  let agent: AgentHandle;
  let dataDir: string;
  beforeAll(async () => {
    fleet = await FleetHarness.start(0);
    const { token } = await fleet.cloud.services.issueEnrollToken();
    dataDir = join(fleet.dir, 'serving-agent');
    agent = await startAgent({
      config: resolveConfig({
        cloudUrl: fleet.cloud.mqttUrl,
        enrollToken: token,
        dataDir,
        telemetryIntervalS: 1,
        benchRuns: 5,
        benchWarmupRuns: 1,
        servePort: 0,
        activationHook: `echo "$FLEETML_MODEL_VERSION" >> ${join(fleet.dir, 'hook.log')}`,
      }),
      logger: createLogger({ name: 'test', level: 'silent' }),
    });
    fleet.agents.push(agent);
  }, 90_000);
  afterAll(() => fleet?.stop());

  it('deploy, call, swap to a new release under load, and see the traffic in the cloud', async () => {
    const deviceId = agent.identity.deviceId;
    const bytes = await readFile(SAMPLE);
    const first = await fleet.cloud.services.models.add(bytes, { name: 'digits' });
    await fleet.cloud.services.targets.setModel(deviceId, first);
    const url = await waitFor(
      'serving',
      () => (agent.inference?.registry.get('digits') ? agent.inference.url : null),
      60_000,
    );
    const meta = (await (await fetch(`${url}/v2/models/digits`)).json()) as { versions: string[] };
    expect(meta.versions).toEqual([first.id]);

    const current = join(dataDir, 'models', 'digits', 'current.onnx');
    const modelsFile = join(dataDir, 'models', 'models.json');
    const active = async () =>
      JSON.parse(await readFile(modelsFile, 'utf8').catch(() => '{"models":{}}')).models.digits;
    const models = await waitFor(
      'models.json',
      async () => (await active())?.modelId === first.id && active(),
    );
    expect(models).toMatchObject({ version: first.id, modelId: first.id, path: current });
    expect(await readlink(current)).toMatch(/slots\/[ab]\/model\.onnx$/);

    // A client calls continuously while a new release of the same model is deployed.
    const body = JSON.stringify({
      inputs: [{ name: 'input', shape: [1, 1, 28, 28], datatype: 'FP32', data: new Array(784).fill(0.2) }],
    });
    let running = true;
    const failures: string[] = [];
    const versions = new Set<string>();
    let ok = 0;
    const client = (async () => {
      while (running) {
        const res = await fetch(`${url}/v2/models/digits/infer`, { method: 'POST', body });
        if (res.status !== 200) failures.push(await res.text());
        else {
          ok++;
          versions.add(((await res.json()) as { model_version: string }).model_version);
        }
      }
    })();
    await waitFor('traffic', () => ok > 20);
    const tagged = Buffer.concat([bytes]);
    const second = await fleet.cloud.services.models.add(
      // Same graph, different bytes: a trailing unknown field would break parsing, so change the doc string.
      await (async () => {
        const { decodeModel, encodeModel } = await import('../../../cloud/compression/onnx/proto.js');
        const m = decodeModel(tagged);
        m.docString = 'second release';
        return encodeModel(m);
      })(),
      { name: 'digits' },
    );
    await fleet.cloud.services.targets.setModel(deviceId, second);
    await waitFor(
      'the new release live',
      () => agent.inference?.registry.get('digits')?.modelId === second.id,
      60_000,
    );
    const at = ok;
    await waitFor('traffic on the new release', () => ok > at + 20);
    running = false;
    await client;
    expect(failures).toEqual([]);
    expect(versions.size).toBeGreaterThanOrEqual(1);
    expect(versions.has(second.id)).toBe(true);
    await waitFor('models.json names the new release', async () => (await active())?.modelId === second.id);
    await waitFor('hook ran twice', async () => {
      const log = await readFile(join(fleet.dir, 'hook.log'), 'utf8').catch(() => '');
      return log.trim().split('\n').length >= 2;
    });

    // The cloud merges what the agent's telemetry carried, per release.
    const byRelease = await waitFor(
      'sketches in the cloud',
      async () => {
        const groups = await fleet.cloud.services.monitor.serving.summary(
          Date.now() - 3_600_000,
          Date.now() + 60_000,
          'release',
        );
        const total = groups.reduce((n, g) => n + g.requests, 0);
        return total === ok ? groups : null;
      },
      30_000,
    );
    expect(byRelease.map((g) => g.key).sort()).toEqual([first.id, second.id].sort());
    for (const g of byRelease) {
      expect(g.errors).toBe(0);
      expect(g.p99Ms!).toBeGreaterThanOrEqual(g.p50Ms!);
    }
  }, 180_000);
});
