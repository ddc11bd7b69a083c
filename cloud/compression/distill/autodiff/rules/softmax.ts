import { attrInt } from '../../../onnx/graph.js';
import type { GradRule } from '../types.js';

// Opset 13 semantics: the normalisation runs along one axis (default -1).
export const SOFTMAX_RULES: Record<string, GradRule> = {
  Softmax: {
    differentiable: [0],
    backward(ctx) {
      const y = ctx.node.output[0];
      const dy = ctx.gradOutputs[0]!;
      const axis = attrInt(ctx.node, 'axis', -1);
      const dot = ctx.reduce('ReduceSum', ctx.op('Mul', [dy, y]), [axis], true);
      return [ctx.op('Mul', [y, ctx.op('Sub', [dy, dot])])];
    },
  },
  LogSoftmax: {
    differentiable: [0],
    backward(ctx) {
      const y = ctx.node.output[0];
      const dy = ctx.gradOutputs[0]!;
      const axis = attrInt(ctx.node, 'axis', -1);
      const total = ctx.reduce('ReduceSum', dy, [axis], true);
      return [ctx.op('Sub', [dy, ctx.op('Mul', [ctx.op('Exp', [y]), total])])];
    },
  },
};
