import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CloudCli, cloudCli } from '../../support/fleetml-cli.js';
import { FleetHarness, waitFor } from '../e2e/fleet-harness.js';

// The CLI as a user runs it (a child process per command) against a real cloud and agent.
const SAMPLE = fileURLToPath(new URL('../../../cloud/samples/mnist-mlp.onnx', import.meta.url));

describe('fleetml CLI against a running cloud', () => {
  let fleet: FleetHarness;
  let run: CloudCli['json'];
  let cli: CloudCli['cli'];
  beforeAll(async () => {
    fleet = await FleetHarness.start(1);
    ({ json: run, cli } = cloudCli(fleet.cloud));
  }, 60_000);
  afterAll(async () => fleet?.stop());

  it('adds a model, deploys it with a rollout, and reads devices and latency', async () => {
    const model = await run('models', 'add', SAMPLE, '--name', 'cli-mnist');
    expect(model.sha256).toMatch(/^[0-9a-f]{64}$/);
    const deviceId = fleet.deviceIds()[0];
    const rollout = await run('deploy', model.id, '--to', deviceId, '--timeout', '60');
    expect(rollout.id).toMatch(/^r-/);
    // Each poll is a CLI process: on a loaded machine give it minutes, not the default 30 s.
    const done = await waitFor(
      'rollout to succeed',
      async () => {
        const r = await run('rollouts', 'show', rollout.id);
        return r.status === 'succeeded' ? r : undefined;
      },
      240_000,
    );
    expect(done.executions[0].status).toBe('succeeded');
    const { devices } = await run('devices');
    expect(devices[0].activeModel.id).toBe(model.id);
    const latency = await run('latency', deviceId);
    expect(latency.bench.p50Ms).toBeGreaterThan(0);
  }, 600_000);

  it('fleet latency, regressions and health (README "Fleet monitoring")', async () => {
    const deviceId = fleet.deviceIds()[0];
    // The agent's latency probe reports every second once a model is active (previous test).
    const byDevice = await waitFor(
      'fleet latency by device',
      async () => {
        const r = await run('fleet', 'latency', '--window', '1h');
        return r.groups.length > 0 ? r : undefined;
      },
      240_000,
    );
    expect(byDevice.by).toBe('device');
    expect(byDevice.groups[0]).toMatchObject({ key: deviceId, devices: 1 });
    expect(byDevice.groups[0].p99Ms).toBeGreaterThanOrEqual(byDevice.groups[0].p50Ms);
    const byProfile = await run('fleet', 'latency', '--by', 'profile', '--window', '7d');
    expect(byProfile.by).toBe('profile');
    expect(byProfile.fleet.count).toBeGreaterThan(0);
    const { regressions } = await run(
      'fleet',
      'regressions',
      '--window',
      '1h',
      '--baseline',
      '24h',
      '--threshold',
      '0.25',
    );
    expect(regressions).toEqual([]);
    const health = await run('fleet', 'health');
    expect(health.counts).toMatchObject({ total: 1, online: 1, offline: 0 });
    expect(health.devices[0].id).toBe(deviceId);
    const bad = await cli('fleet', 'latency', '--by', 'colour');
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^error INPUT_INVALID: /m);
  }, 300_000);

  it('exits non-zero with a coded error on bad input', async () => {
    const r = await cli('deploy', 'no-such-model', '--to', 'x');
    const failure = `${r.code} ${r.stderr}`;
    expect(failure).toMatch(/^1 error NOT_FOUND: /);
  }, 300_000);
});
