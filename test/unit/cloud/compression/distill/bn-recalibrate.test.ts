import { describe, expect, it } from 'vitest';
import { recalibrateBatchNorm } from '../../../../../cloud/compression/distill/bn-recalibrate.js';
import { ModelRunner } from '../../../../../cloud/compression/distill/teacher.js';
import { attr, floatInput, makeModel, makeNode } from '../../../../../cloud/compression/onnx/build.js';
import { floatTensor, tensorFloats } from '../../../../../cloud/compression/onnx/tensor.js';
import type { ModelProto } from '../../../../../cloud/compression/onnx/types.js';
import { createRng } from '../../../../../shared/random.js';

const random = (n: number, seed: number, scale = 1, offset = 0) => {
  const rng = createRng(seed);
  return Float32Array.from({ length: n }, () => (rng() * 2 - 1) * scale + offset);
};

/** [N, 2, 6, 6] → Conv 3×3 (4) → BN → Relu → Conv 1×1 (3) → BN, running stats 0 and 1 (wrong). */
function bnModel(): ModelProto {
  const bn = (name: string, c: number) => [
    floatTensor(`${name}.scale`, [c], random(c, 3, 0.5, 1)),
    floatTensor(`${name}.bias`, [c], random(c, 4, 0.2)),
    floatTensor(`${name}.mean`, [c], new Float32Array(c)),
    floatTensor(`${name}.var`, [c], new Float32Array(c).fill(1)),
  ];
  const bnInputs = (name: string, x: string) => [
    x,
    `${name}.scale`,
    `${name}.bias`,
    `${name}.mean`,
    `${name}.var`,
  ];
  return makeModel(
    [
      makeNode('Conv', ['x', 'c1.w', 'c1.b'], ['c1'], [attr.ints('pads', [1, 1, 1, 1])]),
      makeNode('BatchNormalization', bnInputs('bn1', 'c1'), ['n1']),
      makeNode('Relu', ['n1'], ['r1']),
      makeNode('Conv', ['r1', 'c2.w'], ['c2']),
      makeNode('BatchNormalization', bnInputs('bn2', 'c2'), ['y']),
    ],
    [floatInput('x', ['N', 2, 6, 6])],
    [floatInput('y', ['N', 3, 6, 6])],
    {
      opset: 17,
      initializers: [
        floatTensor('c1.w', [4, 2, 3, 3], random(72, 1)),
        floatTensor('c1.b', [4], random(4, 2, 0.5, 1)),
        floatTensor('c2.w', [3, 4, 1, 1], random(12, 5, 1, 0.3)),
        ...bn('bn1', 4),
        ...bn('bn2', 3),
      ],
    },
  );
}

const stat = (model: ModelProto, name: string) =>
  Array.from(tensorFloats(model.graph.initializer!.find((t) => t.name === name)!));

/** Per-channel mean and biased variance of an [N, C, H, W] tensor. */
function channelStats(t: Float32Array, n: number, c: number, hw: number) {
  const mean = new Array(c).fill(0);
  const variance = new Array(c).fill(0);
  for (let k = 0; k < c; k++) {
    for (let i = 0; i < n; i++) for (let j = 0; j < hw; j++) mean[k] += t[(i * c + k) * hw + j] / (n * hw);
    for (let i = 0; i < n; i++)
      for (let j = 0; j < hw; j++) variance[k] += (t[(i * c + k) * hw + j] - mean[k]) ** 2 / (n * hw);
  }
  return { mean, variance };
}

const closeTo = (actual: number[], expected: number[]) => {
  for (const [i, v] of actual.entries())
    expect(Math.abs(v - expected[i])).toBeLessThan(1e-4 * (1 + Math.abs(expected[i])));
};

describe('BatchNorm recalibration (precise BN)', () => {
  const n = 8;
  const x = random(n * 72, 9, 1.5, 0.4);

  it('sets each BN’s running statistics to the population statistics of its input', async () => {
    const model = await recalibrateBatchNorm(bnModel(), x, n, [2, 6, 6], { chunk: n, intraOpThreads: 1 });
    const runner = await ModelRunner.create(model, 'm', { intraOpThreads: 1, extraOutputs: ['c1', 'c2'] });
    const [, c1, c2] = await runner.run(x, n);
    await runner.release();
    const first = channelStats(c1, n, 4, 36);
    const second = channelStats(c2, n, 3, 36);
    // The statistics were wrong before, so matching now proves the rewrite.
    expect(Math.max(...first.mean.map(Math.abs))).toBeGreaterThan(0.1);
    closeTo(stat(model, 'bn1.mean'), first.mean);
    closeTo(stat(model, 'bn1.var'), first.variance);
    // The second BN's input depends on the first BN: with one chunk it saw exactly these values.
    closeTo(stat(model, 'bn2.mean'), second.mean);
    closeTo(stat(model, 'bn2.var'), second.variance);
  });

  it('pools uneven chunks exactly where no BN comes before, and leaves models without BN alone', async () => {
    const whole = await recalibrateBatchNorm(bnModel(), x, n, [2, 6, 6], { chunk: n, intraOpThreads: 1 });
    const chunked = await recalibrateBatchNorm(bnModel(), x, n, [2, 6, 6], { chunk: 3, intraOpThreads: 1 });
    closeTo(stat(chunked, 'bn1.mean'), stat(whole, 'bn1.mean'));
    closeTo(stat(chunked, 'bn1.var'), stat(whole, 'bn1.var'));
    const plain = makeModel(
      [makeNode('Relu', ['x'], ['y'])],
      [floatInput('x', ['N', 2, 6, 6])],
      [floatInput('y', ['N', 2, 6, 6])],
    );
    expect(await recalibrateBatchNorm(plain, x, n, [2, 6, 6])).toBe(plain);
    await expect(recalibrateBatchNorm(bnModel(), x, n + 1, [2, 6, 6])).rejects.toMatchObject({
      code: 'INPUT_INVALID',
    });
  });
});
