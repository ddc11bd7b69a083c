import { FleetError } from '../../../shared/errors/index.js';
import { attr, makeNode } from '../onnx/build.js';
import { floatTensor, int64Tensor } from '../onnx/tensor.js';
import type { NodeProto, TensorProto } from '../onnx/types.js';
import { DENSE_THRESHOLD } from './agreement.js';
import { hardTargetTerm, type NodeMaker } from './sequence-hard.js';

export interface LossOptions {
  /**
   * 'distill': alpha * T^2 * KL(softmax(z_t/T) || softmax(z_s/T)) + (1 - alpha) * CE(y, z_s);
   * 'soft': the KL term alone (unlabelled transfer data); 'hard': plain cross-entropy
   * (no teacher; used to train teachers and scratch baselines). Default 'distill'.
   */
  mode?: 'distill' | 'soft' | 'hard';
  /** Softmax temperature T (unitless); default 4. */
  temperature?: number;
  /** Weight of the soft-target term in 'distill' mode, in [0, 1]; default 0.9. */
  alpha?: number;
  /** Feature (hint) loss: weight * MSE(student tensor [projected], teacher tensor); default none. */
  hint?: HintOptions;
  /**
   * What the outputs are: 'classes' ([B, C] logits, soft targets over C), 'sequence'
   * ([B, T, C], soft targets over C at every timestep, e.g. a CTC recogniser) or 'dense'
   * ([B, C, H, W] maps: per-pixel binary cross-entropy against the teacher's probabilities when
   * C = 1 (sigmoid maps), per-pixel soft targets over C otherwise). Default 'classes'.
   */
  task?: DistillTask;
  /**
   * Sigmoid maps only: weight of a soft Dice term, 1 − (2Σ s·p + 1) / (Σ s + Σ p + 1) over the
   * batch (s the student's probabilities, p the teacher's), added to the per-pixel BCE. BCE is
   * dominated by the background; Dice weighs the thin text regions whose boundaries decide the
   * binarised map's F1. Default 0 (BCE alone).
   */
  dice?: number;
  /**
   * Sequences only: weight of a timestep the teacher reads as the CTC blank, relative to 1 for
   * a timestep it reads as a character. Each timestep's KL is weighted by
   * w = 1 − (1 − blankWeight) · p_teacher(blank) (soft-target probability) and the loss is
   * Σ w · KL / Σ w: most timesteps of a short line are blank and already right, so a weight
   * below 1 spends the gradient on the characters. Default 1 (plain mean over timesteps).
   */
  blankWeight?: number;
  /** Sequences only: index of the CTC blank class; default 0 (PaddleOCR). */
  blankClass?: number;
  /**
   * Weight of a hard-label term added to the soft one. Sequences: the cross-entropy to the
   * teacher's argmax class at every timestep, timesteps weighted as the KL is (blankWeight where
   * the teacher's argmax is the blank, 1 on characters), Σ w · CE / Σ w (see sequence-hard.ts).
   * Sigmoid maps: per-pixel BCE against the teacher's map binarised at DENSE_THRESHOLD, the
   * threshold the map's F1 is judged at. Default 0 (soft targets alone).
   */
  hardWeight?: number;
}

export type DistillTask = 'classes' | 'sequence' | 'dense';

export interface HintOptions {
  /** Student tensor (name in the student graph). */
  student: string;
  /** Teacher tensor (name in the teacher graph), fed per batch. */
  teacher: string;
  /** Weight of the hint term; default 1. */
  weight?: number;
  /** Learn a linear 1x1 projection from the student's channels to the teacher's; default true when they differ. */
  project?: boolean;
}

export const DEFAULT_LOSS_OPTIONS = { mode: 'distill', temperature: 4, alpha: 0.9 } as const;

/** Names of the graph inputs the loss reads. */
export const LOSS_INPUTS = {
  teacherLogits: 'teacher_logits',
  labels: 'labels_onehot',
  teacherHint: 'teacher_hint',
};

