import { FleetError } from '../../shared/errors/index.js';
import { attr, makeModel, makeNode, makeValueInfo } from '../onnx/build.js';
import { int64Tensor, makeTensor, tensorFloats } from '../onnx/tensor.js';
import {
  AttributeType,
  DataType,
  type GraphProto,
  type ModelProto,
  type NodeProto,
  type TensorProto,
} from '../onnx/types.js';
import { ort } from '../runtime/ort.js';
import { buildBackward } from './autodiff/backward.js';
import { Emitter } from './autodiff/emitter.js';
import { inferShapes } from './autodiff/shapes.js';
import { buildLoss, LOSS_INPUTS, type LossOptions } from './losses.js';
import { createOptimizer, type GraphOptimizer, type OptimizerOptions } from './optim/optimizers.js';
import type { TrainingForm } from './students/training-form.js';

export interface TrainingGraphOptions {
  /** Samples per step (fixed: the backward pass uses static shapes). */
  batch: number;
  /** Number of classes (width of the logits). */
  classes: number;
  loss?: LossOptions;
  optimizer?: OptimizerOptions;
  /** Shape of the teacher's hint tensor for one sample, when a hint loss is used. */
  teacherHintShape?: number[];
  /** Also output the student logits of every step, [K, B, classes] (tests); default false. */
  emitLogits?: boolean;
  /** Seed of the hint projection's initialisation; default 0. */
  seed?: number;
}

/** One tensor carried from step to step: a parameter, an optimizer state or a running statistic. */
export interface CarriedTensor {
  /** Name inside the step (the student's own name for parameters and buffers). */
  name: string;
  role: 'param' | 'state' | 'buffer';
  dims: number[];
  initial: Float32Array;
}

/** Names of the training model's per-run inputs (each with a leading steps axis K). */
export const RUN_INPUTS = {
  x: 'run/x',
  teacherLogits: 'run/teacher_logits',
  labels: 'run/labels_onehot',
  teacherHint: 'run/teacher_hint',
  hyper: 'run/hyper',
} as const;

export interface TrainingGraph {
  /** Runs K steps per call: a Loop over the steps axis of the run inputs. */
  model: ModelProto;
  carried: CarriedTensor[];
  optimizer: GraphOptimizer;
  uses: { teacherLogits: boolean; labels: boolean; teacherHint: boolean };
  /** Output with the loss of each step, [K]. */
  lossesOutput: string;
  logitsOutput?: string;
  batch: number;
  classes: number;
  sampleShape: number[];
}

export const carriedInput = (name: string) => `state/${name}`;
export const carriedOutput = (name: string) => `final/${name}`;

/**
 * Builds forward + loss + backward + optimizer as one step, wrapped in an ONNX Loop that
 * runs as many steps as the run inputs have along their first axis. Parameters and optimizer
 * state are loop-carried, so they cross into JavaScript once per call instead of once per step.
 */
