import { FleetError } from '../../../../../shared/errors/index.js';
import { describeNode } from '../../../onnx/graph.js';
import type { GradContext, GradRule } from '../types.js';

/** Gradient of a binary broadcasting op, reduced back to each input's shape. */
function binary(
  local: (ctx: GradContext, dy: string, a: string, b: string) => [string | undefined, string | undefined],
): GradRule {
  return {
    differentiable: [0, 1],
    backward(ctx) {
      const [a, b] = ctx.node.input;
      const y = ctx.node.output[0];
      const [da, db] = local(ctx, ctx.gradOutputs[0]!, a, b);
      return [
        ctx.needs(0) && da ? ctx.unbroadcast(da, ctx.shape(y), ctx.shape(a)) : undefined,
        ctx.needs(1) && db ? ctx.unbroadcast(db, ctx.shape(y), ctx.shape(b)) : undefined,
      ];
    },
  };
}

const unary = (local: (ctx: GradContext, dy: string, x: string, y: string) => string): GradRule => ({
  differentiable: [0],
  backward: (ctx) => [local(ctx, ctx.gradOutputs[0]!, ctx.node.input[0], ctx.node.output[0])],
});

/**
 * Max/Min of two inputs: the gradient goes to the input that was chosen (the first on a tie).
 * Only the two-input form is differentiable (QAT clamps weights with it).
 */
function extremum(op: 'Max' | 'Min'): GradRule {
  const pair = binary((ctx, dy, a, b) => {
    const first = ctx.op(op === 'Max' ? 'GreaterOrEqual' : 'LessOrEqual', [a, b]);
    const zero = ctx.scalar(0);
    return [
      ctx.needs(0) ? ctx.op('Where', [first, dy, zero]) : undefined,
      ctx.needs(1) ? ctx.op('Where', [first, zero, dy]) : undefined,
    ];
  });
  return {
    differentiable: [0, 1],
    backward(ctx) {
      if (ctx.node.input.length !== 2) {
        throw new FleetError(
          'GRAD_UNSUPPORTED_OP',
          `${op} ${describeNode(ctx.node)}: only the two-input form is differentiable`,
          { op, node: ctx.node.name },
        );
      }
      return pair.backward(ctx);
    },
  };
}

export const ELEMENTWISE_RULES: Record<string, GradRule> = {
  Max: extremum('Max'),
  Min: extremum('Min'),
  Add: binary((_ctx, dy) => [dy, dy]),
  Sub: binary((ctx, dy) => [dy, ctx.needs(1) ? ctx.op('Neg', [dy]) : undefined]),
  Mul: binary((ctx, dy, a, b) => [
    ctx.needs(0) ? ctx.op('Mul', [dy, b]) : undefined,
    ctx.needs(1) ? ctx.op('Mul', [dy, a]) : undefined,
  ]),
  Div: binary((ctx, dy, _a, b) => {
    const da = ctx.op('Div', [dy, b]);
    // d(a/b)/db = -(a/b)/b, so the output can stand in for a.
    const db = ctx.needs(1) ? ctx.op('Neg', [ctx.op('Mul', [da, ctx.node.output[0]])]) : undefined;
    return [da, db];
  }),
  Sum: {
    differentiable: [0, 1, 2, 3, 4, 5, 6, 7],
    backward(ctx) {
      const y = ctx.node.output[0];
      return ctx.node.input.map((x, i) =>
        ctx.needs(i) ? ctx.unbroadcast(ctx.gradOutputs[0]!, ctx.shape(y), ctx.shape(x)) : undefined,
      );
    },
  },
  Identity: unary((_ctx, dy) => dy),
  Neg: unary((ctx, dy) => ctx.op('Neg', [dy])),
  Exp: unary((ctx, dy, _x, y) => ctx.op('Mul', [dy, y])),
  Log: unary((ctx, dy, x) => ctx.op('Div', [dy, x])),
  Sqrt: unary((ctx, dy, _x, y) => ctx.op('Div', [ctx.op('Mul', [dy, ctx.scalar(0.5)]), y])),
  Pow: {
    // Only a constant exponent (x^2 in hint losses, x^0.5 ...); d/dx x^p = p x^(p-1).
    differentiable: [0],
    backward(ctx) {
      const [x, e] = ctx.node.input;
      const p = ctx.constant(e);
      if (p?.length !== 1) {
        throw new FleetError(
          'GRAD_UNSUPPORTED_OP',
          `Pow ${describeNode(ctx.node)}: only a constant scalar exponent is differentiable`,
          { op: 'Pow', node: ctx.node.name },
        );
      }
      const d = ctx.op('Mul', [ctx.op('Pow', [x, ctx.scalar(p[0] - 1)]), ctx.scalar(p[0])]);
      return [ctx.op('Mul', [ctx.gradOutputs[0]!, d])];
    },
  },
};