export interface LossGraph {
  nodes: NodeProto[];
  initializers: TensorProto[];
  /** Extra trainable tensors (the hint projection). */
  params: TensorProto[];
  loss: string;
  /** Whether the loss reads teacher logits / one-hot labels / teacher hint features. */
  uses: { teacherLogits: boolean; labels: boolean; teacherHint: boolean };
}

/**
 * Appends the loss (mean over the batch) to a student whose logits are `logits`. The teacher
 * side (softmax of z_t/T) has no path to a parameter, so autodiff leaves it alone.
 */
export function buildLoss(
  logits: string,
  options: LossOptions & { denseChannels?: number },
  hintShapes?: { student: number[]; teacher: number[] },
  seed = 0,
): LossGraph {
  const o = { ...DEFAULT_LOSS_OPTIONS, ...options };
  const nodes: NodeProto[] = [];
  const initializers: TensorProto[] = [];
  const params: TensorProto[] = [];
  const n = (op: string, inputs: string[], out: string, attributes = [] as ReturnType<typeof attr.int>[]) => {
    nodes.push(makeNode(op, inputs, [`loss/${out}`], attributes, `loss/${out}`));
    return `loss/${out}`;
  };
  const constant = (name: string, value: number) => {
    initializers.push(floatTensor(`loss/${name}`, [], [value]));
    return `loss/${name}`;
  };
  const task = o.task ?? 'classes';
  // The axis soft targets normalise over: classes at 1 of [B, C], 2 of [B, T, C], 1 of [B, C, H, W].
  initializers.push(int64Tensor('loss/axis1', [1], [task === 'sequence' ? 2 : 1]));
  const rowSum = (x: string, out: string) =>
    n('ReduceSum', [x, 'loss/axis1'], out, [attr.int('keepdims', 0)]);
  const mean = (x: string, out: string) => n('ReduceMean', [x], out, [attr.int('keepdims', 0)]);
  const terms: string[] = [];
  const usesTeacher = o.mode !== 'hard';
  const alpha = o.mode === 'soft' ? 1 : o.mode === 'hard' ? 0 : o.alpha;
  const sigmoidMap = task === 'dense' && options.denseChannels === 1;
  const hardWeight = o.hardWeight ?? 0;
  if (!(hardWeight >= 0 && Number.isFinite(hardWeight)))
    throw new FleetError('INPUT_INVALID', `hard-label weight must be a number ≥ 0, got ${hardWeight}`);
  if (usesTeacher && alpha > 0 && sigmoidMap) {
    // Sigmoid maps: mean over pixels of BCE(p_teacher, sigmoid(z)) = softplus(z) − p·z + const,
    // with softplus(z) = relu(z) + log(1 + exp(−|z|)) (stable for large |z|).
    const z = logits;
    const abs = n('Add', [n('Relu', [z], 'relu_pos'), n('Relu', [n('Neg', [z], 'neg')], 'relu_neg')], 'abs');
    const tail = n(
      'Log',
      [n('Add', [n('Exp', [n('Neg', [abs], 'neg_abs')], 'exp'), constant('one', 1)], 'one_plus')],
      'log1p',
    );
    const softplus = n('Add', [n('Relu', [z], 'relu_z'), tail], 'softplus');
    const bce = mean(
      n('Sub', [softplus, n('Mul', [LOSS_INPUTS.teacherLogits, z], 'pz')], 'bce_terms'),
      'bce',
    );
    terms.push(n('Mul', [bce, constant('bce_weight', alpha)], 'bce_weighted'));
    if ((o.dice ?? 0) > 0) terms.push(diceTerm(z, o.dice!, n, constant));
    if (hardWeight > 0) terms.push(denseHardTerm(softplus, z, hardWeight, n, constant));
  } else if (usesTeacher && alpha > 0) {
    const t = constant('temperature', o.temperature);
    const axis = task === 'sequence' ? -1 : task === 'dense' ? 1 : -1;
    const logQ = n('LogSoftmax', [n('Div', [logits, t], 'student_scaled')], 'student_logq', [
      attr.int('axis', axis),
    ]);
    const teacherScaled = n('Div', [LOSS_INPUTS.teacherLogits, t], 'teacher_scaled');
    const p = n('Softmax', [teacherScaled], 'teacher_p', [attr.int('axis', axis)]);
    const logP = n('LogSoftmax', [teacherScaled], 'teacher_logp', [attr.int('axis', axis)]);
    const klTerms = n('Mul', [p, n('Sub', [logP, logQ], 'log_ratio')], 'kl_terms');
    const blankWeight = o.blankWeight ?? 1;
    const kl =
      task === 'sequence' && blankWeight !== 1
        ? blankWeightedMean(n, constant, initializers, klTerms, p, blankWeight, o.blankClass ?? 0)
        : mean(rowSum(klTerms, 'kl_rows'), 'kl');
    terms.push(n('Mul', [kl, constant('kl_weight', alpha * o.temperature * o.temperature)], 'kl_weighted'));
  }
  if (usesTeacher && alpha > 0 && !sigmoidMap && hardWeight > 0)
    terms.push(hardTerm(n, constant, initializers, logits, o, task));
  if (alpha < 1) {
    if (task !== 'classes')
      throw new FleetError(
        'INPUT_INVALID',
        `labels are for class outputs; a ${task} output distils from the teacher alone (soft mode)`,
      );
    const logS = n('LogSoftmax', [logits], 'student_logp', [attr.int('axis', -1)]);
    const ce = mean(rowSum(n('Mul', [LOSS_INPUTS.labels, logS], 'ce_terms'), 'ce_rows'), 'neg_ce');
    terms.push(n('Mul', [ce, constant('ce_weight', -(1 - alpha))], 'ce_weighted'));
  }
  let usesHint = false;
  if (o.hint && hintShapes) {
    usesHint = true;
    let student = o.hint.student;
    const s = hintShapes.student;
    const t = hintShapes.teacher;
    const project = o.hint.project ?? s[1] !== t[1];
    if (project) {
      // A learnt 1x1 projection (Conv for feature maps, Gemm for vectors), FitNets style.
      const bound = 1 / Math.sqrt(s[1]);
      let state = seed >>> 0;
      const next = () => {
        state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
        return state / 4294967296;
      };
      const dims = s.length === 4 ? [t[1], s[1], 1, 1] : [s[1], t[1]];
      const values = Float32Array.from({ length: t[1] * s[1] }, () => (next() * 2 - 1) * bound);
      params.push(floatTensor('loss/hint_projection', dims, values));
      student = n(s.length === 4 ? 'Conv' : 'MatMul', [student, 'loss/hint_projection'], 'hint_projected');
    }
    const diff = n('Sub', [student, LOSS_INPUTS.teacherHint], 'hint_diff');
    const mse = mean(n('Mul', [diff, diff], 'hint_sq'), 'hint_mse');
    terms.push(n('Mul', [mse, constant('hint_weight', o.hint.weight ?? 1)], 'hint_weighted'));
  }
  const loss = terms.length === 1 ? terms[0] : n('Sum', terms, 'total');
  return {
    nodes,
    initializers,
    params,
    loss,
    uses: { teacherLogits: usesTeacher && alpha > 0, labels: alpha < 1, teacherHint: usesHint },
  };
}

