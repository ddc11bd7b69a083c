import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { waitFor } from '../e2e/fleet-harness.js';

// `npm start` (fleetml demo) as a user runs it (README "Two commands"): with its console port
// taken it picks a free one, prints where everything is (`inference: http://127.0.0.1:<port>`
// among them), its agent serves the bundled model there as `mnist-mlp`, and Ctrl-C stops the
// agent and the cloud.
const BIN = fileURLToPath(new URL('../../../bin/fleetml.mjs', import.meta.url));

function holdPort(): Promise<{ server: Server; port: number }> {
  const server = createServer();
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0 }, () =>
      resolve({ server, port: (server.address() as { port: number }).port }),
    );
  });
}

describe('npm start prints where everything is, serves the model, and stops on Ctrl-C', () => {
  let demo: ChildProcess | undefined;
  let held: Server | undefined;
  let dir = '';
  afterAll(async () => {
    if (demo && demo.exitCode === null) {
      demo.kill('SIGTERM');
      await new Promise((r) => demo!.once('exit', r));
    }
    held?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('free port instead of a taken one, every line, a real inference on mnist-mlp, then Ctrl-C', async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleetml-demo-'));
    const taken = await holdPort();
    held = taken.server;
    demo = spawn(
      process.execPath,
      [
        BIN,
        'demo',
        '--data-dir',
        dir,
        '--http-port',
        String(taken.port),
        '--mqtt-port',
        '0',
        '--serve-port',
        '0',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, FLEETML_LOG_LEVEL: 'error' } },
    );
    let out = '';
    demo.stdout!.on('data', (c) => (out += c));
    demo.stderr!.on('data', () => {});
    const url = await waitFor(
      'the inference line',
      () => out.match(/^inference: (http:\/\/127\.0\.0\.1:\d+)$/m)?.[1],
      240_000,
    );
    const consolePort = Number(out.match(/^console: http:\/\/[^:]+:(\d+)\/#token=fml_\S+$/m)?.[1]);
    expect(consolePort).toBeGreaterThan(0);
    expect(consolePort).not.toBe(taken.port);
    expect(out).toMatch(new RegExp(`^api: http://[^:]+:${consolePort}/api$`, 'm'));
    expect(out).toMatch(/^broker: mqtt:\/\/\S+:\d+$/m);
    expect(out).toMatch(/^token: fml_\S+$/m);
    const device = out.match(/^device: (\S+) \(target version \d+: mnist-mlp m-\S+\)$/m)?.[1];
    expect(device).toBeTruthy();
    // The cloud and the agent keep their state in the data directory.
    expect(existsSync(join(dir, 'cloud', 'fleetml.db'))).toBe(true);
    expect(existsSync(join(dir, 'agent'))).toBe(true);

    const body = JSON.stringify({
      inputs: [{ name: 'input', shape: [1, 1, 28, 28], datatype: 'FP32', data: new Array(784).fill(0) }],
    });
    const reply = await waitFor(
      'mnist-mlp served',
      async () => {
        const res = await fetch(`${url}/v2/models/mnist-mlp/infer`, { method: 'POST', body }).catch(
          () => null,
        );
        return res?.status === 200
          ? ((await res.json()) as { model_name: string; outputs: { data: number[] }[] })
          : null;
      },
      240_000,
    );
    expect(reply.model_name).toBe('mnist-mlp');
    expect(reply.outputs[0].data).toHaveLength(10);
    await waitFor(
      'the benchmark line',
      () =>
        new RegExp(`^benchmark on ${device}: p50 [\\d.]+ ms, p99 [\\d.]+ ms, \\d+/s on cpu$`, 'm').test(out),
      240_000,
    );

    // Ctrl-C: the demo stops its agent (nothing serves any more) and its cloud, and exits 0.
    const exited = new Promise<number | null>((r) => demo!.once('exit', (code) => r(code)));
    demo.kill('SIGINT');
    expect(await exited).toBe(0);
    expect(
      await fetch(`${url}/v2/health/live`).then(
        () => 'answered',
        () => 'refused',
      ),
    ).toBe('refused');
    const consoleUrl = `http://127.0.0.1:${consolePort}/api/health`;
    expect(
      await fetch(consoleUrl).then(
        () => 'answered',
        () => 'refused',
      ),
    ).toBe('refused');
  }, 540_000);
});
