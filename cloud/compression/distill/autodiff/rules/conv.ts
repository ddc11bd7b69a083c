import { FleetError } from '../../../../../shared/errors/index.js';
import { attr } from '../../../onnx/build.js';
import { attrInt, attrInts, attrString, describeNode } from '../../../onnx/graph.js';
import type { GradContext, GradRule } from '../types.js';
import { transposedPads, type WindowGeometry, windowGeometry } from './conv-geometry.js';

/**
 * The weight gradient of a convolution y = Conv(u, W) with geometry `g`, from its input `u`
 * and output gradient `dy`: dW[o, c, k] = sum_n sum_j dY[n, o, j] * Upad[n, c, j*s + k*d], a
 * convolution with the batch as channels, U's channels as batch, and stride and dilation
 * swapped. Shapes are those of u, dy and W ([C_out, C_in/group, k...]).
 */
function convWeightGradient(
  ctx: GradContext,
  u: { name: string; shape: number[] },
  dy: { name: string; shape: number[] },
  weightShape: number[],
  g: WindowGeometry,
  group: number,
): string {
  const us = u.shape;
  if (isPointwise(us, dy.shape, weightShape, g, group))
    return pointwiseWeightGradient(ctx, u, dy, weightShape);
  const spatial = Array.from({ length: us.length - 2 }, (_, i) => i + 2);
  const [n, cin] = us;
  const cinPerGroup = cin / group;
  let input: string;
  if (group === 1) {
    input = ctx.op('Transpose', [u.name], [attr.ints('perm', [1, 0, ...spatial])]);
  } else {
    const split = ctx.op('Reshape', [u.name, ctx.int64s([n, group, cinPerGroup, ...us.slice(2)])]);
    const moved = ctx.op('Transpose', [split], [attr.ints('perm', [2, 1, 0, ...spatial.map((s) => s + 1)])]);
    input = ctx.op('Reshape', [moved, ctx.int64s([cinPerGroup, group * n, ...us.slice(2)])]);
  }
  const kernel = ctx.op('Transpose', [dy.name], [attr.ints('perm', [1, 0, ...spatial])]);
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
  let dw = ctx.op('Transpose', [full], [attr.ints('perm', [1, 0, ...spatial])]);
  // The result can overhang the kernel when the forward window never reached the end.
  const covered = us.slice(2).map((h, i) => {
    const span = h + g.padsBegin[i] + g.padsEnd[i] - ((dy.shape[i + 2] - 1) * g.strides[i] + 1);
    return Math.floor(span / g.dilations[i]) + 1;
  });
  if (covered.some((k, i) => k !== weightShape[i + 2])) {
    dw = ctx.op('Slice', [
      dw,
      ctx.int64s(spatial.map(() => 0)),
      ctx.int64s(weightShape.slice(2)),
      ctx.int64s(spatial),
    ]);
  }
  return dw;
}

/** A 1×1 convolution, stride 1, no padding, one group: a matrix product per sample. */
function isPointwise(
  us: number[],
  ys: number[],
  weightShape: number[],
  g: WindowGeometry,
  group: number,
): boolean {
  return (
    group === 1 &&
    weightShape.slice(2).every((k) => k === 1) &&
    g.strides.every((s) => s === 1) &&
    [...g.padsBegin, ...g.padsEnd].every((p) => p === 0) &&
    us.slice(2).every((d, i) => d === ys[i + 2])
  );
}

/**
 * dW[o, c] = Σ_n dY[n, o, :] · U[n, c, :] for a pointwise convolution, as one batched MatMul
 * ([N, O, HW] × [N, HW, C]) and a sum over the batch. The general path below runs it as a
 * convolution whose "batch" is U's channels: one matrix-vector product per channel, several
 * times slower on the PaddleOCR recogniser's 1×1 layers.
 */
