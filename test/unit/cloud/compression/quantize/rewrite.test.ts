import { describe, expect, it } from 'vitest';
import { attr, floatInput, makeModel, makeNode } from '../../../../../cloud/compression/onnx/build.js';
import { cloneModel } from '../../../../../cloud/compression/onnx/edit.js';
import { runOnce } from '../../../../../cloud/compression/onnx/ort-eval.js';
import { floatTensor } from '../../../../../cloud/compression/onnx/tensor.js';
import type { ModelProto, NodeProto } from '../../../../../cloud/compression/onnx/types.js';
import { rewriteForQuantization } from '../../../../../cloud/compression/quantize/rewrite.js';
import { ort } from '../../../../../cloud/compression/runtime/ort.js';
import { createRng, gaussian } from '../../../../../shared/random.js';

const rng = createRng(5);
const randn = (n: number) => Float32Array.from({ length: n }, () => gaussian(rng));

/** x [N, c, hw, hw] → GlobalAveragePool → 1×1 Conv = z, then `tail` (reading x and z), whose `out` is the output. */
function squeezeExcitationModel(c: number, hw: number, out: string, tail: NodeProto[]): ModelProto {
  return makeModel(
    [
      makeNode('GlobalAveragePool', ['x'], ['p'], [], 'gap'),
      makeNode('Conv', ['p', 'w', 'b'], ['z'], [], 'se_conv'),
      ...tail,
    ],
    [floatInput('x', ['N', c, hw, hw])],
    [floatInput(out, ['N', c, hw, hw])],
    {
      opset: 13,
      initializers: [floatTensor('w', [c, c, 1, 1], randn(c * c)), floatTensor('b', [c], randn(c))],
    },
  );
}

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
    const model = squeezeExcitationModel(6, 5, 'y', [
      makeNode('HardSigmoid', ['z'], ['g'], [attr.float('alpha', 0.2), attr.float('beta', 0.5)], 'gate'),
      makeNode('Mul', ['x', 'g'], ['xg'], [], 'scale'),
      makeNode('Add', ['x', 'xg'], ['y'], [], 'residual'),
    ]);
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

  it('x86: a nearest Resize by 4 becomes two Resizes by 2 behind a no-op Reshape, exactly; others stay', async () => {
    const nearest = [
      attr.string('mode', 'nearest'),
      attr.string('coordinate_transformation_mode', 'asymmetric'),
      attr.string('nearest_mode', 'floor'),
    ];
    const model = makeModel(
      [
        makeNode('Resize', ['x', '', 's4'], ['up'], nearest, 'up4'),
        makeNode('Resize', ['x', '', 's2'], ['half'], [attr.string('mode', 'nearest')], 'half_pixel'),
      ],
      [floatInput('x', ['N', 3, 5, 6])],
      [floatInput('up', ['N', 3, 20, 24]), floatInput('half', ['N', 3, 10, 12])],
      {
        opset: 13,
        initializers: [floatTensor('s4', [4], [1, 1, 4, 4]), floatTensor('s2', [4], [1, 1, 2, 2])],
      },
    );
    const rewritten = cloneModel(model);
    expect(rewriteForQuantization(rewritten.graph, () => 4).resizeKeptNchw).toBe(1);
    const ops = rewritten.graph.node.map((n) => `${n.opType}:${n.name}`);
    expect(ops.filter((o) => o.startsWith('Resize'))).toHaveLength(3); // 2 for up4, half_pixel untouched
    expect(ops.filter((o) => o.startsWith('Reshape'))).toHaveLength(1);
    const feeds = { x: new ort.Tensor('float32', randn(2 * 90), [2, 3, 5, 6]) };
    const [a, b] = [await runOnce(model, feeds), await runOnce(rewritten, feeds)];
    expect(Array.from(b.up.data as Float32Array)).toEqual(Array.from(a.up.data as Float32Array));
    expect(b.up.dims).toEqual([2, 3, 20, 24]);
    expect(Array.from(b.half.data as Float32Array)).toEqual(Array.from(a.half.data as Float32Array));
    // onnxruntime's x86 int8 layout is the reason: other targets keep the graph.
    expect(rewriteForQuantization(cloneModel(model).graph, () => 4, { x86Kernels: false })).toEqual({});
  });

  it('x86: the input of a squeeze-excitation gate is kept NCHW behind a no-op Reshape, exactly', async () => {
    const model = squeezeExcitationModel(4, 6, 'q', [
      makeNode('Sigmoid', ['z'], ['g'], [], 'gate'),
      makeNode('Mul', ['g', 'x'], ['y'], [], 'scale'),
      makeNode('Mul', ['x', 'y'], ['q'], [], 'not_a_gate'),
    ]);
    const rewritten = cloneModel(model);
    // Small maps keep their gates in NHWC (the transposes would cost more than the broadcast).
    expect(rewriteForQuantization(cloneModel(model).graph, () => 4).gateKeptNchw).toBeUndefined();
    const large = () => [2, 4, 160, 160];
    expect(rewriteForQuantization(rewritten.graph, () => 4, { shapeOf: large }).gateKeptNchw).toBe(1);
    const scale = rewritten.graph.node.find((n) => n.name === 'scale')!;
    const reshape = rewritten.graph.node.find((n) => n.opType === 'Reshape')!;
    expect(scale.input).toEqual(['g', reshape.output[0]]);
    expect(reshape.input[0]).toBe('x');
    const feeds = { x: new ort.Tensor('float32', randn(2 * 144), [2, 4, 6, 6]) };
    const [a, b] = [await runOnce(model, feeds), await runOnce(rewritten, feeds)];
    expect(Array.from(b.q.data as Float32Array)).toEqual(Array.from(a.q.data as Float32Array));
  });
});
