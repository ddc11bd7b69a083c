import { attrFloat } from '../../../onnx/graph.js';
import type { GradContext, GradRule } from '../types.js';

const unary = (local: (ctx: GradContext, dy: string, x: string, y: string) => string): GradRule => ({
  differentiable: [0],
  backward: (ctx) => [local(ctx, ctx.gradOutputs[0]!, ctx.node.input[0], ctx.node.output[0])],
});

/** dy where the mask holds, 0 elsewhere (one Where instead of Cast + Mul). */
const masked = (ctx: GradContext, mask: string, dy: string) => ctx.op('Where', [mask, dy, ctx.scalar(0)]);

export const ACTIVATION_RULES: Record<string, GradRule> = {
  Relu: unary((ctx, dy, _x, y) => masked(ctx, ctx.op('Greater', [y, ctx.scalar(0)]), dy)),
  LeakyRelu: unary((ctx, dy, x) => {
    const alpha = attrFloat(ctx.node, 'alpha', 0.01);
    const slope = ctx.op('Where', [ctx.op('Greater', [x, ctx.scalar(0)]), ctx.scalar(1), ctx.scalar(alpha)]);
    return ctx.op('Mul', [dy, slope]);
  }),
  Sigmoid: unary((ctx, dy, _x, y) => {
    const oneMinus = ctx.op('Sub', [ctx.scalar(1), y]);
    return ctx.op('Mul', [dy, ctx.op('Mul', [y, oneMinus])]);
  }),
  Tanh: unary((ctx, dy, _x, y) => {
    const oneMinusSq = ctx.op('Sub', [ctx.scalar(1), ctx.op('Mul', [y, y])]);
    return ctx.op('Mul', [dy, oneMinusSq]);
  }),
  Clip: {
    // min and max are inputs from opset 11; the gradient passes only strictly inside [min, max].
    differentiable: [0],
    backward(ctx) {
      const [x, min, max] = ctx.node.input;
      const dy = ctx.gradOutputs[0]!;
      let mask: string | undefined;
      if (min) mask = ctx.op('GreaterOrEqual', [x, min]);
      if (max) {
        const below = ctx.op('LessOrEqual', [x, max]);
        mask = mask ? ctx.op('And', [mask, below]) : below;
      }
      return [mask ? masked(ctx, mask, dy) : dy];
    },
  },
  // Exact GELU as exporters write it (x · (1 + erf(x / √2)) / 2): d erf(x)/dx = 2/√π · exp(−x²).
  Erf: unary((ctx, dy, x) => {
    const bell = ctx.op('Exp', [ctx.op('Neg', [ctx.op('Mul', [x, x])])]);
    return ctx.op('Mul', [dy, ctx.op('Mul', [bell, ctx.scalar(2 / Math.sqrt(Math.PI))])]);
  }),
  HardSwish: unary((ctx, dy, x) => {
    // y = x * relu6(x + 3) / 6: slope (2x + 3) / 6 on (-3, 3), 1 above, 0 below.
    const inside = ctx.op('And', [
      ctx.op('Greater', [x, ctx.scalar(-3)]),
      ctx.op('Less', [x, ctx.scalar(3)]),
    ]);
    const ramp = ctx.op('Add', [ctx.op('Mul', [x, ctx.scalar(1 / 3)]), ctx.scalar(0.5)]);
    const above = ctx.toFloat(ctx.op('GreaterOrEqual', [x, ctx.scalar(3)]));
    const slope = ctx.op('Add', [ctx.op('Where', [inside, ramp, ctx.scalar(0)]), above]);
    return ctx.op('Mul', [dy, slope]);
  }),
  HardSigmoid: unary((ctx, dy, x) => {
    const alpha = attrFloat(ctx.node, 'alpha', 0.2);
    const beta = attrFloat(ctx.node, 'beta', 0.5);
    const z = ctx.op('Add', [ctx.op('Mul', [x, ctx.scalar(alpha)]), ctx.scalar(beta)]);
    const inside = ctx.op('And', [ctx.op('Greater', [z, ctx.scalar(0)]), ctx.op('Less', [z, ctx.scalar(1)])]);
    return ctx.op('Mul', [masked(ctx, inside, dy), ctx.scalar(alpha)]);
  }),
};
