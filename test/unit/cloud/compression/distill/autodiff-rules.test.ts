import { describe, expect, it } from 'vitest';
import { buildBackward } from '../../../../../cloud/compression/distill/autodiff/backward.js';
import {
  type GradCheckCase,
  gradientCheck,
} from '../../../../../cloud/compression/distill/autodiff/gradcheck.js';
import { differentiableOps } from '../../../../../cloud/compression/distill/autodiff/registry.js';
import { attr, makeModel, makeNode, makeValueInfo } from '../../../../../cloud/compression/onnx/build.js';
import { encodeModel } from '../../../../../cloud/compression/onnx/proto.js';
import { floatTensor, makeTensor } from '../../../../../cloud/compression/onnx/tensor.js';
import { DataType } from '../../../../../cloud/compression/onnx/types.js';
import { createSession, ort } from '../../../../../cloud/compression/runtime/ort.js';
import { createRng } from '../../../../../shared/random.js';

// Every gradient rule against central finite differences: float64 where onnxruntime has
// float64 kernels for the forward and backward ops (tolerance 1e-5), float32 otherwise (Conv,
// pooling, HardSwish: tolerance 2e-2 with a 1e-2 step).
const TOLERANCE = { float64: 1e-5, float32: 2e-2 };

/** Values in [-1, 1) kept at least `gap` away from zero (ReLU-like kinks). */
function awayFromZero(n: number, seed: number, gap = 0.05): number[] {
  const rng = createRng(seed);
  return Array.from({ length: n }, () => {
    const v = rng() * 2 - 1;
    return Math.abs(v) < gap ? v + Math.sign(v || 1) * gap * 2 : v;
  });
}

/** Distinct values spaced apart (no ties inside a MaxPool window). */
function distinct(n: number, seed: number): number[] {
  const rng = createRng(seed);
  const v = Array.from({ length: n }, (_, i) => (i - n / 2) * 0.1);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    [v[i], v[j]] = [v[j], v[i]];
  }
  return v;
}

const node = makeNode;