export async function buildTrainingGraph(
  form: TrainingForm,
  options: TrainingGraphOptions,
): Promise<TrainingGraph> {
  const opset = Math.max(17, form.opset);
  const B = options.batch;
  const optimizer = createOptimizer(options.optimizer);
  const step: GraphProto = {
    node: [...form.nodes],
    initializer: [...form.constants],
    input: [],
    output: [],
  };
  const studentShapes = new Map<string, number[]>();
  // The hint needs the student tensor's shape before the loss exists: probe the student alone first.
  const probeStudent = await probe(form, step, B, opset, {});
  for (const [k, v] of probeStudent) studentShapes.set(k, v);
  const hint = options.loss?.hint;
  const loss = buildLoss(
    form.output,
    options.loss ?? {},
    hint && options.teacherHintShape
      ? { student: studentShapes.get(hint.student)!, teacher: [B, ...options.teacherHintShape] }
      : undefined,
    options.seed,
  );
  step.node.push(...loss.nodes);
  step.initializer!.push(...loss.initializers);
  const params = [...form.params, ...loss.params];
  const extraFeeds: Record<string, ort.Tensor> = {};
  const logitShape = [B, options.classes];
  if (loss.uses.teacherLogits) extraFeeds[LOSS_INPUTS.teacherLogits] = zeros(logitShape);
  if (loss.uses.labels) extraFeeds[LOSS_INPUTS.labels] = zeros(logitShape);
  if (loss.uses.teacherHint) extraFeeds[LOSS_INPUTS.teacherHint] = zeros([B, ...options.teacherHintShape!]);
  const shapes = await probe({ ...form, params }, step, B, opset, extraFeeds);

  const H = optimizer.hyperSize;
  const hyperNames = Array.from({ length: H }, (_, i) => `hyper/${i}`);
  const seed = optimizer.seedIndex >= 0 ? hyperNames[optimizer.seedIndex] : undefined;
  const wrt = params.map((p) => p.name!);
  step.input = [form.input, ...Object.keys(extraFeeds), ...wrt, ...form.buffers.map((b) => b.name)].map(
    (name) => ({
      name,
    }),
  );
  const back = buildBackward(step, loss.loss, wrt, shapes, { opset, seed });
  step.node.push(...back.nodes);
  step.initializer!.push(...back.initializers);

  const emitter = new Emitter(step, DataType.FLOAT, opset, 'opt');
  const carried: CarriedTensor[] = [];
  const nextOf = new Map<string, string>();
  for (const p of params) {
    const grad = back.gradients.get(p.name!);
    const dims = [...(p.dims ?? [])];
    const states = optimizer.states.map((s) => `${p.name}/${s}`);
    carried.push({ name: p.name!, role: 'param', dims, initial: tensorFloats(p) });
    for (const s of states)
      carried.push({ name: s, role: 'state', dims, initial: new Float32Array(size(dims)) });
    if (!grad) {
      // The loss does not reach this parameter (e.g. a layer after the hint tensor): keep it.
      nextOf.set(p.name!, p.name!);
      for (const s of states) nextOf.set(s, s);
      continue;
    }
    const accumulated =
      optimizer.accumulateBeta !== undefined &&
      fuseAccumulation(step, grad, states[0], optimizer.accumulateBeta);
    const updated = optimizer.update(emitter, p.name!, grad, states, hyperNames, accumulated);
    nextOf.set(p.name!, updated.param);
    states.forEach((s, i) => {
      nextOf.set(s, updated.states[i]);
    });
  }
  for (const b of form.buffers) {
    const t = findInitializer(form, b.name);
    carried.push({ name: b.name, role: 'buffer', dims: [...(t.dims ?? [])], initial: tensorFloats(t) });
    nextOf.set(b.name, b.next);
  }
  step.node.push(...emitter.nodes);
  step.initializer!.push(...emitter.initializers);
  // Buffers are carried, not constants of the step.
  const carriedNames = new Set(carried.map((c) => c.name));
  step.initializer = step.initializer!.filter((t) => !carriedNames.has(t.name!));

  return {
    model: wrapInLoop(step, form, carried, nextOf, {
      B,
      opset,
      H,
      hyperNames,
      uses: loss.uses,
      loss: loss.loss,
      classes: options.classes,
      teacherHintShape: options.teacherHintShape,
      emitLogits: options.emitLogits ?? false,
      sampleShape: shapes.get(form.input)!.slice(1),
    }),
    carried,
    optimizer,
    uses: loss.uses,
    lossesOutput: 'run/losses',
    logitsOutput: options.emitLogits ? 'run/logits' : undefined,
    batch: B,
    classes: options.classes,
    sampleShape: form.sampleShape,
  };
}

/**
 * When a weight gradient comes straight out of a Gemm with no C input, lets that Gemm add
 * beta * state through C: the momentum update then costs no extra pass over the weights.
 */
function fuseAccumulation(step: GraphProto, grad: string, state: string, beta: number): boolean {
  const producer = step.node.find((n) => n.output[0] === grad);
  if (producer?.opType !== 'Gemm' || producer.input.length > 2) return false;
  if (step.node.some((n) => n !== producer && n.input.includes(grad))) return false;
  producer.input = [...producer.input, state];
  producer.attribute = [...(producer.attribute ?? []), attr.float('beta', beta)];
  return true;
}

interface LoopSettings {
  B: number;
  opset: number;
  H: number;
  hyperNames: string[];
  uses: TrainingGraph['uses'];
  loss: string;
  classes: number;
  teacherHintShape?: number[];
  emitLogits: boolean;
  sampleShape: number[];
}

