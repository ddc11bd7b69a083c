import { describe, expect, it } from 'vitest';
import { attr, floatInput, makeModel, makeNode } from '../../../../../cloud/compression/onnx/build.js';
import { fuseForInference } from '../../../../../cloud/compression/onnx/fuse-conv-activation.js';
import { runOnce } from '../../../../../cloud/compression/onnx/ort-eval.js';
import { prepareModel } from '../../../../../cloud/compression/onnx/prepare.js';
import { floatTensor } from '../../../../../cloud/compression/onnx/tensor.js';
import type { ModelProto, NodeProto } from '../../../../../cloud/compression/onnx/types.js';
import { ort } from '../../../../../cloud/compression/runtime/ort.js';
import { createRng, gaussian } from '../../../../../shared/random.js';

const rng = createRng(5);
const randn = (n: number) => Float32Array.from({ length: n }, () => gaussian(rng));

/** Conv → Mul(a) → Add(b) → hard-swish as paddle2onnx writes it (Add 3, Clip 0..6, Mul, Div 6). */
function affineHardSwish(extra: NodeProto[] = [], outputs = ['y']): ModelProto {
  return makeModel(
    [
      makeNode('Conv', ['x', 'w', 'b'], ['c'], [attr.ints('pads', [1, 1, 1, 1])], 'conv'),
      makeNode('Mul', ['scale', 'c'], ['s'], [], 'scale'),
      makeNode('Add', ['s', 'shift'], ['z'], [], 'shift'),
      makeNode('Add', ['z', 'three'], ['z3'], [], 'hs_add'),
      makeNode('Clip', ['z3', 'zero', 'six'], ['clipped'], [], 'hs_clip'),
      makeNode('Mul', ['z', 'clipped'], ['m'], [], 'hs_mul'),
      makeNode('Div', ['m', 'six'], ['y'], [], 'hs_div'),
      ...extra,
    ],
    [floatInput('x', ['N', 2, 6, 6])],
    outputs.map((o) => floatInput(o, ['N', 3, 6, 6])),
    {
      opset: 11,
      initializers: [
        floatTensor('w', [3, 2, 3, 3], randn(54)),
        floatTensor('b', [3], randn(3)),
        floatTensor('scale', [1, 3, 1, 1], randn(3)),
        floatTensor('shift', [], [0.7]),
        floatTensor('three', [], [3]),
        floatTensor('zero', [], [0]),
        floatTensor('six', [], [6]),
      ],
    },
  );
}

async function expectSameOutputs(a: ModelProto, b: ModelProto, names: string[]) {
  const feeds = {
    x: new ort.Tensor(
      'float32',
      randn(2 * 72).map((v) => 3 * v),
      [2, 2, 6, 6],
    ),
  };
  const [ya, yb] = [await runOnce(a, feeds), await runOnce(b, feeds)];
  for (const name of names) {
    const [va, vb] = [ya[name].data as Float32Array, yb[name].data as Float32Array];
    for (let i = 0; i < va.length; i++) expect(vb[i]).toBeCloseTo(va[i], 4);
  }
}

// PP-OCRv4's detector spends a third of its time in these Mul/Add/Clip/Div passes, which
// onnxruntime leaves unfused; a distilled student is delivered without them.
describe('fusing what exporters decompose around convolutions', () => {
  it('folds the scale and shift into the Conv and writes one HardSwish, with the same outputs', async () => {
    const model = affineHardSwish();
    const { model: fused, folded, hardSwish } = fuseForInference(model);
    expect([folded, hardSwish]).toEqual([2, 1]);
    expect(fused.graph.node.map((n) => n.opType)).toEqual(['Conv', 'HardSwish']);
    expect(fused.opsetImport?.find((o) => (o.domain ?? '') === '')?.version).toBe(14);
    expect(fused.graph.initializer).toHaveLength(2); // the folded weight and bias only
    expect(model.graph.node).toHaveLength(7); // the input model is left alone
    await expectSameOutputs(model, fused, ['y']);
  });

  it('leaves a Conv whose output is also read elsewhere, and a clip that is not 0..6', async () => {
    const shared = affineHardSwish([makeNode('Relu', ['c'], ['r'], [], 'other_reader')], ['y', 'r']);
    const { model: fused, folded } = fuseForInference(shared);
    expect(folded).toBe(0);
    await expectSameOutputs(shared, fused, ['y', 'r']);
    const relu6 = affineHardSwish();
    relu6.graph.initializer!.find((t) => t.name === 'six')!.rawData = floatTensor('six', [], [5]).rawData;
    expect(fuseForInference(relu6).hardSwish).toBe(0);
  });

  it('quantization starts from the folded Conv too, so no Q/DQ pair sits between Conv and scale', async () => {
    const model = affineHardSwish();
    const x = new ort.Tensor('float32', randn(72), [1, 2, 6, 6]);
    const { model: prepared, report } = await prepareModel(model, { x });
    expect(report.convAffinesFolded).toBe(2);
    expect(prepared.graph.node.map((n) => n.opType)).toEqual(['Conv', 'Add', 'Clip', 'Mul', 'Div']);
    await expectSameOutputs(model, prepared, ['y']);
  });
});