function pointwiseWeightGradient(
  ctx: GradContext,
  u: { name: string; shape: number[] },
  dy: { name: string; shape: number[] },
  weightShape: number[],
): string {
  const [n, cin] = u.shape;
  const cout = dy.shape[1];
  const hw = u.shape.slice(2).reduce((a, b) => a * b, 1);
  const dy3 = ctx.op('Reshape', [dy.name, ctx.int64s([n, cout, hw])]);
  const u3 = ctx.op('Reshape', [u.name, ctx.int64s([n, cin, hw])]);
  const perSample = ctx.op('MatMul', [dy3, ctx.op('Transpose', [u3], [attr.ints('perm', [0, 2, 1])])]);
  return ctx.op('Reshape', [ctx.reduce('ReduceSum', perSample, [0], false), ctx.int64s(weightShape)]);
}

/**
 * ConvTranspose's geometry as the convolution it is the adjoint of: explicit pads only
 * (auto_pad and output_shape leave the split of the padding to the runtime).
 */
function transposeGeometry(ctx: GradContext, kernel: number[]): WindowGeometry {
  const autoPad = attrString(ctx.node, 'auto_pad') ?? 'NOTSET';
  if ((autoPad !== 'NOTSET' && autoPad !== 'VALID') || attrInts(ctx.node, 'output_shape')) {
    throw new FleetError(
      'GRAD_UNSUPPORTED_OP',
      `ConvTranspose ${describeNode(ctx.node)}: only explicit pads are differentiable (auto_pad ${autoPad}${attrInts(ctx.node, 'output_shape') ? ', output_shape' : ''})`,
      { op: 'ConvTranspose', node: ctx.node.name },
    );
  }
  const rank = kernel.length;
  const ones = Array(rank).fill(1);
  const pads =
    autoPad === 'VALID' ? Array(2 * rank).fill(0) : (attrInts(ctx.node, 'pads') ?? Array(2 * rank).fill(0));
  return {
    kernel,
    strides: attrInts(ctx.node, 'strides') ?? ones,
    dilations: attrInts(ctx.node, 'dilations') ?? ones,
    padsBegin: pads.slice(0, rank),
    padsEnd: pads.slice(rank),
  };
}

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
      const spatial = Array.from({ length: xs.length - 2 }, (_, i) => i + 2);

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
      const dw = ctx.needs(1)
        ? convWeightGradient(ctx, { name: x, shape: xs }, { name: dy, shape: ys }, ws, g, group)
        : undefined;
      const db = b && ctx.needs(2) ? ctx.reduce('ReduceSum', dy, [0, ...spatial], false) : undefined;
      return [dx, dw, db];
    },
  },
  ConvTranspose: {
    // y = ConvTranspose(x, W) is the adjoint of the convolution A = Conv(·, W) (same strides,
    // dilations, pads, group; W [C_in, C_out/g, k...] read as Conv's [C_out', C_in'/g, k...]),
    // cropped by the pads and grown by output_padding at the end (rows no input reaches).
    // So dX = A·dY = Conv(dY, W), and dW is A's weight gradient with dY as A's input and X as
    // its output gradient.
    differentiable: [0, 1, 2],
    backward(ctx) {
      const [x, w, b] = ctx.node.input;
      const y = ctx.node.output[0];
      const dy = ctx.gradOutputs[0]!;
      const xs = ctx.shape(x);
      const ws = ctx.shape(w);
      const ys = ctx.shape(y);
      const group = attrInt(ctx.node, 'group', 1);
      const g = transposeGeometry(ctx, ws.slice(2));
      const spatial = Array.from({ length: xs.length - 2 }, (_, i) => i + 2);
      const dx = ctx.needs(0)
        ? ctx.op(
            'Conv',
            [dy, w],
            [
              attr.ints('strides', g.strides),
              attr.ints('dilations', g.dilations),
              attr.ints('pads', [...g.padsBegin, ...g.padsEnd]),
              attr.int('group', group),
            ],
          )
        : undefined;
      const dw = ctx.needs(1)
        ? convWeightGradient(ctx, { name: dy, shape: ys }, { name: x, shape: xs }, ws, g, group)
        : undefined;
      const db = b && ctx.needs(2) ? ctx.reduce('ReduceSum', dy, [0, ...spatial], false) : undefined;
      return [dx, dw, db];
    },
  },
};