function wrapInLoop(
  step: GraphProto,
  form: TrainingForm,
  carried: CarriedTensor[],
  nextOf: Map<string, string>,
  s: LoopSettings,
): ModelProto {
  const prefix: NodeProto[] = [];
  const inits: TensorProto[] = [int64Tensor('loop/zero', [], [0])];
  const take = (all: string, out: string) =>
    prefix.push(makeNode('Gather', [all, 'loop/iter'], [out], [attr.int('axis', 0)]));
  take(RUN_INPUTS.x, form.input);
  if (s.uses.teacherLogits) take(RUN_INPUTS.teacherLogits, LOSS_INPUTS.teacherLogits);
  if (s.uses.labels) take(RUN_INPUTS.labels, LOSS_INPUTS.labels);
  if (s.uses.teacherHint) take(RUN_INPUTS.teacherHint, LOSS_INPUTS.teacherHint);
  take(RUN_INPUTS.hyper, 'loop/hyper');
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
    outputs.push(makeValueInfo('loop/logits', DataType.FLOAT, [s.B, s.classes]));
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
    makeNode('Shape', [RUN_INPUTS.x], ['run/x_shape']),
    makeNode('Gather', ['run/x_shape', 'run/zero'], ['run/steps'], [attr.int('axis', 0)]),
    makeNode(
      'Loop',
      ['run/steps', 'run/true', ...carried.map((c) => carriedInput(c.name))],
      loopOutputs,
      [{ name: 'body', type: AttributeType.GRAPH, g: body }],
      'train_loop',
    ),
  ];
  const K = 'steps';
  const inputs = [makeValueInfo(RUN_INPUTS.x, DataType.FLOAT, [K, s.B, ...s.sampleShape])];
  if (s.uses.teacherLogits)
    inputs.push(makeValueInfo(RUN_INPUTS.teacherLogits, DataType.FLOAT, [K, s.B, s.classes]));
  if (s.uses.labels) inputs.push(makeValueInfo(RUN_INPUTS.labels, DataType.FLOAT, [K, s.B, s.classes]));
  if (s.uses.teacherHint) {
    inputs.push(makeValueInfo(RUN_INPUTS.teacherHint, DataType.FLOAT, [K, s.B, ...s.teacherHintShape!]));
  }
  inputs.push(makeValueInfo(RUN_INPUTS.hyper, DataType.FLOAT, [K, s.H]));
  inputs.push(...carried.map((c) => makeValueInfo(carriedInput(c.name), DataType.FLOAT, c.dims)));
  const outs = [
    ...carried.map((c) => makeValueInfo(carriedOutput(c.name), DataType.FLOAT, c.dims)),
    makeValueInfo('run/losses', DataType.FLOAT, [K]),
  ];
  if (s.emitLogits) outs.push(makeValueInfo('run/logits', DataType.FLOAT, [K, s.B, s.classes]));
  return makeModel(main, inputs, outs, {
    opset: s.opset,
    name: 'fleetml_distill_train',
    initializers: [int64Tensor('run/zero', [], [0]), makeTensor('run/true', DataType.BOOL, [], [1])],
  });
}

async function probe(
  form: TrainingForm,
  step: GraphProto,
  B: number,
  opset: number,
  extra: Record<string, ort.Tensor>,
): Promise<Map<string, number[]>> {
  const buffers = form.buffers.map((b) => findInitializer(form, b.name));
  const inputShape = [B, ...form.sampleShape];
  const feeds = { [form.input]: zeros(inputShape), ...extra };
  const inputs = Object.entries(feeds).map(([name, t]) => makeValueInfo(name, DataType.FLOAT, [...t.dims]));
  const model = makeModel(step.node, inputs, [], {
    opset,
    initializers: [...step.initializer!, ...form.params, ...buffers],
  });
  return inferShapes(model, feeds);
}

function findInitializer(form: TrainingForm, name: string): TensorProto {
  const t = form.allInitializers.find((i) => i.name === name);
  if (!t) throw new FleetError('ONNX_INVALID', `student graph has no initializer ${name}`);
  return t;
}

function zeros(dims: number[]): ort.Tensor {
  return new ort.Tensor('float32', new Float32Array(size(dims)), dims);
}

function size(dims: readonly number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}
