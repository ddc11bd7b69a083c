import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mnistSplit, sliceDataset } from '../../../../cloud/compression/data/mnist.js';
import { writeNpy } from '../../../../cloud/compression/data/npy.js';
import { fleetml } from '../../../support/fleetml-cli.js';

// README "Compress models": `fleetml eval int8.onnx --data x.npy --labels y.npy --reference
// model.onnx`, and `--data mnist:test` (the 2,000 held-out digits of the 8,000/2,000 split).
const SAMPLE = fileURLToPath(new URL('../../../../cloud/samples/mnist-mlp.onnx', import.meta.url));

describe('fleetml eval', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleetml-eval-'));
    const digits = sliceDataset(mnistSplit().test, 0, 300);
    await writeNpy(join(dir, 'x.npy'), digits.x, [digits.count, ...digits.sampleShape]);
    await writeNpy(join(dir, 'y.npy'), digits.y, [digits.count]);
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('accuracy from .npy inputs and labels, agreement, cosine and ratios against a reference', async () => {
    const r = await fleetml([
      ...['eval', SAMPLE, '--data', join(dir, 'x.npy'), '--labels', join(dir, 'y.npy')],
      ...['--reference', SAMPLE, '--runs', '5', '--json'],
    ]);
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report.samples).toBe(300);
    expect(report.model.accuracy).toBeGreaterThan(85);
    expect(report.reference.accuracy).toBe(report.model.accuracy);
    // The model against itself: every prediction agrees and the outputs are the same.
    expect(report.agreement).toBe(100);
    expect(report.cosine).toBeCloseTo(1, 6);
    expect(report.sizeRatio).toBe(1);
    expect(report.model.latencyMs).toBeGreaterThan(0);
  });

  it('--data mnist:test evaluates the 2,000 held-out digits with their labels', async () => {
    const r = await fleetml(['eval', SAMPLE, '--data', 'mnist:test', '--runs', '5', '--json']);
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report.samples).toBe(2000);
    expect(report.model.accuracy).toBeGreaterThan(85);
  });

  it('bad numbers and missing files are coded errors, exit code 1', async () => {
    const runs = await fleetml(['eval', SAMPLE, '--data', 'mnist:test', '--runs', 'many']);
    expect(runs.code).toBe(1);
    expect(runs.stderr).toMatch(/^error INPUT_INVALID: --runs must be a number >= 1, got 'many'/m);
    const missing = await fleetml(['eval', join(dir, 'nope.onnx'), '--data', 'mnist:test']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^error FILE_NOT_FOUND: cannot read /m);
  });
});
