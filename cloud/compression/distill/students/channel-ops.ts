import type { NodeProto } from '../../onnx/types.js';

/**
 * Channel groups of a graph: sets of channels that must be narrowed together (see
 * channel-groups.ts, which finds them, and shrink.ts, which narrows them).
 */
export interface ChannelGroup {
  id: number;
  size: number;
  /**
   * Initializer slices that belong to the group: `axis` of `tensor`, in blocks of `block`
   * elements, starting `offset` channels in (a consumer of a Concat holds several groups side by side).
   */
  bindings: { tensor: string; axis: number; block: number; offset: number }[];
  /** BatchNormalization scales of the group (importance), and weights whose slices produce it. */
  bnScales: string[];
  producers: { tensor: string; axis: number }[];
  /** Depthwise convolutions whose `group` attribute equals the group's width. */
  depthwise: NodeProto[];
  fixed: boolean;
}

/** A tensor's channel group and the axis that holds the channels (from the end: -1, -3 ...). */
export interface Tagged {
  group: number;
  axis: number;
  /** Elements per channel along the axis after a Flatten (C·H·W features); 1 otherwise. */
  block: number;
}

/** A Concat's output along the channel axis: its inputs' groups side by side, in order. */
export interface Joined {
  axis: number;
  parts: { group: number; size: number }[];
}

/** Ops whose output has the channels of their first input, one for one. */
export const PASS_THROUGH = new Set([
  'Relu',
  'LeakyRelu',
  'Sigmoid',
  'Tanh',
  'HardSigmoid',
  'HardSwish',
  'Clip',
  'Identity',
  'Dropout',
  'MaxPool',
  'AveragePool',
  'GlobalAveragePool',
  'Resize',
  'Upsample',
  'Erf',
  'Neg',
  'Exp',
  'Sqrt',
  'Softplus',
  'Elu',
  'Gelu',
]);

/** Element-wise ops between tensors (broadcasting): their tensor operands share channels. */
export const BINARY = new Set(['Add', 'Sub', 'Mul', 'Div', 'Pow', 'Max', 'Min']);
