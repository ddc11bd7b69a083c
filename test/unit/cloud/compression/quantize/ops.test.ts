import { describe, expect, it } from 'vitest';
import { attr, floatInput, makeModel, makeNode } from '../../../../../cloud/compression/onnx/build.js';
import { ort, runOnce } from '../../../../../cloud/compression/onnx/ort-eval.js';
import { floatTensor } from '../../../../../cloud/compression/onnx/tensor.js';
import type { NodeProto, TensorProto } from '../../../../../cloud/compression/onnx/types.js';
import { buildQdq, calibrateModel } from '../../../../../cloud/compression/quantize/static.js';
import { createRng, gaussian } from '../../../../../shared/random.js';

const rng = createRng(5);
const randn = (n: number, s = 1) => Float32Array.from({ length: n }, () => gaussian(rng) * s);

/** One op (after a Conv so there is something to quantize) vs its float reference. */
const CASES: Record<string, { nodes: NodeProto[]; inits: TensorProto[]; out: number[] }> = {
  Conv: { nodes: [], inits: [], out: [4, 8, 8, 8] },
  Relu: { nodes: [makeNode('Relu', ['c'], ['y'])], inits: [], out: [4, 8, 8, 8] },
  Add: { nodes: [makeNode('Add', ['c', 'x'], ['y'])], inits: [], out: [4, 8, 8, 8] },
  Mul: { nodes: [makeNode('Mul', ['c', 'x'], ['y'])], inits: [], out: [4, 8, 8, 8] },
  Sigmoid: { nodes: [makeNode('Sigmoid', ['c'], ['y'])], inits: [], out: [4, 8, 8, 8] },
  LeakyRelu: {
    nodes: [makeNode('LeakyRelu', ['c'], ['y'], [attr.float('alpha', 0.1)])],
    inits: [],
    out: [4, 8, 8, 8],
  },
  HardSigmoid: {
    nodes: [makeNode('HardSigmoid', ['c'], ['y'], [attr.float('alpha', 0.2), attr.float('beta', 0.5)])],
    inits: [],
    out: [4, 8, 8, 8],
  },
  HardSwish: { nodes: [makeNode('HardSwish', ['c'], ['y'])], inits: [], out: [4, 8, 8, 8] },
  GlobalAveragePool: { nodes: [makeNode('GlobalAveragePool', ['c'], ['y'])], inits: [], out: [4, 8, 1, 1] },
  MaxPool: {
    nodes: [
      makeNode('MaxPool', ['c'], ['y'], [attr.ints('kernel_shape', [2, 2]), attr.ints('strides', [2, 2])]),
    ],
    inits: [],
    out: [4, 8, 4, 4],
  },
  Concat: {
    nodes: [makeNode('Concat', ['c', 'x'], ['y'], [attr.int('axis', 1)])],
    inits: [],
    out: [4, 16, 8, 8],
  },
  Transpose: {
    nodes: [makeNode('Transpose', ['c'], ['y'], [attr.ints('perm', [0, 2, 3, 1])])],
    inits: [],
    out: [4, 8, 8, 8],
  },
  Softmax: {
    nodes: [makeNode('Softmax', ['c'], ['y'], [attr.int('axis', -1)])],
    inits: [],
    out: [4, 8, 8, 8],
  },
};

describe('op quantizers against the float reference', () => {
  for (const [op, c] of Object.entries(CASES)) {
    it(`${op} stays within quantization error`, async () => {
      const nodes = [
        makeNode(
          'Conv',
          ['x', 'w', 'b'],
          [op === 'Conv' ? 'y' : 'c'],
          [attr.ints('pads', [1, 1, 1, 1])],
          'conv',
        ),
        ...c.nodes,
      ];
      const model = makeModel(nodes, [floatInput('x', ['N', 8, 8, 8])], [floatInput('y', c.out)], {
        opset: op === 'HardSwish' ? 14 : 13,
        initializers: [
          floatTensor('w', [8, 8, 3, 3], randn(576, 0.2)),
          floatTensor('b', [8], randn(8, 0.1)),
          ...c.inits,
        ],
      });
      const data = { x: randn(16 * 512), count: 16, sampleShape: [8, 8, 8] };
      const q = buildQdq(await calibrateModel(model, data));
      const x = new ort.Tensor('float32', data.x.slice(0, 4 * 512), [4, 8, 8, 8]);
      const a = (await runOnce(model, { x })).y.data as Float32Array;
      const b = (await runOnce(q.model, { x })).y.data as Float32Array;
      let err = 0;
      let mag = 0;
      for (let i = 0; i < a.length; i++) {
        err = Math.max(err, Math.abs(a[i] - b[i]));
        mag = Math.max(mag, Math.abs(a[i]));
      }
      // A few quantization steps of the largest value (8-bit grids on inputs, weights, outputs).
      expect(err / mag).toBeLessThan(0.06);
      expect(q.model.graph.node.some((n) => n.opType === 'QuantizeLinear')).toBe(true);
    });
  }
});
