import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mnistSplit, sliceDataset } from '../../../../cloud/compression/data/mnist.js';
import { writeNpy } from '../../../../cloud/compression/data/npy.js';
import { attr, floatInput, makeModel, makeNode } from '../../../../cloud/compression/onnx/build.js';
import { saveModel } from '../../../../cloud/compression/onnx/io.js';
import { decodeModel } from '../../../../cloud/compression/onnx/proto.js';
import { floatTensor, tensorFloats } from '../../../../cloud/compression/onnx/tensor.js';
import { DataType, type ModelProto } from '../../../../cloud/compression/onnx/types.js';
import { createRng, gaussian } from '../../../../shared/random.js';
import { fleetml } from '../../../support/fleetml-cli.js';

// `fleetml quantize --help` flags that no other test passed on the command line: --method,
// --exclude, --activations, --no-per-channel and --samples, each checked in the model written.
// rpi5 is an ARM profile: its rules decide, nothing is measured here, so the run is quick.
const SAMPLE = fileURLToPath(new URL('../../../../cloud/samples/mnist-mlp.onnx', import.meta.url));

/** The initializer behind a node input, and which node outputs are DequantizeLinear results. */
function inspect(model: ModelProto) {
  const init = new Map((model.graph.initializer ?? []).map((t) => [t.name, t]));
  const dq = new Set(
    model.graph.node.filter((n) => n.opType === 'DequantizeLinear').flatMap((n) => n.output),
  );
  const node = (name: string) => model.graph.node.find((n) => n.name === name)!;
  return { init, dq, node };
}

