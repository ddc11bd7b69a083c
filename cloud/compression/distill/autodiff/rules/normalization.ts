import { attrFloat, attrInt } from '../../../onnx/graph.js';
import type { GradContext, GradRule } from '../types.js';

/** Mean, inverse standard deviation and normalised input over `axes` (kept as size-1 axes). */
function normalise(ctx: GradContext, x: string, axes: number[], eps: number) {
  const mean = ctx.reduce('ReduceMean', x, axes, true);
  const centred = ctx.op('Sub', [x, mean]);
  const variance = ctx.reduce('ReduceMean', ctx.op('Mul', [centred, centred]), axes, true);
  const invStd = ctx.op('Reciprocal', [ctx.op('Sqrt', [ctx.op('Add', [variance, ctx.scalar(eps)])])]);
  return { invStd, xhat: ctx.op('Mul', [centred, invStd]) };
}

export const NORMALIZATION_RULES: Record<string, GradRule> = {
  BatchNormalization: {
    // Running mean and variance (inputs 3, 4) are statistics, not parameters.
    differentiable: [0, 1, 2],
    backward(ctx) {
      const [x, scale, , runMean, runVar] = ctx.node.input;
      const dy = ctx.gradOutputs[0]!;
      const xs = ctx.shape(x);
      const channels = xs[1];
      const axes = [0, ...xs.slice(2).map((_, i) => i + 2)];
      const eps = attrFloat(ctx.node, 'epsilon', 1e-5);
      const perChannel = [1, channels, ...xs.slice(2).map(() => 1)];
      const gamma = ctx.op('Reshape', [scale, ctx.int64s(perChannel)]);
      const training = attrInt(ctx.node, 'training_mode', 0) !== 0;
      let invStd: string;
      let xhat: string;
      if (training) {
        ({ invStd, xhat } = normalise(ctx, x, axes, eps));
      } else {
        const v = ctx.op('Reshape', [runVar, ctx.int64s(perChannel)]);
        const m = ctx.op('Reshape', [runMean, ctx.int64s(perChannel)]);
        invStd = ctx.op('Reciprocal', [ctx.op('Sqrt', [ctx.op('Add', [v, ctx.scalar(eps)])])]);
        xhat = ctx.op('Mul', [ctx.op('Sub', [x, m]), invStd]);
      }
      const sumDy = ctx.reduce('ReduceSum', dy, axes, true);
      const sumDyXhat = ctx.reduce('ReduceSum', ctx.op('Mul', [dy, xhat]), axes, true);
      const gammaInvStd = ctx.op('Mul', [gamma, invStd]);
      let dx: string | undefined;
      if (ctx.needs(0)) {
        if (training) {
          // The batch statistics depend on x too: dx = g/s * (dy - (sum dy + xhat sum dy xhat) / M).
          const count = xs[0] * xs.slice(2).reduce((a, b) => a * b, 1);
          const correction = ctx.op('Mul', [
            ctx.op('Add', [sumDy, ctx.op('Mul', [xhat, sumDyXhat])]),
            ctx.scalar(1 / count),
          ]);
          dx = ctx.op('Mul', [gammaInvStd, ctx.op('Sub', [dy, correction])]);
        } else {
          dx = ctx.op('Mul', [dy, gammaInvStd]);
        }
      }
      const flat = (t: string) => ctx.op('Reshape', [t, ctx.int64s([channels])]);
      return [dx, ctx.needs(1) ? flat(sumDyXhat) : undefined, ctx.needs(2) ? flat(sumDy) : undefined];
    },
  },
  LayerNormalization: {
    differentiable: [0, 1, 2],
    backward(ctx) {
      const [x, scale, bias] = ctx.node.input;
      const dy = ctx.gradOutputs[0]!;
      const xs = ctx.shape(x);
      let axis = attrInt(ctx.node, 'axis', -1);
      if (axis < 0) axis += xs.length;
      const axes = xs.slice(axis).map((_, i) => axis + i);
      const { invStd, xhat } = normalise(ctx, x, axes, attrFloat(ctx.node, 'epsilon', 1e-5));
      let dx: string | undefined;
      if (ctx.needs(0)) {
        const dxhat = ctx.op('Mul', [dy, scale]);
        const meanD = ctx.reduce('ReduceMean', dxhat, axes, true);
        const meanDX = ctx.reduce('ReduceMean', ctx.op('Mul', [dxhat, xhat]), axes, true);
        const inner = ctx.op('Sub', [ctx.op('Sub', [dxhat, meanD]), ctx.op('Mul', [xhat, meanDX])]);
        dx = ctx.op('Mul', [inner, invStd]);
      }
      const dscale = ctx.needs(1)
        ? ctx.unbroadcast(ctx.op('Mul', [dy, xhat]), xs, ctx.shape(scale))
        : undefined;
      const dbias = bias && ctx.needs(2) ? ctx.unbroadcast(dy, xs, ctx.shape(bias)) : undefined;
      return [dx, dscale, dbias];
    },
  },
};