/** The sequence loss's hard-label term (sequence-hard.ts); other tasks refuse the option. */
function hardTerm(
  n: NodeMaker,
  constant: (name: string, value: number) => string,
  initializers: TensorProto[],
  logits: string,
  o: LossOptions,
  task: DistillTask,
): string {
  if (task !== 'sequence')
    throw new FleetError('INPUT_INVALID', `a hard-label weight is for sequence outputs, not ${task}`);
  return hardTargetTerm(n, constant, initializers, {
    teacher: LOSS_INPUTS.teacherLogits,
    logits,
    classAxis: 'loss/axis1',
    weight: o.hardWeight!,
    blankWeight: o.blankWeight ?? 1,
    blankClass: o.blankClass ?? 0,
  });
}

/**
 * weight · mean over pixels of BCE(1[p_teacher > DENSE_THRESHOLD], sigmoid(z)) = softplus(z) − y·z.
 * Soft BCE barely pulls a boundary pixel the teacher holds at 0.35 when the student says 0.25
 * (gradient 0.1), yet that pixel flips the binarised map; against the binarised target the pull
 * is 0.75, while pixels far from the threshold (p ≈ 0 or 1) get almost the same target as before.
 * The binarisation reads the teacher's side only, so no gradient flows through it.
 */
function denseHardTerm(
  softplus: string,
  z: string,
  weight: number,
  n: NodeMaker,
  constant: (name: string, value: number) => string,
): string {
  const above = n(
    'Greater',
    [LOSS_INPUTS.teacherLogits, constant('hard_threshold', DENSE_THRESHOLD)],
    'hard_above',
  );
  // Where over two constants rather than Cast: the constants follow the graph's float type.
  const y = n('Where', [above, constant('hard_fg', 1), constant('hard_bg', 0)], 'hard_target');
  const terms = n('Sub', [softplus, n('Mul', [y, z], 'hard_yz')], 'hard_bce_terms');
  const bce = n('ReduceMean', [terms], 'hard_bce', [attr.int('keepdims', 0)]);
  return n('Mul', [bce, constant('hard_weight', weight)], 'hard_weighted');
}