const CASES: Record<string, GradCheckCase> = {
  Gemm: {
    nodes: [node('Gemm', ['a', 'b', 'c'], ['y'], [attr.float('alpha', 0.7), attr.float('beta', 1.3)])],
    inputs: [
      { name: 'a', shape: [3, 4] },
      { name: 'b', shape: [4, 5] },
      { name: 'c', shape: [5] },
    ],
    output: 'y',
  },
  'Gemm transA transB': {
    nodes: [node('Gemm', ['a', 'b', 'c'], ['y'], [attr.int('transA', 1), attr.int('transB', 1)])],
    inputs: [
      { name: 'a', shape: [4, 3] },
      { name: 'b', shape: [5, 4] },
      { name: 'c', shape: [3, 1] },
    ],
    output: 'y',
  },
  'MatMul batched with broadcast': {
    nodes: [node('MatMul', ['a', 'b'], ['y'])],
    inputs: [
      { name: 'a', shape: [2, 3, 4] },
      { name: 'b', shape: [4, 2] },
    ],
    output: 'y',
  },
  'Add broadcast': {
    nodes: [node('Add', ['a', 'b'], ['y'])],
    inputs: [
      { name: 'a', shape: [2, 3, 4] },
      { name: 'b', shape: [3, 1] },
    ],
    output: 'y',
  },
  'Sub broadcast': {
    nodes: [node('Sub', ['a', 'b'], ['y'])],
    inputs: [
      { name: 'a', shape: [4] },
      { name: 'b', shape: [2, 3, 4] },
    ],
    output: 'y',
  },
  'Mul broadcast': {
    nodes: [node('Mul', ['a', 'b'], ['y'])],
    inputs: [
      { name: 'a', shape: [2, 1, 4] },
      { name: 'b', shape: [3, 1] },
    ],
    output: 'y',
  },
  'Div broadcast': {
    nodes: [node('Div', ['a', 'b'], ['y'])],
    inputs: [
      { name: 'a', shape: [2, 3] },
      { name: 'b', shape: [3], values: [1.5, -0.8, 2.2] },
    ],
    output: 'y',
  },
  Relu: {
    nodes: [node('Relu', ['x'], ['y'])],
    inputs: [{ name: 'x', shape: [3, 5], values: awayFromZero(15, 1) }],
    output: 'y',
  },
  LeakyRelu: {
    nodes: [node('LeakyRelu', ['x'], ['y'], [attr.float('alpha', 0.1)])],
    inputs: [{ name: 'x', shape: [3, 5], values: awayFromZero(15, 2) }],
    output: 'y',
  },
  Sigmoid: { nodes: [node('Sigmoid', ['x'], ['y'])], inputs: [{ name: 'x', shape: [3, 4] }], output: 'y' },
  Tanh: { nodes: [node('Tanh', ['x'], ['y'])], inputs: [{ name: 'x', shape: [3, 4] }], output: 'y' },
  Erf: { nodes: [node('Erf', ['x'], ['y'])], inputs: [{ name: 'x', shape: [3, 4] }], output: 'y' },
  Clip: {
    nodes: [node('Clip', ['x', 'lo', 'hi'], ['y'])],
    inputs: [{ name: 'x', shape: [16], values: distinct(16, 3).map((v) => v + 0.05) }],
    constants: (dt) => [makeTensor('lo', dt, [], [-0.32]), makeTensor('hi', dt, [], [0.48])],
    output: 'y',
  },
  HardSwish: {
    nodes: [node('HardSwish', ['x'], ['y'])],
    inputs: [{ name: 'x', shape: [12], values: [-4, -2.5, -1, -0.3, 0.2, 0.9, 1.7, 2.6, 3.5, 5, -3.6, 2.9] }],
    output: 'y',
  },
  Conv: {
    nodes: [node('Conv', ['x', 'w', 'b'], ['y'], [attr.ints('pads', [1, 1, 1, 1])])],
    inputs: [
      { name: 'x', shape: [2, 3, 5, 5] },
      { name: 'w', shape: [4, 3, 3, 3] },
      { name: 'b', shape: [4] },
    ],
    output: 'y',
  },
  // 1×1, stride 1, no pads: the weight gradient is a batched MatMul (the pointwise path).
  'Conv 1×1': {
    nodes: [node('Conv', ['x', 'w', 'b'], ['y'])],
    inputs: [
      { name: 'x', shape: [3, 4, 2, 5] },
      { name: 'w', shape: [6, 4, 1, 1] },
      { name: 'b', shape: [6] },
    ],
    output: 'y',
  },
  'ConvTranspose 1×1': {
    nodes: [node('ConvTranspose', ['x', 'w'], ['y'])],
    inputs: [
      { name: 'x', shape: [2, 5, 3, 3] },
      { name: 'w', shape: [5, 3, 1, 1] },
    ],
    output: 'y',
  },
  'Conv stride 2 odd size asymmetric pads': {
    nodes: [node('Conv', ['x', 'w'], ['y'], [attr.ints('strides', [2, 2]), attr.ints('pads', [1, 0, 0, 1])])],
    inputs: [
      { name: 'x', shape: [2, 2, 7, 6] },
      { name: 'w', shape: [3, 2, 3, 2] },
    ],
    output: 'y',
  },
  'Conv grouped dilated': {
    nodes: [
      node(
        'Conv',
        ['x', 'w', 'b'],
        ['y'],
        [attr.int('group', 2), attr.ints('dilations', [2, 2]), attr.ints('pads', [2, 2, 2, 2])],
      ),
    ],
    inputs: [
      { name: 'x', shape: [2, 4, 6, 6] },
      { name: 'w', shape: [6, 2, 3, 3] },
      { name: 'b', shape: [6] },
    ],
    output: 'y',
  },
  'Conv depthwise stride 1': {
    nodes: [node('Conv', ['x', 'w', 'b'], ['y'], [attr.int('group', 3), attr.ints('pads', [1, 1, 1, 1])])],
    inputs: [
      { name: 'x', shape: [2, 3, 5, 6] },
      { name: 'w', shape: [3, 1, 3, 3] },
      { name: 'b', shape: [3] },
    ],
    output: 'y',
  },
  'Conv depthwise stride 1, 5×3 kernel, dilation 2, asymmetric pads': {
    nodes: [
      node(
        'Conv',
        ['x', 'w'],
        ['y'],
        [attr.int('group', 4), attr.ints('dilations', [2, 1]), attr.ints('pads', [3, 0, 4, 2])],
      ),
    ],
    inputs: [
      { name: 'x', shape: [2, 4, 7, 5] },
      { name: 'w', shape: [4, 1, 5, 3] },
    ],
    output: 'y',
  },
  'Conv depthwise stride 2 SAME_UPPER': {
    nodes: [
      node(
        'Conv',
        ['x', 'w'],
        ['y'],
        [attr.int('group', 3), attr.ints('strides', [2, 2]), attr.string('auto_pad', 'SAME_UPPER')],
      ),
    ],
    inputs: [
      { name: 'x', shape: [2, 3, 7, 7] },
      { name: 'w', shape: [3, 1, 3, 3] },
    ],
    output: 'y',
  },
  MaxPool: {
    nodes: [node('MaxPool', ['x'], ['y'], [attr.ints('kernel_shape', [2, 2]), attr.ints('strides', [2, 2])])],
    inputs: [{ name: 'x', shape: [2, 2, 4, 5], values: distinct(80, 4) }],
    output: 'y',
  },
  'MaxPool overlapping padded': {
    nodes: [
      node(
        'MaxPool',
        ['x'],
        ['y'],
        [attr.ints('kernel_shape', [3, 3]), attr.ints('strides', [2, 2]), attr.ints('pads', [1, 1, 1, 1])],
      ),
    ],
    inputs: [{ name: 'x', shape: [1, 2, 5, 5], values: distinct(50, 5) }],
    output: 'y',
  },
  AveragePool: {
    nodes: [
      node(
        'AveragePool',
        ['x'],
        ['y'],
        [attr.ints('kernel_shape', [3, 3]), attr.ints('strides', [2, 2]), attr.ints('pads', [1, 1, 1, 1])],
      ),
    ],
    inputs: [{ name: 'x', shape: [2, 2, 5, 6] }],
    output: 'y',
  },
  'AveragePool ceil count_include_pad': {
    nodes: [
      node(
        'AveragePool',
        ['x'],
        ['y'],
        [
          attr.ints('kernel_shape', [2, 2]),
          attr.ints('strides', [2, 2]),
          attr.ints('pads', [1, 1, 0, 0]),
          attr.int('count_include_pad', 1),
          attr.int('ceil_mode', 1),
        ],
      ),
    ],
    inputs: [{ name: 'x', shape: [1, 2, 5, 6] }],
    output: 'y',
  },
  GlobalAveragePool: {
    nodes: [node('GlobalAveragePool', ['x'], ['y'])],
    inputs: [{ name: 'x', shape: [2, 3, 4, 5] }],
    output: 'y',
  },
  'BatchNormalization training': {
    nodes: [
      node(
        'BatchNormalization',
        ['x', 's', 'b', 'm', 'v'],
        ['y', 'rm', 'rv'],
        [attr.int('training_mode', 1)],
      ),
    ],
    inputs: [
      { name: 'x', shape: [4, 3, 2, 2] },
      { name: 's', shape: [3] },
      { name: 'b', shape: [3] },
    ],
    constants: (dt) => [makeTensor('m', dt, [3], [0.1, 0.2, 0.3]), makeTensor('v', dt, [3], [1, 2, 0.5])],
    output: 'y',
  },
  'BatchNormalization inference': {
    nodes: [node('BatchNormalization', ['x', 's', 'b', 'm', 'v'], ['y'])],
    inputs: [
      { name: 'x', shape: [4, 3, 2, 2] },
      { name: 's', shape: [3] },
      { name: 'b', shape: [3] },
    ],
    constants: (dt) => [makeTensor('m', dt, [3], [0.1, 0.2, 0.3]), makeTensor('v', dt, [3], [1, 2, 0.5])],
    output: 'y',
  },
  LayerNormalization: {
    nodes: [node('LayerNormalization', ['x', 's', 'b'], ['y'], [attr.int('axis', 1)])],
    inputs: [
      { name: 'x', shape: [3, 2, 4] },
      { name: 's', shape: [2, 4] },
      { name: 'b', shape: [4] },
    ],
    output: 'y',
  },
  'Flatten then Reshape': {
    nodes: [node('Flatten', ['x'], ['f'], [attr.int('axis', 2)]), node('Reshape', ['f', 'shape'], ['y'])],
    inputs: [{ name: 'x', shape: [2, 3, 2, 2] }],
    constants: () => [makeTensor('shape', DataType.INT64, [2], [4, 6])],
    output: 'y',
  },
  Transpose: {
    nodes: [node('Transpose', ['x'], ['y'], [attr.ints('perm', [2, 0, 1])])],
    inputs: [{ name: 'x', shape: [2, 3, 4] }],
    output: 'y',
  },
  Concat: {
    nodes: [node('Concat', ['a', 'b'], ['y'], [attr.int('axis', -1)])],
    inputs: [
      { name: 'a', shape: [2, 3] },
      { name: 'b', shape: [2, 2] },
    ],
    output: 'y',
  },
  Slice: {
    nodes: [node('Slice', ['x', 'st', 'en', 'ax'], ['y'])],
    inputs: [{ name: 'x', shape: [4, 6] }],
    constants: () => [
      makeTensor('st', DataType.INT64, [2], [1, -4]),
      makeTensor('en', DataType.INT64, [2], [3, 1000]),
      makeTensor('ax', DataType.INT64, [2], [0, 1]),
    ],
    output: 'y',
  },
  Softmax: {
    nodes: [node('Softmax', ['x'], ['y'], [attr.int('axis', 1)])],
    inputs: [{ name: 'x', shape: [2, 4, 3] }],
    output: 'y',
  },
  LogSoftmax: {
    nodes: [node('LogSoftmax', ['x'], ['y'])],
    inputs: [{ name: 'x', shape: [3, 5] }],
    output: 'y',
  },
  ReduceMean: {
    nodes: [node('ReduceMean', ['x'], ['y'], [attr.ints('axes', [0, 2]), attr.int('keepdims', 0)])],
    inputs: [{ name: 'x', shape: [2, 3, 4] }],
    output: 'y',
  },
  ReduceSum: {
    nodes: [node('ReduceSum', ['x', 'axes'], ['y'])],
    inputs: [{ name: 'x', shape: [2, 3, 4] }],
    constants: () => [makeTensor('axes', DataType.INT64, [1], [1])],
    output: 'y',
  },
  'Dropout training (seeded)': {
    // The seeded mask is the same in the analytic and numeric sessions: same seed, same call order.
    nodes: [node('Dropout', ['x', 'ratio', 'train'], ['y', 'mask'], [attr.int('seed', 3)])],
    inputs: [{ name: 'x', shape: [40] }],
    constants: (dt) => [makeTensor('ratio', dt, [], [0.25]), makeTensor('train', DataType.BOOL, [], [1])],
    output: 'y',
    samples: 40,
    freshSessions: true,
  },
  'Elementwise Exp Log Sqrt Neg Pow': {
    nodes: [
      node('Exp', ['x'], ['e']),
      node('Sqrt', ['e'], ['s']),
      node('Log', ['s'], ['l']),
      node('Neg', ['l'], ['n']),
      node('Pow', ['n', 'two'], ['y']),
    ],
    inputs: [{ name: 'x', shape: [6] }],
    constants: (dt) => [makeTensor('two', dt, [], [2])],
    output: 'y',
  },
  'ConvTranspose stride 2, pads, output_padding, bias': {
    nodes: [
      node(
        'ConvTranspose',
        ['x', 'w', 'b'],
        ['y'],
        [attr.ints('strides', [2, 2]), attr.ints('pads', [1, 0, 1, 1]), attr.ints('output_padding', [1, 1])],
      ),
    ],
    inputs: [
      { name: 'x', shape: [2, 3, 3, 3] },
      { name: 'w', shape: [3, 2, 3, 3] },
      { name: 'b', shape: [2] },
    ],
    output: 'y',
    dtype: 'float32',
  },
  'ConvTranspose group 2, dilation 2': {
    nodes: [node('ConvTranspose', ['x', 'w'], ['y'], [attr.int('group', 2), attr.ints('dilations', [2, 2])])],
    inputs: [
      { name: 'x', shape: [1, 4, 3, 3] },
      { name: 'w', shape: [4, 3, 2, 2] },
    ],
    output: 'y',
    dtype: 'float32',
  },
  'Resize nearest ×2 (scales, half_pixel)': {
    nodes: [node('Resize', ['x', '', 'sc'], ['y'], [attr.string('mode', 'nearest')])],
    inputs: [{ name: 'x', shape: [1, 2, 3, 4] }],
    constants: () => [makeTensor('sc', DataType.FLOAT, [4], [1, 1, 2, 2])],
    output: 'y',
  },
  'Resize nearest ×1.5 (asymmetric, floor; an roi input as opset-11 exporters write it)': {
    nodes: [
      node(
        'Resize',
        ['x', 'roi', 'sc'],
        ['y'],
        [
          attr.string('mode', 'nearest'),
          attr.string('coordinate_transformation_mode', 'asymmetric'),
          attr.string('nearest_mode', 'floor'),
        ],
      ),
    ],
    inputs: [{ name: 'x', shape: [1, 1, 4, 4] }],
    constants: () => [
      makeTensor('roi', DataType.FLOAT, [8], [0, 0, 0, 0, 1, 1, 1, 1]),
      makeTensor('sc', DataType.FLOAT, [4], [1, 1, 1.5, 1.5]),
    ],
    output: 'y',
  },
  'Resize linear to sizes (half_pixel)': {
    nodes: [node('Resize', ['x', '', '', 'sizes'], ['y'], [attr.string('mode', 'linear')])],
    inputs: [{ name: 'x', shape: [1, 2, 3, 4] }],
    constants: () => [makeTensor('sizes', DataType.INT64, [4], [1, 2, 5, 7])],
    output: 'y',
  },
  'Resize linear ×2 (align_corners)': {
    nodes: [
      node(
        'Resize',
        ['x', '', 'sc'],
        ['y'],
        [attr.string('mode', 'linear'), attr.string('coordinate_transformation_mode', 'align_corners')],
      ),
    ],
    inputs: [{ name: 'x', shape: [1, 1, 3, 3] }],
    constants: () => [makeTensor('sc', DataType.FLOAT, [4], [1, 1, 2, 2])],
    output: 'y',
  },
  'Max and Min (two inputs, broadcast)': {
    nodes: [node('Max', ['a', 'b'], ['m']), node('Min', ['m', 'c'], ['y'])],
    inputs: [
      { name: 'a', shape: [2, 3], values: [0.9, -0.4, 0.3, -0.8, 0.6, 0.1] },
      { name: 'b', shape: [3], values: [0.2, 0.5, -0.6] },
      { name: 'c', shape: [2, 1], values: [0.45, -0.05] },
    ],
    output: 'y',
  },
  'Cast float to float (the gradient passes)': {
    nodes: [node('Cast', ['x'], ['c'], [attr.int('to', DataType.FLOAT)]), node('Mul', ['c', 'x'], ['y'])],
    inputs: [{ name: 'x', shape: [3, 4] }],
    output: 'y',
    dtype: 'float32',
  },
  'Cast through int64 (a staircase: no gradient flows through it)': {
    // y = trunc(3x) + x: dy/dx = 1 away from the steps (values keep 3x ≥ 0.2 from integers).
    nodes: [
      node('Mul', ['x', 'three'], ['x3']),
      node('Cast', ['x3'], ['i'], [attr.int('to', DataType.INT64)]),
      node('Cast', ['i'], ['f'], [attr.int('to', DataType.FLOAT)]),
      node('Add', ['f', 'x'], ['y']),
    ],
    inputs: [{ name: 'x', shape: [6], values: [0.1, 0.25, -0.4, 0.6, -0.9, 0.75] }],
    constants: () => [makeTensor('three', DataType.FLOAT, [], [3])],
    output: 'y',
    dtype: 'float32',
  },
  'Shape and Cast computing a Reshape target (a dynamic reshape as paddle2onnx writes it)': {
    // The target [N, -1] is computed from the feature map itself: Shape → Cast → Slice →
    // Cast → Concat; the gradient flows through Reshape's data input only.
    nodes: [
      node('Mul', ['x', 'x'], ['sq']),
      node('Shape', ['sq'], ['s']),
      node('Cast', ['s'], ['sf'], [attr.int('to', DataType.FLOAT)]),
      node('Slice', ['sf', 'zero', 'one'], ['nf']),
      node('Cast', ['nf'], ['n'], [attr.int('to', DataType.INT64)]),
      node('Concat', ['n', 'minus_one'], ['target'], [attr.int('axis', 0)]),
      node('Reshape', ['sq', 'target'], ['y']),
    ],
    inputs: [{ name: 'x', shape: [2, 3, 4] }],
    constants: () => [
      makeTensor('zero', DataType.INT64, [1], [0]),
      makeTensor('one', DataType.INT64, [1], [1]),
      makeTensor('minus_one', DataType.INT64, [1], [-1]),
    ],
    output: 'y',
    dtype: 'float32',
  },
  'Gather scalar index, axis 0 (q, k or v out of one attention projection)': {
    nodes: [node('Gather', ['x', 'i'], ['g'], [attr.int('axis', 0)]), node('Mul', ['g', 'g'], ['y'])],
    inputs: [{ name: 'x', shape: [3, 2, 4] }],
    constants: () => [makeTensor('i', DataType.INT64, [], [1])],
    output: 'y',
  },
  'Gather repeated and negative indices, axis 1': {
    nodes: [node('Gather', ['x', 'i'], ['y'], [attr.int('axis', 1)])],
    inputs: [{ name: 'x', shape: [2, 5, 3] }],
    constants: () => [makeTensor('i', DataType.INT64, [2, 2], [0, 3, -1, 3])],
    output: 'y',
  },
  'Fake quantization (STE)': {
    nodes: [
      node('QuantizeLinear', ['x', 'sc', 'zp'], ['q']),
      node('DequantizeLinear', ['q', 'sc', 'zp'], ['y']),
    ],
    inputs: [{ name: 'x', shape: [8], values: [-1.9, -0.7, -0.2, 0.13, 0.41, 0.77, 1.2, 2.4] }],
    constants: () => [makeTensor('sc', DataType.FLOAT, [], [0.01]), makeTensor('zp', DataType.INT8, [], [0])],
    output: 'y',
    dtype: 'float32',
  },
};

