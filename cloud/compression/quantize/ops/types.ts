import type { GraphIndex } from '../../onnx/graph.js';
import type { NodeProto } from '../../onnx/types.js';
import type { Range } from '../calibrate/methods.js';

/** How the output tensor of a quantized node gets its scale and zero point. */
export type OutputPlan =
  /** Its own calibrated range. */
  | { kind: 'own' }
  /** A range known from the op (Softmax: [0, 1]). */
  | { kind: 'fixed'; range: Range }
  /** The same parameters as input `from` (shape ops, MaxPool): ORT then drops the Q/DQ pair. */
  | { kind: 'share'; from: number }
  /**
   * The node is removed and its output is input `from` with the scale multiplied by `factor`
   * (multiplication by a positive scalar is a change of scale, not of integers).
   */
  | { kind: 'alias'; from: number; factor: number }
  /**
   * The node is removed and the Q of its output reads its input: a clip to [clip.min, clip.max]
   * with clip.min == 0 is what quantizing with zero point = qmin and a range inside the clip
   * does anyway (Relu, Relu6, the Clip of a folded HardSigmoid).
   */
  | { kind: 'absorb'; clip: Range };

/** What one op quantizer decides for one node. */
export interface NodePlan {
  /** Input indices whose (float) tensors are fed through Q/DQ. */
  activations: number[];
  /** Input index of a weight initializer quantized per channel along `axis` (symmetric int8). */
  weight?: { index: number; axis: number };
  /** Input index of a bias initializer, quantized to int32 with scale = input scale × weight scale. */
  bias?: number;
  output: OutputPlan;
  /** Follower plans (share/alias) only apply when their input ends up quantized. */
  needsQuantizedInput?: boolean;
}

export interface PlanContext {
  index: GraphIndex;
  /** Rank of a tensor from value_info, when known. */
  rank(tensor: string): number | undefined;
  /** The numeric value of a scalar (or single-element) initializer, if it is one. */
  scalar(tensor: string): number | undefined;
  /** Per-channel weights allowed (opset >= 13). */
  perChannel: boolean;
}

/** One quantizer per op family: returns a plan, or undefined to leave the node in float. */
export type OpQuantizer = (node: NodeProto, ctx: PlanContext) => NodePlan | undefined;
