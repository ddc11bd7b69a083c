import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSimulation } from '../../../cloud/simulator/fleet.js';
import { ROOT, waitFor } from '../../faults/procs.js';
import { startTestCloud, type TestCloud } from '../support/test-cloud.js';

const SAMPLE = join(ROOT, 'cloud/samples/mnist-mlp.onnx');

// The simulator against a real cloud (embedded broker, SQLite): the cloud sees enrolled
// devices, stores their telemetry, and a deployment reaches them through block transfer.
describe('fleetml simulate', () => {
  let t: TestCloud;

  beforeAll(async () => {
    t = await startTestCloud({}, 'fleetml-sim-');
  });
  afterAll(async () => {
    await t?.stop();
  });

  it('enrolls simulated devices that report telemetry and take a deployment', async () => {
    const { token } = await t.cloud.services.tokens.createEnrollToken({ uses: 4 });
    const sim = startSimulation({
      cloud: t.cloud.mqttUrl,
      enrollToken: token,
      devices: 4,
      durationS: 120,
      telemetryIntervalS: 1,
      rampS: 1,
      namePrefix: 'simtest',
    });
    try {
      await waitFor('4 simulated devices connected', () => sim.counters.connected === 4, 60_000);
      const devices = (await t.api('GET', '/api/devices')).body;
      const simulated = (Array.isArray(devices) ? devices : devices.devices).filter((d: { name: string }) =>
        d.name.startsWith('simtest-'),
      );
      expect(simulated).toHaveLength(4);

      const model = await t.cloud.services.models.add(await readFile(SAMPLE), { name: 'sim-mnist' });
      const ids = sim.devices.map((d) => d.identity.deviceId);
      const deploy = await t.api('POST', '/api/deployments', { model: model.id, devices: ids });
      expect(deploy.status).toBe(201);
      for (const id of ids) {
        const device = await waitFor(
          `simulated ${id} active`,
          async () => {
            const d = (await t.api('GET', `/api/devices/${id}`)).body;
            return d.phase === 'active' && d.activeModel?.id === model.id ? d : undefined;
          },
          60_000,
        );
        expect(device.p50Ms).toBeGreaterThan(0); // its benchmark report arrived
      }
      expect(sim.counters.modelsActivated).toBe(4);
      // A report lost while no cloud was subscribed (a broker restart): the cloud shows an older
      // phase until it publishes its targets again, which every device answers with its state.
      const lost = ids[0];
      await t.cloud.services.fleet.db
        .updateTable('devices')
        .set({ phase: 'installing', state_at: '2000-01-01T00:00:00.000Z' })
        .where('id', '=', lost)
        .execute();
      await t.cloud.services.fleet.db.deleteFrom('bench_reports').where('device_id', '=', lost).execute();
      expect((await t.api('GET', `/api/devices/${lost}`)).body).toMatchObject({
        phase: 'installing',
        p50Ms: null,
      });
      await t.cloud.services.targets.republishAll();
      await waitFor(
        `simulated ${lost} active again, with its benchmark`,
        async () => {
          const d = (await t.api('GET', `/api/devices/${lost}`)).body;
          return d.phase === 'active' && d.p50Ms > 0;
        },
        30_000,
      );
      expect(sim.counters.blocksReceived).toBeGreaterThanOrEqual(4);
      // Telemetry now carries the model's latency: the fleet latency query sees it.
      await waitFor('fleet latency from simulated telemetry', async () => {
        const latency = (await t.api('GET', '/api/fleet/latency?window=1h&by=model')).body;
        return latency.fleet.count > 0 && latency.groups.some((g: { key: string }) => g.key === model.id);
      });
    } finally {
      sim.stop();
    }
    const result = await sim.done;
    expect(result.devices).toBe(4);
    expect(result.online).toBe(4);
    expect(result.recordsSent).toBeGreaterThan(0);
    expect(result.recordsAcked).toBeGreaterThan(0);
    expect(result.recordsAcked).toBeLessThanOrEqual(result.recordsSent);
    // Every acknowledged record is stored, exactly once.
    const health = (await t.api('GET', '/api/fleet/health')).body;
    expect(health.telemetryRecords).toBeGreaterThanOrEqual(result.recordsAcked);
    expect(health.telemetryRecords).toBeLessThanOrEqual(result.recordsSent);
  }, 180_000);

  it('runs as `fleetml simulate --json` and prints one summary object', async () => {
    const { token } = await t.cloud.services.tokens.createEnrollToken({ uses: 3 });
    const before = (await t.api('GET', '/api/fleet/health')).body.telemetryRecords;
    const child = spawn(
      process.execPath,
      [
        join(ROOT, 'bin/fleetml.mjs'),
        'simulate',
        ...['--devices', '3', '--cloud', t.cloud.mqttUrl, '--enroll-token', token],
        ...['--duration', '6', '--interval', '1', '--ramp', '1', '--json'],
        // The other flags of `simulate --help`, each with a visible effect below.
        ...['--name-prefix', 'cli-sim', '--records-per-batch', '2', '--enroll-concurrency', '1'],
        ...['--latency-ms', '7', '--seed', '3'],
      ],
      { stdio: ['ignore', 'pipe', 'ignore'] },
    );
    let stdout = '';
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
    });
    const code = await new Promise((resolve) => child.once('exit', resolve));
    expect(code).toBe(0);
    const lines = stdout.trim().split('\n');
    expect(lines).toHaveLength(1);
    const result = JSON.parse(lines[0]);
    expect(result.devices).toBe(3);
    expect(result.online).toBe(3);
    expect(result.recordsSent).toBeGreaterThan(0);
    expect(result.recordsAcked).toBe(result.recordsSent); // a healthy cloud acknowledges everything
    const after = (await t.api('GET', '/api/fleet/health')).body.telemetryRecords;
    expect(after - before).toBe(result.recordsAcked);
    const named = (await t.cloud.services.devices.list()).filter((d) => d.name.startsWith('cli-sim'));
    expect(named).toHaveLength(3);
    // Two records a tick, sent together: an even count in fewer batches than records.
    expect(result.recordsSent % 2).toBe(0);
    expect(result.batchesSent).toBeLessThan(result.recordsSent);
  }, 120_000);

  it('refuses a negative device count with INPUT_INVALID', async () => {
    const child = spawn(
      process.execPath,
      [
        join(ROOT, 'bin/fleetml.mjs'),
        'simulate',
        '--devices',
        '-1',
        '--cloud',
        'mqtt://127.0.0.1:1',
        '--enroll-token',
        'x',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
    });
    const code = await new Promise((resolve) => child.once('exit', resolve));
    expect(code).not.toBe(0);
    expect(stderr).toContain('INPUT_INVALID');
  }, 60_000);
});
