import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FleetHarness, waitFor } from '../e2e/fleet-harness.js';

// The CLI as a user runs it (a child process per command) against a real cloud and agent.
const BIN = fileURLToPath(new URL('../../../bin/fleetml.mjs', import.meta.url));
const SAMPLE = fileURLToPath(new URL('../../../cloud/samples/mnist-mlp.onnx', import.meta.url));

describe('fleetml CLI against a running cloud', () => {
  let fleet: FleetHarness;
  let run: (...args: string[]) => Promise<any>;
  beforeAll(async () => {
    fleet = await FleetHarness.start(1);
    run = async (...args) => {
      const { stdout } = await promisify(execFile)(process.execPath, [
        BIN,
        ...args,
        '--api',
        fleet.cloud.httpUrl,
        '--token',
        fleet.cloud.adminToken,
        '--json',
      ]);
      return JSON.parse(stdout);
    };
  }, 60_000);
  afterAll(async () => fleet?.stop());

  it('adds a model, deploys it with a rollout, and reads devices and latency', async () => {
    const model = await run('models', 'add', SAMPLE, '--name', 'cli-mnist');
    expect(model.sha256).toMatch(/^[0-9a-f]{64}$/);
    const deviceId = fleet.deviceIds()[0];
    const rollout = await run('deploy', model.id, '--to', deviceId, '--timeout', '60');
    expect(rollout.id).toMatch(/^r-/);
    const done = await waitFor('rollout to succeed', async () => {
      const r = await run('rollouts', 'show', rollout.id);
      return r.status === 'succeeded' ? r : undefined;
    });
    expect(done.executions[0].status).toBe('succeeded');
    const { devices } = await run('devices');
    expect(devices[0].activeModel.id).toBe(model.id);
    const latency = await run('latency', deviceId);
    expect(latency.bench.p50Ms).toBeGreaterThan(0);
  });

  it('exits non-zero with a coded error on bad input', async () => {
    const failure = await promisify(execFile)(process.execPath, [
      BIN,
      'deploy',
      'no-such-model',
      '--to',
      'x',
      '--api',
      fleet.cloud.httpUrl,
      '--token',
      fleet.cloud.adminToken,
    ]).then(
      () => 'succeeded',
      (e: { code: number; stderr: string }) => `${e.code} ${e.stderr}`,
    );
    expect(failure).toMatch(/^1 error NOT_FOUND: /);
  });
});
