import { attrInt } from '../../../onnx/graph.js';
import { DataType } from '../../../onnx/types.js';
import type { GradRule } from '../types.js';

const RANGES: Record<number, [number, number]> = {
  [DataType.INT8]: [-128, 127],
  [DataType.UINT8]: [0, 255],
  [DataType.INT16]: [-32768, 32767],
  [DataType.UINT16]: [0, 65535],
};

/**
 * Fake quantization (QuantizeLinear then DequantizeLinear) with the straight-through
 * estimator: the gradient passes through rounding unchanged, and is zero where the value
 * was clipped to the integer range. The integer tensor between the two carries the float
 * gradient in this bookkeeping; nothing ever reads it as integers.
 */
export const QUANTIZATION_RULES: Record<string, GradRule> = {
  DequantizeLinear: {
    differentiable: [0],
    backward: (ctx) => [ctx.gradOutputs[0]],
  },
  QuantizeLinear: {
    differentiable: [0],
    backward(ctx) {
      const [x, scaleName, zeroName] = ctx.node.input;
      const dy = ctx.gradOutputs[0]!;
      const scale = ctx.constant(scaleName);
      if (!scale) return [dy];
      const zero = zeroName ? (ctx.constant(zeroName) ?? [0]) : [0];
      const zeroType = zeroName ? (ctx.constantType(zeroName) ?? DataType.UINT8) : DataType.UINT8;
      const [qmin, qmax] = RANGES[zeroType] ?? RANGES[DataType.UINT8];
      const lo = scale.map((s, i) => (qmin - zero[zero.length === 1 ? 0 : i]) * s);
      const hi = scale.map((s, i) => (qmax - zero[zero.length === 1 ? 0 : i]) * s);
      const xs = ctx.shape(x);
      let dims: number[] = [];
      if (scale.length > 1) {
        let axis = attrInt(ctx.node, 'axis', 1);
        if (axis < 0) axis += xs.length;
        dims = xs.map((d, i) => (i === axis ? d : 1));
      }
      const inside = ctx.op('And', [
        ctx.op('GreaterOrEqual', [x, ctx.floats(lo, dims)]),
        ctx.op('LessOrEqual', [x, ctx.floats(hi, dims)]),
      ]);
      return [ctx.op('Where', [inside, dy, ctx.scalar(0)])];
    },
  },
};