describe('gradient rules vs finite differences', () => {
  for (const [name, spec] of Object.entries(CASES)) {
    if (name === 'Fake quantization (STE)') continue;
    it(name, async () => {
      const result = await gradientCheck(spec);
      expect(result.checked).toBeGreaterThan(0);
      expect(result.maxRelativeError).toBeLessThan(TOLERANCE[result.dtype]);
    });
  }

  it('seeded Dropout draws the same first mask in every session and drops about the ratio', async () => {
    const model = makeModel(
      [node('Dropout', ['x', 'ratio', 'train'], ['y', 'mask'], [attr.int('seed', 11)])],
      [makeValueInfo('x', DataType.FLOAT, [1000])],
      [makeValueInfo('y', DataType.FLOAT, [1000])],
      { initializers: [floatTensor('ratio', [], [0.25]), makeTensor('train', DataType.BOOL, [], [1])] },
    );
    const feeds = { x: new ort.Tensor('float32', new Float32Array(1000).fill(1), [1000]) };
    const first = await (await createSession(encodeModel(model))).run(feeds);
    const again = await (await createSession(encodeModel(model))).run(feeds);
    const a = first.y.data as Float32Array;
    expect(Array.from(a)).toEqual(Array.from(again.y.data as Float32Array));
    const dropped = a.filter((v) => v === 0).length / 1000;
    expect(dropped).toBeGreaterThan(0.2);
    expect(dropped).toBeLessThan(0.3);
  });

  it('fake quantization passes the gradient straight through inside the range, zero outside', async () => {
    // Finite differences see the rounding staircase, so check the STE by its definition.
    const spec = CASES['Fake quantization (STE)'];
    const model = makeModel(spec.nodes, [makeValueInfo('x', DataType.FLOAT, [8])], [], {
      initializers: spec.constants!(DataType.FLOAT),
    });
    const shapes = new Map<string, number[]>([
      ['sc', []],
      ['zp', []],
      ['x', [8]],
      ['q', [8]],
      ['y', [8]],
    ]);
    const back = buildBackward(model.graph, 'y', ['x'], shapes);
    model.graph.node.push(...back.nodes);
    model.graph.initializer!.push(...back.initializers);
    model.graph.output = [makeValueInfo(back.gradients.get('x')!, DataType.FLOAT, [8])];
    const x = Float32Array.from(spec.inputs[0].values!);
    const out = await (await createSession(encodeModel(model))).run({ x: new ort.Tensor('float32', x, [8]) });
    // int8 with scale 0.01 represents [-1.28, 1.27]: -1.9 and 2.4 are clipped.
    expect(Array.from(out[back.gradients.get('x')!].data as Float32Array)).toEqual([0, 1, 1, 1, 1, 1, 1, 0]);
  });

  it('takes the weight gradient of a 1×1 convolution as a MatMul, of a 3×3 one as a Conv', () => {
    const weightGradientOps = (kernel: number) => {
      const model = makeModel(
        [node('Conv', ['x', 'w'], ['y'], kernel === 3 ? [attr.ints('pads', [1, 1, 1, 1])] : [])],
        [
          makeValueInfo('x', DataType.FLOAT, [2, 4, 3, 5]),
          makeValueInfo('w', DataType.FLOAT, [6, 4, kernel, kernel]),
        ],
        [],
      );
      const shapes = new Map<string, number[]>([
        ['x', [2, 4, 3, 5]],
        ['w', [6, 4, kernel, kernel]],
        ['y', [2, 6, 3, 5]],
      ]);
      return buildBackward(model.graph, 'y', ['w'], shapes).nodes.map((n) => n.opType);
    };
    expect(weightGradientOps(1)).toContain('MatMul');
    expect(weightGradientOps(1)).not.toContain('Conv');
    expect(weightGradientOps(3)).toContain('Conv');
  });

  it('covers every op the issue lists', () => {
    const required = [
      'Gemm',
      'MatMul',
      'Add',
      'Sub',
      'Mul',
      'Div',
      'Relu',
      'LeakyRelu',
      'Sigmoid',
      'Tanh',
      'Clip',
      'HardSwish',
      'Conv',
      'MaxPool',
      'AveragePool',
      'GlobalAveragePool',
      'BatchNormalization',
      'Flatten',
      'Reshape',
      'Transpose',
      'Concat',
      'Slice',
      'Softmax',
      'LogSoftmax',
      'ReduceMean',
      'ReduceSum',
      'Dropout',
      'LayerNormalization',
      'Shape',
      'Cast',
    ];
    const ops = differentiableOps();
    for (const op of required) expect(ops).toContain(op);
    for (const op of required) {
      expect(
        Object.keys(CASES).some((c) => c.startsWith(op) || c.includes(` ${op}`) || c.includes(`${op} `)),
      ).toBe(true);
    }
  });
});
