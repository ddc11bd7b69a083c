import { attr, makeModel, makeNode, makeValueInfo } from '../onnx/build.js';
import { int64Tensor, makeTensor } from '../onnx/tensor.js';
import {
  AttributeType,
  DataType,
  type GraphProto,
  type ModelProto,
  type NodeProto,
  type TensorProto,
} from '../onnx/types.js';
import { LOSS_INPUTS } from './losses.js';
import type { TrainingForm } from './students/training-form.js';

/** One tensor carried from step to step: a parameter, an optimizer state or a running statistic. */
export interface CarriedTensor {
  /** Name inside the step (the student's own name for parameters and buffers). */
  name: string;
  role: 'param' | 'state' | 'buffer';
  dims: number[];
  initial: Float32Array;
}

/**
 * Names of the training model's inputs. The data tensors hold whole sample sets ([N, ...]) and
 * stay resident between runs; each run names its rows by `indices` ([K, B] int64), so a run
 * costs no copy of samples on the JavaScript side.
 */
export const RUN_INPUTS = {
  x: 'data/x',
  teacherLogits: 'data/teacher_targets',
  labels: 'data/labels_onehot',
  teacherHint: 'data/teacher_hint',
  indices: 'run/indices',
  hyper: 'run/hyper',
} as const;

export const carriedInput = (name: string) => `state/${name}`;
export const carriedOutput = (name: string) => `final/${name}`;

export interface LoopSettings {
  B: number;
  opset: number;
  H: number;
  hyperNames: string[];
  uses: { teacherLogits: boolean; labels: boolean; teacherHint: boolean };
  loss: string;
  classes: number;
  /** Per-sample shape of the teacher targets (the student output), e.g. [classes] or [1, H, W]. */
  targetShape: number[];
  teacherHintShape?: number[];
  emitLogits: boolean;
  sampleShape: number[];
}

/**
 * Wraps one training step (its graph reads the student input, the loss inputs and hyper/i
 * scalars) in a Loop over the leading steps axis of the run inputs, with the carried tensors
 * as loop state.
 */
export function wrapInLoop(
  step: GraphProto,
  form: TrainingForm,
  carried: CarriedTensor[],
  nextOf: Map<string, string>,
  s: LoopSettings,
): ModelProto {
  const prefix: NodeProto[] = [];
  const inits: TensorProto[] = [];
  const take = (all: string, index: string, out: string) =>
    prefix.push(makeNode('Gather', [all, index], [out], [attr.int('axis', 0)]));
  take(RUN_INPUTS.indices, 'loop/iter', 'loop/rows');
  take(RUN_INPUTS.x, 'loop/rows', form.input);
  if (s.uses.teacherLogits) take(RUN_INPUTS.teacherLogits, 'loop/rows', LOSS_INPUTS.teacherLogits);
  if (s.uses.labels) take(RUN_INPUTS.labels, 'loop/rows', LOSS_INPUTS.labels);
  if (s.uses.teacherHint) take(RUN_INPUTS.teacherHint, 'loop/rows', LOSS_INPUTS.teacherHint);
  take(RUN_INPUTS.hyper, 'loop/iter', 'loop/hyper');
  s.hyperNames.forEach((h, i) => {
    inits.push(int64Tensor(`loop/h${i}`, [], [i]));
    prefix.push(makeNode('Gather', ['loop/hyper', `loop/h${i}`], [h], [attr.int('axis', 0)]));
  });
  const outputs = [makeValueInfo('loop/cond_out', DataType.BOOL, [])];
  const identities: NodeProto[] = [makeNode('Identity', ['loop/cond_in'], ['loop/cond_out'])];
  for (const c of carried) {
    // Loop body outputs must be distinct tensors; an unchanged one goes through Identity.
    let out = nextOf.get(c.name)!;
    if (out === c.name) {
      out = `${c.name}/same`;
      identities.push(makeNode('Identity', [c.name], [out]));
    }
    outputs.push(makeValueInfo(out, DataType.FLOAT, c.dims));
  }
  outputs.push(makeValueInfo(s.loss, DataType.FLOAT, []));
  if (s.emitLogits) {
    identities.push(makeNode('Identity', [form.output], ['loop/logits']));
    outputs.push(makeValueInfo('loop/logits', DataType.FLOAT, [s.B, ...s.targetShape]));
  }
  const body: GraphProto = {
    name: 'train_step',
    node: [...prefix, ...step.node, ...identities],
    initializer: [...inits, ...step.initializer!],
    input: [
      makeValueInfo('loop/iter', DataType.INT64, []),
      makeValueInfo('loop/cond_in', DataType.BOOL, []),
      ...carried.map((c) => makeValueInfo(c.name, DataType.FLOAT, c.dims)),
    ],
    output: outputs,
  };
  const loopOutputs = [...carried.map((c) => carriedOutput(c.name)), 'run/losses'];
  if (s.emitLogits) loopOutputs.push('run/logits');
  const main: NodeProto[] = [
    makeNode('Shape', [RUN_INPUTS.indices], ['run/indices_shape']),
    makeNode('Gather', ['run/indices_shape', 'run/zero'], ['run/steps'], [attr.int('axis', 0)]),
    makeNode(
      'Loop',
      ['run/steps', 'run/true', ...carried.map((c) => carriedInput(c.name))],
      loopOutputs,
      [{ name: 'body', type: AttributeType.GRAPH, g: body }],
      'train_loop',
    ),
  ];
  const K = 'steps';
  const N = 'samples';
  const inputs = [makeValueInfo(RUN_INPUTS.x, DataType.FLOAT, [N, ...s.sampleShape])];
  if (s.uses.teacherLogits)
    inputs.push(makeValueInfo(RUN_INPUTS.teacherLogits, DataType.FLOAT, [N, ...s.targetShape]));
  if (s.uses.labels) inputs.push(makeValueInfo(RUN_INPUTS.labels, DataType.FLOAT, [N, s.classes]));
  if (s.uses.teacherHint) {
    inputs.push(makeValueInfo(RUN_INPUTS.teacherHint, DataType.FLOAT, [N, ...s.teacherHintShape!]));
  }
  inputs.push(makeValueInfo(RUN_INPUTS.indices, DataType.INT64, [K, s.B]));
  inputs.push(makeValueInfo(RUN_INPUTS.hyper, DataType.FLOAT, [K, s.H]));
  inputs.push(...carried.map((c) => makeValueInfo(carriedInput(c.name), DataType.FLOAT, c.dims)));
  const outs = [
    ...carried.map((c) => makeValueInfo(carriedOutput(c.name), DataType.FLOAT, c.dims)),
    makeValueInfo('run/losses', DataType.FLOAT, [K]),
  ];
  if (s.emitLogits) outs.push(makeValueInfo('run/logits', DataType.FLOAT, [K, s.B, ...s.targetShape]));
  return makeModel(main, inputs, outs, {
    opset: s.opset,
    name: 'fleetml_distill_train',
    initializers: [int64Tensor('run/zero', [], [0]), makeTensor('run/true', DataType.BOOL, [], [1])],
  });
}
