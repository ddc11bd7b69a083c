import { attrInt, attrInts } from '../../../onnx/graph.js';
import type { GradContext, GradRule } from '../types.js';

/** Axes of a ReduceSum/ReduceMean node, from the attribute (old opsets) or the constant input. */
function reducedAxes(ctx: GradContext, rank: number): number[] {
  const fromInput = ctx.node.input[1] ? ctx.constant(ctx.node.input[1]) : undefined;
  const axes = attrInts(ctx.node, 'axes') ?? fromInput ?? [];
  if (axes.length === 0 && attrInt(ctx.node, 'noop_with_empty_axes', 0) === 0) {
    return Array.from({ length: rank }, (_, i) => i);
  }
  return axes.map((a) => (a < 0 ? a + rank : a));
}

function reduceRule(mean: boolean): GradRule {
  return {
    differentiable: [0],
    backward(ctx) {
      const xs = ctx.shape(ctx.node.input[0]);
      const axes = reducedAxes(ctx, xs.length);
      const kept = xs.map((d, i) => (axes.includes(i) ? 1 : d));
      let g = ctx.op('Reshape', [ctx.gradOutputs[0]!, ctx.int64s(kept)]);
      if (mean) {
        const count = axes.reduce((n, a) => n * xs[a], 1);
        g = ctx.op('Mul', [g, ctx.scalar(1 / count)]);
      }
      return [ctx.op('Expand', [g, ctx.int64s(xs)])];
    },
  };
}

export const REDUCE_RULES: Record<string, GradRule> = {
  ReduceSum: reduceRule(false),
  ReduceMean: reduceRule(true),
};
