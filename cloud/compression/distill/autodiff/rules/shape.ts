import { FleetError } from '../../../../../shared/errors/index.js';
import { attr } from '../../../onnx/build.js';
import { attrFloat, attrInt, attrInts, describeNode } from '../../../onnx/graph.js';
import type { GradContext, GradRule } from '../types.js';

/** Shape-only ops: the gradient is the output gradient put back into the input's shape. */
const reshapeBack: GradRule = {
  differentiable: [0],
  backward: (ctx) => [ctx.op('Reshape', [ctx.gradOutputs[0]!, ctx.int64s(ctx.shape(ctx.node.input[0]))])],
};

function constantInput(ctx: GradContext, index: number, what: string): number[] | undefined {
  const name = ctx.node.input[index];
  if (!name) return undefined;
  const values = ctx.constant(name);
  if (!values) {
    throw new FleetError(
      'GRAD_UNSUPPORTED_OP',
      `${describeNode(ctx.node)}: ${what} must be constant to differentiate ${ctx.node.opType}`,
      { op: ctx.node.opType, node: ctx.node.name },
    );
  }
  return values;
}

export const SHAPE_RULES: Record<string, GradRule> = {
  Flatten: reshapeBack,
  Reshape: reshapeBack,
  Squeeze: reshapeBack,
  Unsqueeze: reshapeBack,
  Transpose: {
    differentiable: [0],
    backward(ctx) {
      const rank = ctx.shape(ctx.node.input[0]).length;
      const perm = attrInts(ctx.node, 'perm') ?? Array.from({ length: rank }, (_, i) => rank - 1 - i);
      const inverse = Array<number>(rank);
      perm.forEach((p, i) => {
        inverse[p] = i;
      });
      return [ctx.op('Transpose', [ctx.gradOutputs[0]!], [attr.ints('perm', inverse)])];
    },
  },
  Concat: {
    differentiable: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
    backward(ctx) {
      const inputs = ctx.node.input;
      const rank = ctx.shape(inputs[0]).length;
      let axis = attrInt(ctx.node, 'axis', 0);
      if (axis < 0) axis += rank;
      const sizes = inputs.map((x) => ctx.shape(x)[axis]);
      const parts = ctx.opN('Split', [ctx.gradOutputs[0]!, ctx.int64s(sizes)], inputs.length, [
        attr.int('axis', axis),
      ]);
      return parts.map((p, i) => (ctx.needs(i) ? p : undefined));
    },
  },
  Slice: {
    differentiable: [0],
    backward(ctx) {
      const xs = ctx.shape(ctx.node.input[0]);
      const starts = constantInput(ctx, 1, 'starts')!;
      const ends = constantInput(ctx, 2, 'ends')!;
      const axes = constantInput(ctx, 3, 'axes') ?? starts.map((_, i) => i);
      const steps = constantInput(ctx, 4, 'steps') ?? starts.map(() => 1);
      if (steps.some((s) => s !== 1)) {
        throw new FleetError(
          'GRAD_UNSUPPORTED_OP',
          `${describeNode(ctx.node)}: Slice with steps other than 1`,
          {
            op: 'Slice',
            node: ctx.node.name,
          },
        );
      }
      // The gradient is dY zero-padded back to X's shape.
      const pads = Array<number>(2 * xs.length).fill(0);
      axes.forEach((a, i) => {
        const axis = a < 0 ? a + xs.length : a;
        const dim = xs[axis];
        const clamp = (v: number) => Math.min(Math.max(v < 0 ? v + dim : v, 0), dim);
        const start = clamp(starts[i]);
        const end = Math.max(clamp(ends[i]), start);
        pads[axis] = start;
        pads[axis + xs.length] = dim - end;
      });
      return [ctx.op('Pad', [ctx.gradOutputs[0]!, ctx.int64s(pads)])];
    },
  },
  Dropout: {
    differentiable: [0],
    backward(ctx) {
      const [, ratioName, trainingName] = ctx.node.input;
      const dy = ctx.gradOutputs[0]!;
      const training = trainingName ? (constantInput(ctx, 2, 'training_mode')?.[0] ?? 0) !== 0 : false;
      if (!training) return [dy];
      const mask = ctx.node.output[1];
      if (!mask) {
        throw new FleetError(
          'GRAD_UNSUPPORTED_OP',
          `${describeNode(ctx.node)}: a training-mode Dropout needs its mask output for the gradient`,
          { op: 'Dropout', node: ctx.node.name },
        );
      }
      const ratio = ratioName ? constantInput(ctx, 1, 'ratio')![0] : attrFloat(ctx.node, 'ratio', 0.5);
      const kept = ctx.op('Where', [mask, dy, ctx.scalar(0)]);
      return [ctx.op('Mul', [kept, ctx.scalar(1 / (1 - ratio))])];
    },
  },
};
