import { FleetError } from '../../../../../shared/errors/index.js';
import { attr } from '../../../onnx/build.js';
import { attrFloat, attrInt, describeNode } from '../../../onnx/graph.js';
import type { GradContext, GradRule } from '../types.js';

function gemm(ctx: GradContext, a: string, b: string, transA: number, transB: number, alpha: number): string {
  const attributes = [attr.int('transA', transA), attr.int('transB', transB)];
  if (alpha !== 1) attributes.push(attr.float('alpha', alpha));
  return ctx.op('Gemm', [a, b], attributes);
}

/** Swaps the last two axes of a tensor of rank `rank`. */
function swapLast(ctx: GradContext, x: string, rank: number): string {
  const perm = Array.from({ length: rank }, (_, i) => i);
  [perm[rank - 2], perm[rank - 1]] = [perm[rank - 1], perm[rank - 2]];
  return ctx.op('Transpose', [x], [attr.ints('perm', perm)]);
}

export const LINEAR_RULES: Record<string, GradRule> = {
  Gemm: {
    differentiable: [0, 1, 2],
    backward(ctx) {
      const [a, b, c] = ctx.node.input;
      const dy = ctx.gradOutputs[0]!;
      const tA = attrInt(ctx.node, 'transA', 0);
      const tB = attrInt(ctx.node, 'transB', 0);
      const alpha = attrFloat(ctx.node, 'alpha', 1);
      const beta = attrFloat(ctx.node, 'beta', 1);
      // Y = alpha * A' B' + beta * C with A' = op(A), B' = op(B); each case is one Gemm.
      const da = !ctx.needs(0)
        ? undefined
        : tA === 0
          ? gemm(ctx, dy, b, 0, tB === 0 ? 1 : 0, alpha)
          : gemm(ctx, b, dy, tB, 1, alpha);
      const db = !ctx.needs(1)
        ? undefined
        : tB === 0
          ? gemm(ctx, a, dy, tA === 0 ? 1 : 0, 0, alpha)
          : gemm(ctx, dy, a, 1, tA, alpha);
      let dc: string | undefined;
      if (c && ctx.needs(2)) {
        const scaled = beta === 1 ? dy : ctx.op('Mul', [dy, ctx.scalar(beta)]);
        dc = ctx.unbroadcast(scaled, ctx.shape(ctx.node.output[0]), ctx.shape(c));
      }
      return [da, db, dc];
    },
  },
  MatMul: {
    differentiable: [0, 1],
    backward(ctx) {
      const [a, b] = ctx.node.input;
      const y = ctx.node.output[0];
      const dy = ctx.gradOutputs[0]!;
      const sa = ctx.shape(a);
      const sb = ctx.shape(b);
      if (sa.length < 2 || sb.length < 2) {
        throw new FleetError(
          'GRAD_UNSUPPORTED_OP',
          `MatMul ${describeNode(ctx.node)}: 1-D operands are not differentiable yet`,
          { op: 'MatMul', node: ctx.node.name },
        );
      }
      const batch = ctx.shape(y).slice(0, -2);
      const da = ctx.needs(0)
        ? ctx.unbroadcast(
            ctx.op('MatMul', [dy, swapLast(ctx, b, sb.length)]),
            [...batch, ...sa.slice(-2)],
            sa,
          )
        : undefined;
      const db = ctx.needs(1)
        ? ctx.unbroadcast(
            ctx.op('MatMul', [swapLast(ctx, a, sa.length), dy]),
            [...batch, ...sb.slice(-2)],
            sb,
          )
        : undefined;
      return [da, db];
    },
  },
};
