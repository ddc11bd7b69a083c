/**
 * Resize (opset 10+) and Upsample (opset 7–9) are linear in X for fixed shapes and, for the
 * nearest and linear modes, separable: along each resized axis, y = M·x with a constant
 * [L_out, L_in] interpolation matrix built here from the same rules the runtime uses
 * (coordinate transformation, nearest rounding, linear weights with the edges clamped). The
 * gradient is the transpose: dX = M_h^T · dY · M_w per image, two MatMuls with constants.
 * Checked against finite differences of onnxruntime's forward (autodiff-rules test).
 */
import { FleetError } from '../../../../../shared/errors/index.js';
import { attrInt, attrString, describeNode } from '../../../onnx/graph.js';
import type { GradContext, GradRule } from '../types.js';

const f32 = Math.fround;

/** Where output index `o` samples the input, per coordinate_transformation_mode. */
function sourceCoordinate(
  mode: string,
  o: number,
  scale: number,
  lengthOut: number,
  lengthIn: number,
): number {
  switch (mode) {
    case 'half_pixel':
      return f32(f32(f32(o + 0.5) / scale) - 0.5);
    case 'pytorch_half_pixel':
      return lengthOut > 1 ? f32(f32(f32(o + 0.5) / scale) - 0.5) : 0;
    case 'align_corners':
      return lengthOut === 1 ? 0 : f32(f32(o * (lengthIn - 1)) / (lengthOut - 1));
    case 'asymmetric':
      return f32(o / scale);
    case 'tf_half_pixel_for_nn':
      return f32(f32(o + 0.5) / scale);
    case 'half_pixel_symmetric': {
      const adjustment = lengthOut / (scale * lengthIn);
      const offset = (lengthIn / 2) * (1 - adjustment);
      return f32(offset + f32(f32(o + 0.5) / scale) - 0.5);
    }
    default:
      throw new Error(`coordinate_transformation_mode ${mode}`);
  }
}

function roundNearest(x: number, mode: string): number {
  const frac = x - Math.floor(x);
  switch (mode) {
    case 'floor':
      return Math.floor(x);
    case 'ceil':
      return Math.ceil(x);
    case 'round_prefer_ceil':
      return frac === 0.5 ? Math.ceil(x) : Math.round(x);
    default: // round_prefer_floor
      return frac === 0.5 ? Math.floor(x) : Math.round(x);
  }
}

export interface AxisResize {
  lengthIn: number;
  lengthOut: number;
  /** The scale the coordinates use: the scales input when given, else lengthOut / lengthIn. */
  scale: number;
}

/** The [lengthOut, lengthIn] matrix (row-major) of one resized axis. */
export function interpolationMatrix(
  axis: AxisResize,
  mode: 'nearest' | 'linear',
  coordinateMode: string,
  nearestMode: string,
): Float32Array {
  const { lengthIn, lengthOut, scale } = axis;
  const m = new Float32Array(lengthOut * lengthIn);
  const clampIndex = (i: number) => Math.min(Math.max(i, 0), lengthIn - 1);
  for (let o = 0; o < lengthOut; o++) {
    const x = sourceCoordinate(coordinateMode, o, scale, lengthOut, lengthIn);
    if (mode === 'nearest') {
      m[o * lengthIn + clampIndex(roundNearest(x, nearestMode))] = 1;
      continue;
    }
    const clamped = Math.min(Math.max(x, 0), lengthIn - 1);
    const i0 = Math.floor(clamped);
    const i1 = Math.min(i0 + 1, lengthIn - 1);
    const w1 = clamped - i0;
    m[o * lengthIn + i0] += 1 - w1;
    m[o * lengthIn + i1] += w1;
  }
  return m;
}

function unsupported(ctx: GradContext, why: string): never {
  throw new FleetError('GRAD_UNSUPPORTED_OP', `${ctx.node.opType} ${describeNode(ctx.node)}: ${why}`, {
    op: ctx.node.opType,
    node: ctx.node.name,
  });
}

/** The scales input of Resize (index 1 at opset 10, 2 from 11) or Upsample, when constant. */
function givenScales(ctx: GradContext): number[] | undefined {
  const index = ctx.node.opType === 'Upsample' || ctx.opset < 11 ? 1 : 2;
  const name = ctx.node.input[index];
  const values = name ? ctx.constant(name) : undefined;
  return values && values.length > 0 ? values : undefined;
}

function resizeBackward(ctx: GradContext): (string | undefined)[] {
  const [x] = ctx.node.input;
  const xs = ctx.shape(x);
  const ys = ctx.shape(ctx.node.output[0]);
  const mode = attrString(ctx.node, 'mode') ?? 'nearest';
  if (mode !== 'nearest' && mode !== 'linear') unsupported(ctx, `mode ${mode}`);
  if (attrInt(ctx.node, 'antialias', 0) !== 0) unsupported(ctx, 'antialias');
  const coordinateMode =
    ctx.node.opType === 'Upsample' || ctx.opset < 11
      ? 'asymmetric'
      : (attrString(ctx.node, 'coordinate_transformation_mode') ?? 'half_pixel');
  // roi only matters for tf_crop_and_resize (refused); opset-11 exporters fill it in anyway.
  if (coordinateMode === 'tf_crop_and_resize') unsupported(ctx, coordinateMode);
  const nearestMode =
    ctx.opset < 11 ? 'round_prefer_floor' : (attrString(ctx.node, 'nearest_mode') ?? 'round_prefer_floor');
  const scales = givenScales(ctx);
  const rank = xs.length;
  let grad = ctx.gradOutputs[0]!;
  for (let axis = 0; axis < rank; axis++) {
    const scale = scales?.[axis] ?? ys[axis] / xs[axis];
    if (xs[axis] === ys[axis] && scale === 1) continue;
    if (axis < rank - 2) unsupported(ctx, `resizing axis ${axis} (only the last two axes)`);
    const m = interpolationMatrix(
      { lengthIn: xs[axis], lengthOut: ys[axis], scale },
      mode,
      coordinateMode,
      nearestMode,
    );
    if (axis === rank - 1) {
      // [..., L_out] · M [L_out, L_in] -> [..., L_in]
      grad = ctx.op('MatMul', [grad, ctx.floats(Array.from(m), [ys[axis], xs[axis]])]);
    } else {
      // M^T [L_in, L_out] · [..., L_out, W] -> [..., L_in, W]
      const t = new Array<number>(m.length);
      for (let o = 0; o < ys[axis]; o++)
        for (let i = 0; i < xs[axis]; i++) t[i * ys[axis] + o] = m[o * xs[axis] + i];
      grad = ctx.op('MatMul', [ctx.floats(t, [xs[axis], ys[axis]]), grad]);
    }
  }
  return [grad];
}

export const RESIZE_RULES: Record<string, GradRule> = {
  Resize: { differentiable: [0], backward: resizeBackward },
  Upsample: { differentiable: [0], backward: resizeBackward },
};
