import { attrInt, attrString } from '../../onnx/graph.js';
import type { NodeProto } from '../../onnx/types.js';
import type { NodePlan, OpQuantizer, PlanContext } from './types.js';

const OWN = { kind: 'own' } as const;

/** Conv, ConvTranspose, Gemm, MatMul: int8 per-channel weights, int32 bias, quantized in/out. */
function weighted(weightAxis: (node: NodeProto, ctx: PlanContext) => number | undefined): OpQuantizer {
  return (node, ctx) => {
    const w = node.input[1];
    if (!ctx.index.isInitializer(w)) {
      // Activation × activation (e.g. attention MatMul): both sides quantized per tensor.
      return node.opType === 'MatMul' ? { activations: [0, 1], output: OWN } : undefined;
    }
    const axis = weightAxis(node, ctx);
    if (axis === undefined) return undefined;
    const plan: NodePlan = { activations: [0], weight: { index: 1, axis }, output: OWN };
    if (node.input[2] && ctx.index.isInitializer(node.input[2])) plan.bias = 2;
    else if (node.input[2]) return undefined;
    return plan;
  };
}

/** Element-wise ops with QLinear forms: every float input and the output are quantized. */
const elementwise: OpQuantizer = (node) => ({
  activations: node.input.map((_, i) => i).filter((i) => node.input[i] !== ''),
  output: OWN,
});

const unary: OpQuantizer = () => ({ activations: [0], output: OWN });

/** Shape-only ops: the integers pass through unchanged, so the output shares the input's parameters. */
const follower: OpQuantizer = () => ({
  activations: [],
  output: { kind: 'share', from: 0 },
  needsQuantizedInput: true,
});

const mul: OpQuantizer = (node, ctx) => {
  for (const [x, c] of [
    [0, 1],
    [1, 0],
  ]) {
    const value = ctx.scalar(node.input[c]);
    if (value !== undefined && value > 0) {
      return {
        activations: [],
        output: { kind: 'alias', from: x, factor: value },
        needsQuantizedInput: true,
      };
    }
  }
  return elementwise(node, ctx);
};

const clip: OpQuantizer = (node, ctx) => {
  const lo = node.input[1] ? ctx.scalar(node.input[1]) : undefined;
  const hi = node.input[2] ? ctx.scalar(node.input[2]) : Number.POSITIVE_INFINITY;
  if (lo !== 0 || hi === undefined) return undefined;
  return { activations: [], output: { kind: 'absorb', clip: { min: 0, max: hi } } };
};

const OP_QUANTIZERS: Readonly<Record<string, OpQuantizer>> = {
  Conv: weighted(() => 0),
  ConvTranspose: weighted((node) => (attrInt(node, 'group', 1) === 1 ? 1 : undefined)),
  Gemm: weighted((node) => (attrInt(node, 'transB', 0) === 1 ? 0 : 1)),
  // Per-column MatMul weights (axis 1); QLinearMatMul and MatMulIntegerToFloat accept them.
  MatMul: weighted((node, ctx) => (ctx.rank(node.input[1]) === 2 ? 1 : undefined)),
  Add: elementwise,
  Mul: mul,
  Concat: elementwise,
  Relu: () => ({
    activations: [],
    output: { kind: 'absorb', clip: { min: 0, max: Number.POSITIVE_INFINITY } },
  }),
  Clip: clip,
  LeakyRelu: unary,
  Sigmoid: unary,
  AveragePool: unary,
  GlobalAveragePool: unary,
  Softmax: (node) =>
    attrInt(node, 'axis', -1) === -1
      ? { activations: [0], output: { kind: 'fixed', range: { min: 0, max: 1 } } }
      : undefined,
  MaxPool: (node) =>
    node.output.length === 1 || !node.output[1] ? follower(node, {} as PlanContext) : undefined,
  Resize: (node) =>
    (attrString(node, 'mode') ?? 'nearest') === 'nearest' ? follower(node, {} as PlanContext) : undefined,
  Reshape: follower,
  Transpose: follower,
  Flatten: follower,
  Squeeze: follower,
  Unsqueeze: follower,
  Slice: follower,
  Identity: () => ({
    activations: [],
    output: { kind: 'alias', from: 0, factor: 1 },
    needsQuantizedInput: true,
  }),
};

export function opQuantizer(opType: string): OpQuantizer | undefined {
  return Object.hasOwn(OP_QUANTIZERS, opType) ? OP_QUANTIZERS[opType] : undefined;
}