describe('fleetml quantize flags', () => {
  let dir: string;
  const quantize = (out: string, ...flags: string[]) =>
    fleetml([
      ...['quantize', SAMPLE, '-o', join(dir, out), '--calibration', 'mnist:train', '--profile', 'rpi5'],
      ...flags,
      '--json',
    ]);
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleetml-qflags-'));
  }, 300_000);
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('--exclude keeps a node in float; --activations and --no-per-channel shape the rest', async () => {
    const r = await quantize(
      'a.onnx',
      '--exclude',
      'fc2',
      '--activations',
      'uint8',
      '--no-per-channel',
      '--samples',
      '16',
    );
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ activations: 'uint8', perChannel: false, method: 'minmax' });
    const model = decodeModel(await readFile(join(dir, 'a.onnx')));
    const { init, dq, node } = inspect(model);
    // fc2's weights stay a float initializer; fc1's come through a DequantizeLinear.
    expect(init.get(node('fc2').input[1])?.dataType).toBe(DataType.FLOAT);
    expect(dq.has(node('fc1').input[1])).toBe(true);
    const quantizers = model.graph.node.filter((n) => n.opType === 'QuantizeLinear');
    expect(quantizers.length).toBeGreaterThan(0);
    for (const q of quantizers) expect(init.get(q.input[2])?.dataType).toBe(DataType.UINT8);
    // One scale per weight tensor (the bias's scale is a product, broadcast per output).
    const weights = model.graph.node.filter(
      (n) => n.opType === 'DequantizeLinear' && n.input[0].endsWith('.weight_q'),
    );
    expect(weights.length).toBeGreaterThan(0);
    for (const d of weights) expect(tensorFloats(init.get(d.input[1])!).length).toBe(1);
  }, 300_000);

  it('--method changes the calibrated ranges; an unknown method or sample count is INPUT_INVALID', async () => {
    const scales = async (out: string, method: string) => {
      const r = await quantize(out, '--method', method, '--samples', '32');
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout).method).toBe(method);
      const model = decodeModel(await readFile(join(dir, out)));
      const { init } = inspect(model);
      // Every activation scale (the input's is 1/255 either way: pixels fill [0, 1]).
      return model.graph.node
        .filter((n) => n.opType === 'QuantizeLinear')
        .flatMap((q) => Array.from(tensorFloats(init.get(q.input[1])!)));
    };
    const minmax = await scales('minmax.onnx', 'minmax');
    // MSE clips the activation ranges where minmax keeps the extremes (percentile at 99.999 %
    // of a few thousand values is the maximum: the same ranges here).
    const mse = await scales('mse.onnx', 'mse');
    expect(mse).not.toEqual(minmax);
    const bad = await quantize('bad.onnx', '--method', 'median');
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^error INPUT_INVALID: unknown calibration method 'median'/m);
    const samples = await quantize('bad.onnx', '--samples', 'lots');
    expect(samples.code).toBe(1);
    expect(samples.stderr).toMatch(/^error INPUT_INVALID: --samples must be/m);
  }, 300_000);

  it('--max-accuracy-drop and --min-snr: the budget is measured on --data/--labels and met', async () => {
    const digits = sliceDataset(mnistSplit().test, 0, 200);
    await writeNpy(join(dir, 'x.npy'), digits.x, [digits.count, ...digits.sampleShape]);
    await writeNpy(join(dir, 'y.npy'), digits.y, [digits.count]);
    const r = await quantize(
      'budget.onnx',
      ...[
        '--max-accuracy-drop',
        '0.5',
        '--min-snr',
        '20',
        '--data',
        join(dir, 'x.npy'),
        '--labels',
        join(dir, 'y.npy'),
      ],
    );
    expect(r.code, r.stderr).toBe(0);
    const { metrics } = JSON.parse(r.stdout);
    expect(metrics.accuracyDrop).toBeLessThanOrEqual(0.5);
    expect(metrics.snrDb).toBeGreaterThanOrEqual(20);
    // A budget needs data to measure it on.
    const blind = await quantize('blind.onnx', '--max-accuracy-drop', '0.5');
    expect(blind.code).toBe(1);
    expect(blind.stderr).toMatch(/^error INPUT_INVALID: --max-accuracy-drop needs --data and --labels/m);
    const format = await quantize('fmt.onnx', '--format', 'qoperator');
    expect(format.stderr).toMatch(/^error INPUT_INVALID: unknown format 'qoperator' \(known: qdq\)/m);
  }, 300_000);

  it.runIf(process.arch === 'x64')(
    '--no-tune skips the per-op measurement on an x86 profile',
    async () => {
      const r = await fleetml([
        ...['quantize', SAMPLE, '-o', join(dir, 'untuned.onnx'), '--calibration', 'mnist:train'],
        ...['--profile', 'x86-avx2', '--batch', '1', '--no-tune', '--json'],
      ]);
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout).tuned).toBe(false);
      expect(r.stderr).not.toMatch(/^tune /m);
    },
    300_000,
  );

  it.runIf(process.arch === 'x64')(
    'tunes on an x86 profile, the image stem first; --json lists what it kept float and what it had no time for',
    async () => {
      // A 3-channel stem (Conv → Relu), then a wider Conv and a pooled head.
      const rng = createRng(5);
      const randn = (n: number) => Float32Array.from({ length: n }, () => gaussian(rng) * 0.3);
      const model = makeModel(
        [
          makeNode('Conv', ['x', 'w0'], ['c0'], [attr.ints('pads', [1, 1, 1, 1])], 'stem'),
          makeNode('Relu', ['c0'], ['r0'], [], 'stem_relu'),
          makeNode('Conv', ['r0', 'w1'], ['c1'], [attr.ints('pads', [1, 1, 1, 1])], 'body'),
          makeNode('GlobalAveragePool', ['c1'], ['g'], [], 'pool'),
          makeNode('Flatten', ['g'], ['y'], [], 'flat'),
        ],
        [floatInput('x', [1, 3, 32, 32])],
        [floatInput('y', [1, 16])],
        {
          opset: 13,
          initializers: [
            floatTensor('w0', [8, 3, 3, 3], randn(216)),
            floatTensor('w1', [16, 8, 3, 3], randn(1152)),
          ],
        },
      );
      await saveModel(model, join(dir, 'stem.onnx'));
      await writeNpy(join(dir, 'stem-cal.npy'), randn(16 * 3 * 32 * 32), [16, 3, 32, 32]);
      const r = await fleetml([
        ...['quantize', join(dir, 'stem.onnx'), '-o', join(dir, 'stem-q.onnx')],
        ...['--calibration', join(dir, 'stem-cal.npy'), '--profile', 'x86-avx2', '--batch', '1', '--json'],
      ]);
      expect(r.code, r.stderr).toBe(0);
      const summary = JSON.parse(r.stdout);
      expect(summary.tuned).toBe(true);
      expect(Array.isArray(summary.floatByMeasurement) && Array.isArray(summary.notMeasured)).toBe(true);
      // Which candidates win is this machine's measurement; that the stem is tried first is not.
      const tried = [
        ...r.stderr.matchAll(/^tune (.+?): float\/int8 latency [\d.]+ \(faster in \d+ of \d+ pairs\)/gm),
      ];
      expect(tried[0]?.[1]).toBe('narrow-input Conv ×1');
      for (const kept of summary.floatByMeasurement) expect(tried.map((t) => t[1])).toContain(kept);
    },
    300_000,
  );
});
