import { attr } from '../../../onnx/build.js';
import { attrInt } from '../../../onnx/graph.js';
import type { GradRule } from '../types.js';
import { transposedPads, windowGeometry } from './conv-geometry.js';

export const CONV_RULES: Record<string, GradRule> = {
  Conv: {
    differentiable: [0, 1, 2],
    backward(ctx) {
      const [x, w, b] = ctx.node.input;
      const y = ctx.node.output[0];
      const dy = ctx.gradOutputs[0]!;
      const xs = ctx.shape(x);
      const ws = ctx.shape(w);
      const ys = ctx.shape(y);
      const group = attrInt(ctx.node, 'group', 1);
      const g = windowGeometry(ctx.node, xs.slice(2), ws.slice(2));
      const rank = xs.length - 2;
      const spatial = Array.from({ length: rank }, (_, i) => i + 2);

      let dx: string | undefined;
      if (ctx.needs(0)) {
        // dX is the transposed convolution of dY with the same weights (W's layout
        // [C_out, C_in/g, k...] is exactly ConvTranspose's [C_in', C_out'/g, k...]).
        const { pads, outputPadding } = transposedPads(g, xs.slice(2), ys.slice(2));
        dx = ctx.op(
          'ConvTranspose',
          [dy, w],
          [
            attr.ints('strides', g.strides),
            attr.ints('dilations', g.dilations),
            attr.ints('pads', pads),
            attr.ints('output_padding', outputPadding),
            attr.int('group', group),
          ],
        );
      }

      let dw: string | undefined;
      if (ctx.needs(1)) {
        // dW[o, c, k] = sum_n sum_j dY[n, o, j] * Xpad[n, c, j*s + k*d]: a convolution with the
        // batch as channels, X's channels as batch, and stride and dilation swapped.
        const [n, cin] = xs;
        const cinPerGroup = cin / group;
        let input: string;
        if (group === 1) {
          input = ctx.op('Transpose', [x], [attr.ints('perm', [1, 0, ...spatial])]);
        } else {
          const split = ctx.op('Reshape', [x, ctx.int64s([n, group, cinPerGroup, ...xs.slice(2)])]);
          const moved = ctx.op(
            'Transpose',
            [split],
            [attr.ints('perm', [2, 1, 0, ...spatial.map((s) => s + 1)])],
          );
          input = ctx.op('Reshape', [moved, ctx.int64s([cinPerGroup, group * n, ...xs.slice(2)])]);
        }
        const kernel = ctx.op('Transpose', [dy], [attr.ints('perm', [1, 0, ...spatial])]);
        const full = ctx.op(
          'Conv',
          [input, kernel],
          [
            attr.ints('strides', g.dilations),
            attr.ints('dilations', g.strides),
            attr.ints('pads', [...g.padsBegin, ...g.padsEnd]),
            attr.int('group', group),
          ],
        );
        dw = ctx.op('Transpose', [full], [attr.ints('perm', [1, 0, ...spatial])]);
        // The result can overhang the kernel when the forward window never reached the end.
        const covered = ctx
          .shape(x)
          .slice(2)
          .map((h, i) => {
            const span = h + g.padsBegin[i] + g.padsEnd[i] - ((ys[i + 2] - 1) * g.strides[i] + 1);
            return Math.floor(span / g.dilations[i]) + 1;
          });
        if (covered.some((k, i) => k !== ws[i + 2])) {
          dw = ctx.op('Slice', [
            dw,
            ctx.int64s(spatial.map(() => 0)),
            ctx.int64s(ws.slice(2)),
            ctx.int64s(spatial),
          ]);
        }
      }

      const db = b && ctx.needs(2) ? ctx.reduce('ReduceSum', dy, [0, ...spatial], false) : undefined;
      return [dx, dw, db];
    },
  },
};
