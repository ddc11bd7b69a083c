import { FleetError } from '../../../../../shared/errors/index.js';
import { attr } from '../../../onnx/build.js';
import { attrInt, attrInts, describeNode } from '../../../onnx/graph.js';
import { makeTensor } from '../../../onnx/tensor.js';
import type { GradContext, GradRule } from '../types.js';
import { transposedPads, type WindowGeometry, windowGeometry } from './conv-geometry.js';

function geometry(ctx: GradContext): { g: WindowGeometry; xs: number[]; ys: number[] } {
  const xs = ctx.shape(ctx.node.input[0]);
  const ys = ctx.shape(ctx.node.output[0]);
  const kernel = attrInts(ctx.node, 'kernel_shape');
  if (!kernel) {
    throw new FleetError('ONNX_INVALID', `${describeNode(ctx.node)} has no kernel_shape`, {
      node: ctx.node.name,
    });
  }
  return { g: windowGeometry(ctx.node, xs.slice(2), kernel), xs, ys };
}

/** How many input positions each output window averages over (row-major over the output). */
function windowCounts(g: WindowGeometry, xs: number[], ys: number[], includePad: boolean): number[] {
  const rank = xs.length - 2;
  const outSpatial = ys.slice(2);
  const total = outSpatial.reduce((a, b) => a * b, 1);
  const counts: number[] = [];
  for (let flat = 0; flat < total; flat++) {
    let rest = flat;
    let count = 1;
    for (let i = rank - 1; i >= 0; i--) {
      const o = rest % outSpatial[i];
      rest = Math.floor(rest / outSpatial[i]);
      const start = o * g.strides[i] - g.padsBegin[i];
      const lo = includePad ? -g.padsBegin[i] : 0;
      const hi = includePad ? xs[i + 2] + g.padsEnd[i] : xs[i + 2];
      count *= Math.max(Math.min(start + g.kernel[i], hi) - Math.max(start, lo), 0);
    }
    counts.push(count);
  }
  return counts;
}

export const POOL_RULES: Record<string, GradRule> = {
  MaxPool: {
    differentiable: [0],
    backward(ctx) {
      const x = ctx.node.input[0];
      const xs = ctx.shape(x);
      const total = xs.reduce((a, b) => a * b, 1);
      // Recompute the pool with its argmax indices (flat over the whole input) rather than
      // change the forward node, then scatter-add dY into a zero tensor of X's size.
      const [, indices] = ctx.opN('MaxPool', [x], 2, ctx.node.attribute ?? []);
      const zero = makeTensor('value', ctx.dtype, [1], [0]);
      const zeros = ctx.op('ConstantOfShape', [ctx.int64s([total])], [attr.tensor('value', zero)]);
      const flatIdx = ctx.op('Reshape', [indices, ctx.int64s([-1])]);
      const flatDy = ctx.op('Reshape', [ctx.gradOutputs[0]!, ctx.int64s([-1])]);
      const scattered = ctx.op(
        'ScatterElements',
        [zeros, flatIdx, flatDy],
        [attr.int('axis', 0), attr.string('reduction', 'add')],
      );
      return [ctx.op('Reshape', [scattered, ctx.int64s(xs)])];
    },
  },
  AveragePool: {
    differentiable: [0],
    backward(ctx) {
      const { g, xs, ys } = geometry(ctx);
      if (g.dilations.some((d) => d !== 1)) {
        throw new FleetError('GRAD_UNSUPPORTED_OP', `${describeNode(ctx.node)}: dilated AveragePool`, {
          op: 'AveragePool',
          node: ctx.node.name,
        });
      }
      const includePad = attrInt(ctx.node, 'count_include_pad', 0) !== 0;
      const counts = windowCounts(g, xs, ys, includePad);
      const scaled = ctx.op('Div', [ctx.gradOutputs[0]!, ctx.floats(counts, [1, 1, ...ys.slice(2)])]);
      // Spread each scaled gradient over its window: a depthwise ConvTranspose with a ones kernel.
      const channels = xs[1];
      const kernelSize = g.kernel.reduce((a, b) => a * b, 1);
      const ones = ctx.floats(Array(channels * kernelSize).fill(1), [channels, 1, ...g.kernel]);
      const { pads, outputPadding } = transposedPads(g, xs.slice(2), ys.slice(2));
      return [
        ctx.op(
          'ConvTranspose',
          [scaled, ones],
          [
            attr.ints('strides', g.strides),
            attr.ints('pads', pads),
            attr.ints('output_padding', outputPadding),
            attr.int('group', channels),
          ],
        ),
      ];
    },
  },
  GlobalAveragePool: {
    differentiable: [0],
    backward(ctx) {
      const xs = ctx.shape(ctx.node.input[0]);
      const area = xs.slice(2).reduce((a, b) => a * b, 1);
      const scaled = ctx.op('Mul', [ctx.gradOutputs[0]!, ctx.scalar(1 / area)]);
      return [ctx.op('Expand', [scaled, ctx.int64s(xs)])];
    },
  },
};
