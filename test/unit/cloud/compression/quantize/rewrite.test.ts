import { describe, expect, it } from 'vitest';
import { attr, floatInput, makeModel, makeNode } from '../../../../../cloud/compression/onnx/build.js';
import { cloneModel } from '../../../../../cloud/compression/onnx/edit.js';
import { runOnce } from '../../../../../cloud/compression/onnx/ort-eval.js';
import { floatTensor } from '../../../../../cloud/compression/onnx/tensor.js';
import { rewriteForQuantization } from '../../../../../cloud/compression/quantize/rewrite.js';
import { ort } from '../../../../../cloud/compression/runtime/ort.js';
import { createRng, gaussian } from '../../../../../shared/random.js';

const rng = createRng(5);
const randn = (n: number) => Float32Array.from({ length: n }, () => gaussian(rng));

describe('rewrites for quantization', () => {
  it('widens a single-channel Conv to four input channels without changing its output', async () => {
    const model = makeModel(
      [
        makeNode('Conv', ['x', 'w', 'b'], ['y'], [attr.ints('pads', [1, 1, 1, 1])], 'conv0'),
        makeNode('Relu', ['y'], ['r'], [], 'relu0'),
      ],
      [floatInput('x', ['N', 1, 12, 12])],
      [floatInput('r', ['N', 8, 12, 12])],
      {
        opset: 13,
        initializers: [floatTensor('w', [8, 1, 3, 3], randn(72)), floatTensor('b', [8], randn(8))],
      },
    );
    const rewritten = cloneModel(model);
    const counts = rewriteForQuantization(rewritten.graph, () => 4);
    expect(counts.singleChannelWidened).toBe(1);
    const concat = rewritten.graph.node.find((n) => n.opType === 'Concat')!;
    expect(concat.input).toEqual(['x', 'x', 'x', 'x']);
    const conv = rewritten.graph.node.find((n) => n.opType === 'Conv')!;
    expect(conv.input[0]).toBe(concat.output[0]);
    expect(rewritten.graph.initializer!.find((t) => t.name === conv.input[1])!.dims).toEqual([8, 4, 3, 3]);
    const feeds = { x: new ort.Tensor('float32', randn(2 * 144), [2, 1, 12, 12]) };
    const a = (await runOnce(model, feeds)).r.data as Float32Array;
    const b = (await runOnce(rewritten, feeds)).r.data as Float32Array;
    for (let i = 0; i < a.length; i++) expect(b[i]).toBeCloseTo(a[i], 5);
    // An x86 kernel trick: targets without onnxruntime's x86 int8 kernels keep the conv as it is.
    const arm = cloneModel(model);
    expect(rewriteForQuantization(arm.graph, () => 4, { x86Kernels: false })).toEqual({});
    expect(arm.graph.node.map((n) => n.opType)).toEqual(['Conv', 'Relu']);
  });

  it('folds a residual squeeze-excitation x + x·HardSigmoid(Conv(…)) into one Mul, exactly', async () => {
    // x → GlobalAveragePool → Conv → HardSigmoid = g;  y = x + x·g  (PP-OCR's RSE layer)
    const model = makeModel(
      [
        makeNode('GlobalAveragePool', ['x'], ['p'], [], 'gap'),
        makeNode('Conv', ['p', 'w', 'b'], ['z'], [], 'se_conv'),
        makeNode('HardSigmoid', ['z'], ['g'], [attr.float('alpha', 0.2), attr.float('beta', 0.5)], 'gate'),
        makeNode('Mul', ['x', 'g'], ['xg'], [], 'scale'),
        makeNode('Add', ['x', 'xg'], ['y'], [], 'residual'),
      ],
      [floatInput('x', ['N', 6, 5, 5])],
      [floatInput('y', ['N', 6, 5, 5])],
      {
        opset: 13,
        initializers: [floatTensor('w', [6, 6, 1, 1], randn(36)), floatTensor('b', [6], randn(6))],
      },
    );
    const rewritten = cloneModel(model);
    const counts = rewriteForQuantization(rewritten.graph, () => 4, { x86Kernels: false });
    expect(counts).toMatchObject({ hardSigmoidFolded: 1, residualGateFolded: 1 });
    expect(rewritten.graph.node.map((n) => n.opType)).toEqual(['GlobalAveragePool', 'Conv', 'Clip', 'Mul']);
    const feeds = {
      x: new ort.Tensor(
        'float32',
        randn(2 * 150).map((v) => v * 3),
        [2, 6, 5, 5],
      ),
    };
    const a = (await runOnce(model, feeds)).y.data as Float32Array;
    const b = (await runOnce(rewritten, feeds)).y.data as Float32Array;
    for (let i = 0; i < a.length; i++) expect(b[i]).toBeCloseTo(a[i], 5);
    // A gate that something else reads too cannot take the shift: the Add stays.
    const shared = cloneModel(model);
    shared.graph.node.push(makeNode('Identity', ['g'], ['g_out'], [], 'peek'));
    shared.graph.output!.push(floatInput('g_out', ['N', 6, 1, 1]));
    expect(
      rewriteForQuantization(shared.graph, () => 4, { x86Kernels: false }).residualGateFolded,
    ).toBeUndefined();
    expect(shared.graph.node.some((n) => n.opType === 'Add' && n.name === 'residual')).toBe(true);
  });
});
