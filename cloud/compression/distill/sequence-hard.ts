import { FleetError } from '../../../shared/errors/index.js';
import { attr } from '../onnx/build.js';
import { int64Tensor } from '../onnx/tensor.js';
import type { TensorProto } from '../onnx/types.js';

/** Adds one node to the loss graph and returns its output name (losses.ts builds the graph). */
export type NodeMaker = (
  op: string,
  inputs: string[],
  out: string,
  attributes?: ReturnType<typeof attr.int>[],
) => string;

export interface HardTargetSettings {
  /** The teacher's targets, [B, T, C] logits or log-probabilities. */
  teacher: string;
  /** The student's logits, [B, T, C]. */
  logits: string;
  /** int64 [1] initializer holding the class axis (2). */
  classAxis: string;
  /** ≥ 0, checked by buildLoss. */
  weight: number;
  blankWeight: number;
  blankClass: number;
}

/**
 * weight · Σ w · CE(argmax_c teacher, softmax(student)) / Σ w over the [B, T] timesteps of a
 * sequence, w = blankWeight where the teacher's argmax is the blank and 1 on characters.
 * Greedy CTC decodes only the argmax path, so this term pulls each timestep towards the
 * teacher's decision (at T = 1, where soft targets spread over thousands of classes still
 * count, the soft term can be low while the argmax differs). The one-hot comes from ArgMax
 * and Range (any opset ≥ 11) on the teacher side only, so no gradient flows through it.
 */
export function hardTargetTerm(
  n: NodeMaker,
  constant: (name: string, value: number) => string,
  initializers: TensorProto[],
  s: HardTargetSettings,
): string {
  if (!(s.blankWeight >= 0))
    throw new FleetError('INPUT_INVALID', `blank weight must be a number ≥ 0, got ${s.blankWeight}`);
  initializers.push(
    int64Tensor('loss/hard_last', [], [-1]),
    int64Tensor('loss/hard_zero', [], [0]),
    int64Tensor('loss/hard_step', [], [1]),
    int64Tensor('loss/hard_blank', [], [s.blankClass]),
  );
  // [B, T, 1] index of the teacher's top class; [C] the class indices; their equality is the one-hot.
  const top = n('ArgMax', [s.teacher], 'hard_top', [attr.int('axis', -1), attr.int('keepdims', 1)]);
  const classes = n('Gather', [n('Shape', [s.teacher], 'hard_shape'), 'loss/hard_last'], 'hard_classes', [
    attr.int('axis', 0),
  ]);
  const range = n('Range', ['loss/hard_zero', classes, 'loss/hard_step'], 'hard_range');
  // Where with float constants, not Cast: the constants follow the graph's float type (float64 in gradient checks).
  const one = constant('hard_one', 1);
  const oneHot = n(
    'Where',
    [n('Equal', [top, range], 'hard_equal'), one, constant('hard_zero_f', 0)],
    'hard_onehot',
  );
  const logQ = n('LogSoftmax', [s.logits], 'hard_logq', [attr.int('axis', -1)]);
  // [B, T, 1]: log q of the teacher's class (the CE's negative) per timestep.
  const picked = n('ReduceSum', [n('Mul', [oneHot, logQ], 'hard_terms'), s.classAxis], 'hard_picked', [
    attr.int('keepdims', 1),
  ]);
  const isBlank = n('Equal', [top, 'loss/hard_blank'], 'hard_is_blank');
  const w = n('Where', [isBlank, constant('hard_blank_weight', s.blankWeight), one], 'hard_w');
  const sum = (x: string, out: string) => n('ReduceSum', [x], out, [attr.int('keepdims', 0)]);
  const total = n('Add', [sum(w, 'hard_w_sum'), constant('hard_floor', 1e-6)], 'hard_w_total');
  const mean = n('Div', [sum(n('Mul', [picked, w], 'hard_weighted'), 'hard_sum'), total], 'hard_mean_logq');
  // −weight × mean log q = weight × mean CE.
  return n('Mul', [mean, constant('hard_weight', -s.weight)], 'hard_weighted_ce');
}
