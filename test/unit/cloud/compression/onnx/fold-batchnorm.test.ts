import { describe, expect, it } from 'vitest';
import { attr, floatInput, makeModel, makeNode } from '../../../../../cloud/compression/onnx/build.js';
import { cloneModel } from '../../../../../cloud/compression/onnx/edit.js';
import { foldBatchNorm } from '../../../../../cloud/compression/onnx/fold-batchnorm.js';
import { runOnce } from '../../../../../cloud/compression/onnx/ort-eval.js';
import { floatTensor } from '../../../../../cloud/compression/onnx/tensor.js';
import { ort } from '../../../../../cloud/compression/runtime/ort.js';
import { createRng, gaussian } from '../../../../../shared/random.js';

const rng = createRng(3);
const randn = (n: number) => Float32Array.from({ length: n }, () => gaussian(rng));
const positive = (n: number) => Float32Array.from({ length: n }, () => 0.5 + Math.abs(gaussian(rng)));

describe('BatchNormalization folding', () => {
  it('folds ConvTranspose → bias Add → BN (the paddle2onnx upsampling head) into the ConvTranspose', async () => {
    const model = makeModel(
      [
        makeNode(
          'ConvTranspose',
          ['x', 'w'],
          ['t'],
          [attr.ints('kernel_shape', [2, 2]), attr.ints('strides', [2, 2])],
          'up',
        ),
        makeNode('Add', ['t', 'bias'], ['tb'], [], 'up_bias'),
        makeNode('BatchNormalization', ['tb', 'gamma', 'beta', 'mean', 'var'], ['n'], [], 'bn'),
        makeNode('Relu', ['n'], ['y'], [], 'relu'),
      ],
      [floatInput('x', ['N', 4, 5, 5])],
      [floatInput('y', ['N', 6, 10, 10])],
      {
        opset: 13,
        initializers: [
          floatTensor('w', [4, 6, 2, 2], randn(96)),
          floatTensor('bias', [1, 6, 1, 1], randn(6)),
          floatTensor('gamma', [6], randn(6)),
          floatTensor('beta', [6], randn(6)),
          floatTensor('mean', [6], randn(6)),
          floatTensor('var', [6], positive(6)),
        ],
      },
    );
    const folded = cloneModel(model);
    expect(foldBatchNorm(folded.graph)).toBe(1);
    expect(folded.graph.node.map((n) => n.opType)).toEqual(['ConvTranspose', 'Relu']);
    const feeds = { x: new ort.Tensor('float32', randn(2 * 100), [2, 4, 5, 5]) };
    const a = (await runOnce(model, feeds)).y.data as Float32Array;
    const b = (await runOnce(folded, feeds)).y.data as Float32Array;
    for (let i = 0; i < a.length; i++) expect(b[i]).toBeCloseTo(a[i], 4);
  });
});
