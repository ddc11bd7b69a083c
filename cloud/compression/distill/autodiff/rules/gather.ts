import { FleetError } from '../../../../../shared/errors/index.js';
import { attr } from '../../../onnx/build.js';
import { attrInt, describeNode } from '../../../onnx/graph.js';
import type { GradRule } from '../types.js';

/**
 * Gather with constant indices (exporters pick q, k and v out of one attention projection that
 * way: Gather(qkv, 0, axis 0)). Y = X[..., idx, ...] is linear in X: with M the [k, L] one-hot
 * matrix of the k flattened indices over the axis of length L, dX = dY·M moved back into X's
 * layout; repeated indices add up, as they should.
 */
export const GATHER_RULES: Record<string, GradRule> = {
  Gather: {
    differentiable: [0],
    backward(ctx) {
      const [x, indicesName] = ctx.node.input;
      const indices = ctx.constant(indicesName);
      if (!indices) {
        throw new FleetError(
          'GRAD_UNSUPPORTED_OP',
          `Gather ${describeNode(ctx.node)}: only constant indices are differentiable`,
          { op: 'Gather', node: ctx.node.name },
        );
      }
      const xs = ctx.shape(x);
      let axis = attrInt(ctx.node, 'axis', 0);
      if (axis < 0) axis += xs.length;
      const length = xs[axis];
      const before = xs.slice(0, axis).reduce((a, b) => a * b, 1);
      const after = xs.slice(axis + 1).reduce((a, b) => a * b, 1);
      const k = indices.length;
      const oneHot = new Array<number>(k * length).fill(0);
      indices.forEach((v, i) => {
        oneHot[i * length + (v < 0 ? v + length : v)] = 1;
      });
      // dY [before, k, after] → [before, after, k] · M [k, L] → [before, after, L] → X's layout.
      const grouped = ctx.op('Reshape', [ctx.gradOutputs[0]!, ctx.int64s([before, k, after])]);
      const moved = ctx.op('Transpose', [grouped], [attr.ints('perm', [0, 2, 1])]);
      const scattered = ctx.op('MatMul', [moved, ctx.floats(oneHot, [k, length])]);
      const back = ctx.op('Transpose', [scattered], [attr.ints('perm', [0, 2, 1])]);
      return [ctx.op('Reshape', [back, ctx.int64s(xs)])];
    },
  },
};
