import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { waitFor } from '../e2e/fleet-harness.js';

// `npm start` (fleetml demo) as a user runs it: it prints `inference: http://127.0.0.1:<port>`
// and its agent serves the bundled model there as `mnist-mlp`.
const BIN = fileURLToPath(new URL('../../../bin/fleetml.mjs', import.meta.url));

describe('npm start prints where its agent serves the model', () => {
  let demo: ChildProcess | undefined;
  let dir = '';
  afterAll(async () => {
    if (demo && demo.exitCode === null) {
      demo.kill('SIGTERM');
      await new Promise((r) => demo!.once('exit', r));
    }
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('inference line, then a real inference on mnist-mlp', async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleetml-demo-'));
    demo = spawn(
      process.execPath,
      [BIN, 'demo', '--data-dir', dir, '--http-port', '0', '--mqtt-port', '0', '--serve-port', '0'],
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
  }, 540_000);
});
