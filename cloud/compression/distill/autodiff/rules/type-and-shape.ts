import { attr } from '../../../onnx/build.js';
import { attrInt } from '../../../onnx/graph.js';
import { DataType } from '../../../onnx/types.js';
import type { GradRule } from '../types.js';

const FLOAT_TYPES: ReadonlySet<number> = new Set([
  DataType.FLOAT,
  DataType.DOUBLE,
  DataType.FLOAT16,
  DataType.BFLOAT16,
]);

/**
 * Ops exporters put between feature maps and the shapes computed from them. Shape and Size
 * give integers: no gradient flows back through them. Cast between float types passes the
 * gradient unchanged (cast back to the graph's float type, the only float type a training
 * graph carries); a cast to an integer or bool type rounds, whose gradient is zero almost
 * everywhere, so none flows either.
 */
export const TYPE_AND_SHAPE_RULES: Record<string, GradRule> = {
  Shape: { differentiable: [], backward: () => [] },
  Size: { differentiable: [], backward: () => [] },
  Cast: {
    differentiable: [0],
    backward(ctx) {
      const to = attrInt(ctx.node, 'to', DataType.FLOAT);
      if (!FLOAT_TYPES.has(to)) return [undefined];
      return [ctx.op('Cast', [ctx.gradOutputs[0]!], [attr.int('to', ctx.dtype)])];
    },
  },
};
