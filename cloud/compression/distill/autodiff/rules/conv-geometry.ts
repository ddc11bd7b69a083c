import { FleetError } from '../../../../../shared/errors/index.js';
import { attrInt, attrInts, attrString, describeNode } from '../../../onnx/graph.js';
import type { NodeProto } from '../../../onnx/types.js';

/** The resolved window geometry of a Conv or pooling node over `rank` spatial axes. */
export interface WindowGeometry {
  kernel: number[];
  strides: number[];
  dilations: number[];
  padsBegin: number[];
  padsEnd: number[];
}

/** Reads kernel/strides/dilations/pads, turning auto_pad into explicit pads. */
export function windowGeometry(node: NodeProto, inputSpatial: number[], kernel: number[]): WindowGeometry {
  const rank = inputSpatial.length;
  const ones = Array(rank).fill(1);
  const strides = attrInts(node, 'strides') ?? ones;
  const dilations = attrInts(node, 'dilations') ?? ones;
  const pads = attrInts(node, 'pads') ?? Array(2 * rank).fill(0);
  let padsBegin = pads.slice(0, rank);
  let padsEnd = pads.slice(rank);
  const autoPad = attrString(node, 'auto_pad') ?? 'NOTSET';
  if (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') {
    padsBegin = [];
    padsEnd = [];
    for (let i = 0; i < rank; i++) {
      const out = Math.ceil(inputSpatial[i] / strides[i]);
      const total = Math.max(
        (out - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - inputSpatial[i],
        0,
      );
      const small = Math.floor(total / 2);
      padsBegin.push(autoPad === 'SAME_UPPER' ? small : total - small);
      padsEnd.push(autoPad === 'SAME_UPPER' ? total - small : small);
    }
  } else if (autoPad === 'VALID') {
    padsBegin = Array(rank).fill(0);
    padsEnd = Array(rank).fill(0);
  }
  if (attrInt(node, 'ceil_mode', 0) !== 0 && node.opType === 'Conv') {
    throw new FleetError('GRAD_UNSUPPORTED_OP', `${describeNode(node)}: ceil_mode`, { op: node.opType });
  }
  return { kernel, strides, dilations, padsBegin, padsEnd };
}

/**
 * Pads and output_padding that make a ConvTranspose over the output gradient come back to
 * exactly the input's spatial size: the transposed window covers (out-1)*s + (k-1)*d + 1
 * positions of the padded input; crop the leading pad and whatever overhangs the end, or
 * grow the end (output_padding) when the forward window never reached the last rows.
 */
export function transposedPads(
  g: WindowGeometry,
  inputSpatial: number[],
  outputSpatial: number[],
): { pads: number[]; outputPadding: number[] } {
  const end: number[] = [];
  const outputPadding: number[] = [];
  for (let i = 0; i < inputSpatial.length; i++) {
    const covered = (outputSpatial[i] - 1) * g.strides[i] + (g.kernel[i] - 1) * g.dilations[i] + 1;
    const overhang = covered - g.padsBegin[i] - inputSpatial[i];
    end.push(Math.max(overhang, 0));
    outputPadding.push(Math.max(-overhang, 0));
  }
  return { pads: [...g.padsBegin, ...end], outputPadding };
}
