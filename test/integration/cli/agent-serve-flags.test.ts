import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FleetmlProcess, freePort, ROOT } from '../../faults/procs.js';
import { FleetHarness, waitFor } from '../e2e/fleet-harness.js';

// `fleetml agent start` as a user runs it: every serving flag reaches the inference service,
// and a taken port is a coded error while the agent goes on with delivery and telemetry.
const SAMPLE = join(ROOT, 'cloud/samples/mnist-mlp.onnx');
const SERVE_FLAGS = [
  '--serve',
  '--no-serve',
  '--serve-host <address>',
  '--serve-port <port>',
  '--serve-socket <path>',
  '--serve-token <token>',
  '--serve-max-body <bytes>',
  '--serve-batch <model=max[:delayMs]>',
  '--activation-hook <command>',
];

function overSocket(socketPath: string, path: string, token: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, headers: { authorization: `Bearer ${token}` } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('fleetml agent start: serving flags', () => {
  let fleet: FleetHarness;
  const agents: FleetmlProcess[] = [];
  beforeAll(async () => {
    fleet = await FleetHarness.start(0);
  }, 90_000);
  afterAll(async () => {
    for (const a of agents) await a.kill('SIGTERM');
    await fleet?.stop();
  });

  const startAgent = async (name: string, extra: string[]) => {
    const { token } = await fleet.cloud.services.issueEnrollToken();
    const agent = new FleetmlProcess([
      'agent',
      'start',
      '--cloud',
      fleet.cloud.mqttUrl,
      '--enroll-token',
      token,
      '--data-dir',
      join(fleet.dir, name),
      '--name',
      name,
      '--telemetry-interval',
      '1',
      '--bench-runs',
      '3',
      '--bench-warmup',
      '1',
      '--probe-runs',
      '0',
      '--log-format',
      'json',
      '--log-level',
      'info',
      ...extra,
    ]);
    agents.push(agent);
    return agent;
  };

  it('--help shows every serving flag', async () => {
    const { stdout } = await promisify(execFile)(process.execPath, [
      join(ROOT, 'bin/fleetml.mjs'),
      'agent',
      'start',
      '--help',
    ]);
    for (const flag of SERVE_FLAGS) expect(stdout).toContain(flag);
  });

  it('host, port, socket, token, body limit, batching and hook all reach the service', async () => {
    const port = await freePort();
    const socket = join(fleet.dir, 'serve.sock');
    const hookLog = join(fleet.dir, 'hook.log');
    const agent = await startAgent('flags', [
      '--serve-host',
      '127.0.0.1',
      '--serve-port',
      String(port),
      '--serve-socket',
      socket,
      '--serve-token',
      's3cret',
      '--serve-max-body',
      '4000',
      '--serve-batch',
      'digits=4:1',
      '--serve-batch',
      '*=2:3',
      '--activation-hook',
      `echo "$FLEETML_MODEL_NAME" >> ${hookLog}`,
    ]);
    const listening = await waitFor(
      'the listening line',
      () => agent.logs.find((l) => l.msg === 'inference service listening'),
      90_000,
    );
    expect(listening).toMatchObject({
      url: `http://127.0.0.1:${port}`,
      socket,
      tokenRequired: true,
      maxBodyBytes: 4000,
      batching: { digits: { maxBatch: 4, maxQueueDelayMs: 1 }, '*': { maxBatch: 2, maxQueueDelayMs: 3 } },
    });
    const url = `http://127.0.0.1:${port}`;
    const auth = { authorization: 'Bearer s3cret' };
    expect((await fetch(`${url}/v2/health/live`)).status).toBe(401);
    expect((await fetch(`${url}/v2/health/live`, { headers: auth })).status).toBe(200);
    expect(await overSocket(socket, '/v2/health/live', 's3cret')).toBe(200);

    const device = await waitFor('the device', async () =>
      (await fleet.cloud.services.devices.list()).find((d) => d.name === 'flags' && d.online),
    );
    const model = await fleet.cloud.services.models.add(await readFile(SAMPLE), { name: 'digits' });
    await fleet.cloud.services.targets.setModel(device.id, model);
    await waitFor(
      'digits served',
      async () => (await fetch(`${url}/v2/models/digits/ready`, { headers: auth })).status === 200,
      90_000,
    );
    // 784 floats as binary data fit in 4000 bytes; the same tensor as JSON text does not.
    const header = Buffer.from(
      JSON.stringify({
        inputs: [
          { name: 'input', shape: [1, 1, 28, 28], datatype: 'FP32', parameters: { binary_data_size: 3136 } },
        ],
      }),
    );
    const binary = await fetch(`${url}/v2/models/digits/infer`, {
      method: 'POST',
      headers: { ...auth, 'inference-header-content-length': String(header.length) },
      body: Buffer.concat([header, Buffer.alloc(3136)]),
    });
    expect(binary.status).toBe(200);
    const json = await fetch(`${url}/v2/models/digits/infer`, {
      method: 'POST',
      headers: auth,
      body: JSON.stringify({
        inputs: [
          { name: 'input', shape: [1, 1, 28, 28], datatype: 'FP32', data: new Array(784).fill(0.123456789) },
        ],
      }),
    });
    expect(json.status).toBe(413);
    expect(((await json.json()) as { code: string }).code).toBe('SERVE_BODY_TOO_LARGE');
    await waitFor('the activation hook', async () =>
      (await readFile(hookLog, 'utf8').catch(() => '')).includes('digits'),
    );
  }, 240_000);

  it('a taken port is a coded error; the agent keeps running and the cloud hears why', async () => {
    const port = await freePort();
    const first = await startAgent('first', ['--serve-port', String(port)]);
    await waitFor(
      'the first agent serving',
      () => first.logs.find((l) => l.msg === 'inference service listening'),
      90_000,
    );
    const second = await startAgent('second', ['--serve-port', String(port)]);
    const failed = await waitFor(
      'the coded error',
      () => second.logs.find((l) => l.code === 'SERVE_ADDRESS_IN_USE'),
      90_000,
    );
    expect(String(failed.msg)).toContain(`127.0.0.1:${port}`);
    expect(String(failed.msg)).toContain('--serve-port');
    const device = await waitFor('the second device online', async () =>
      (await fleet.cloud.services.devices.list()).find((d) => d.name === 'second' && d.online),
    );
    const events = await waitFor('the event in the cloud', async () => {
      const list = (await fleet.cloud.services.telemetry.events(device.id)) as Array<{ code: string }>;
      return list.some((e) => e.code === 'SERVE_ADDRESS_IN_USE') && list;
    });
    expect(events.length).toBeGreaterThan(0);
    expect(second.running).toBe(true);
    expect(first.running).toBe(true);
  }, 240_000);
});