/** Soft Dice loss between sigmoid(z) and the teacher's probabilities, over the whole batch, × weight. */
function diceTerm(
  z: string,
  weight: number,
  n: NodeMaker,
  constant: (name: string, value: number) => string,
): string {
  const total = (x: string, out: string) => n('ReduceSum', [x], out, [attr.int('keepdims', 0)]);
  const s = n('Sigmoid', [z], 'dice_s');
  const overlap = total(n('Mul', [s, LOSS_INPUTS.teacherLogits], 'dice_sp'), 'dice_overlap');
  const smooth = constant('dice_smooth', 1);
  const numerator = n('Add', [n('Mul', [overlap, constant('two', 2)], 'dice_twice'), smooth], 'dice_num');
  const sums = n(
    'Add',
    [total(s, 'dice_sum_s'), total(LOSS_INPUTS.teacherLogits, 'dice_sum_p')],
    'dice_sums',
  );
  const ratio = n('Div', [numerator, n('Add', [sums, smooth], 'dice_den')], 'dice_ratio');
  const dice = n('Sub', [constant('dice_one', 1), ratio], 'dice');
  return n('Mul', [dice, constant('dice_weight', weight)], 'dice_weighted');
}

/**
 * Σ w · KL / Σ w over the [B, T] timesteps of a sequence, w = 1 − (1 − blankWeight) · p(blank).
 * The weights come from the teacher alone, so no gradient flows through them.
 */
function blankWeightedMean(
  n: NodeMaker,
  constant: (name: string, value: number) => string,
  initializers: TensorProto[],
  klTerms: string,
  p: string,
  blankWeight: number,
  blankClass: number,
): string {
  if (!(blankWeight >= 0))
    throw new FleetError('INPUT_INVALID', `blank weight must be a number ≥ 0, got ${blankWeight}`);
  initializers.push(int64Tensor('loss/blank_class', [1], [blankClass]));
  // [B, T, 1]: the teacher's blank probability at every timestep, and the KL summed over classes.
  const pBlank = n('Gather', [p, 'loss/blank_class'], 'p_blank', [attr.int('axis', 2)]);
  const w = n(
    'Sub',
    [constant('one_w', 1), n('Mul', [pBlank, constant('blank_discount', 1 - blankWeight)], 'discount')],
    'timestep_weight',
  );
  const rows = n('ReduceSum', [klTerms, 'loss/axis1'], 'kl_rows_kept', [attr.int('keepdims', 1)]);
  const sum = (x: string, out: string) => n('ReduceSum', [x], out, [attr.int('keepdims', 0)]);
  // A tiny floor keeps a weight of 0 on an all-blank batch from dividing by zero.
  const weights = n('Add', [sum(w, 'weight_sum'), constant('weight_floor', 1e-6)], 'weight_total');
  return n('Div', [sum(n('Mul', [rows, w], 'kl_weighted_rows'), 'kl_weighted_sum'), weights], 'kl');
}
