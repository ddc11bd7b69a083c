import { describe, expect, it } from 'vitest';
import { attr, floatInput, makeModel, makeNode } from '../../../../../cloud/compression/onnx/build.js';
import { cloneModel } from '../../../../../cloud/compression/onnx/edit.js';
import { ort, runOnce, withExtraOutputs } from '../../../../../cloud/compression/onnx/ort-eval.js';
import { floatTensor } from '../../../../../cloud/compression/onnx/tensor.js';
import {
  equalizeCrossLayer,
  foldAffineIntoConv,
} from '../../../../../cloud/compression/quantize/equalize.js';
import { createRng, gaussian } from '../../../../../shared/random.js';

const rng = createRng(21);
const randn = (n: number, s = 1) => Float32Array.from({ length: n }, () => gaussian(rng) * s);

/** Depthwise 3×3 (channel gains 0.01 … 30) → Mul(scalar) → Add([C,1,1]) → 1×1 Conv. */
function model() {
  const dw = randn(8 * 9, 0.3);
  for (let c = 0; c < 8; c++)
    for (let i = 0; i < 9; i++) dw[c * 9 + i] *= [0.01, 30, 1, 0.1, 5, 1, 0.5, 2][c];
  return makeModel(
    [
      makeNode(
        'Conv',
        ['x', 'dw', 'dwb'],
        ['d'],
        [attr.int('group', 8), attr.ints('kernel_shape', [3, 3]), attr.ints('pads', [1, 1, 1, 1])],
        'dw',
      ),
      makeNode('Mul', ['d', 'scale'], ['m'], [], 'lab_mul'),
      makeNode('Add', ['m', 'shift'], ['a'], [], 'lab_add'),
      makeNode('Conv', ['a', 'pw', 'pwb'], ['y'], [attr.ints('kernel_shape', [1, 1])], 'pw'),
    ],
    [floatInput('x', ['N', 8, 6, 6])],
    [floatInput('y', ['N', 4, 6, 6])],
    {
      opset: 13,
      initializers: [
        floatTensor('dw', [8, 1, 3, 3], dw),
        floatTensor('dwb', [8], randn(8, 0.1)),
        floatTensor('scale', [], [1.7]),
        floatTensor('shift', [8, 1, 1], randn(8, 0.2)),
        floatTensor('pw', [4, 8, 1, 1], randn(32, 0.5)),
        floatTensor('pwb', [4], randn(4, 0.1)),
      ],
    },
  );
}

function channelMax(t: ort.Tensor): number[] {
  const [n, c] = t.dims;
  const hw = t.data.length / (n * c);
  const out = new Array(c).fill(0);
  const v = t.data as Float32Array;
  for (let s = 0; s < n; s++)
    for (let k = 0; k < c; k++)
      for (let i = 0; i < hw; i++) out[k] = Math.max(out[k], Math.abs(v[(s * c + k) * hw + i]));
  return out;
}

describe('affine folding and cross-layer equalisation', () => {
  it('fold Mul/Add into the Conv and balance channel ranges without changing outputs', async () => {
    const original = model();
    const m = cloneModel(original);
    expect(foldAffineIntoConv(m.graph)).toBe(2);
    expect(m.graph.node.map((n) => n.opType)).toEqual(['Conv', 'Conv']);
    const x = randn(4 * 8 * 36);
    const data = { x, count: 4, sampleShape: [8, 6, 6] };
    const feeds = { x: new ort.Tensor('float32', x, [4, 8, 6, 6]) };
    const mid = m.graph.node[0].output[0];
    const before = channelMax((await runOnce(withExtraOutputs(m, [mid]), feeds))[mid]);
    expect(await equalizeCrossLayer(m, data)).toBe(1);
    const after = channelMax((await runOnce(withExtraOutputs(m, [mid]), feeds))[mid]);
    const spread = (r: number[]) => Math.max(...r) / Math.min(...r);
    expect(spread(before)).toBeGreaterThan(100);
    expect(spread(after)).toBeLessThan(spread(before) / 10);
    const a = (await runOnce(original, feeds)).y.data as Float32Array;
    const b = (await runOnce(m, feeds)).y.data as Float32Array;
    for (let i = 0; i < a.length; i++) expect(b[i]).toBeCloseTo(a[i], 3);
  });
});
