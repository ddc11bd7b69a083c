import { FleetError } from '../../../shared/errors/index.js';
import { attr, makeModel, makeValueInfo } from '../onnx/build.js';
import { tensorFloats } from '../onnx/tensor.js';
import { DataType, type GraphProto, type ModelProto, type TensorProto } from '../onnx/types.js';
import { ort } from '../runtime/ort.js';
import { buildBackward } from './autodiff/backward.js';
import { Emitter } from './autodiff/emitter.js';
import { inferShapes } from './autodiff/shapes.js';
import { type CarriedTensor, wrapInLoop } from './loop.js';
import { buildLoss, LOSS_INPUTS, type LossOptions } from './losses.js';
import { createOptimizer, type GraphOptimizer, type OptimizerOptions } from './optim/optimizers.js';
import type { TrainingForm } from './students/training-form.js';

export interface TrainingGraphOptions {
  /** Samples per step (fixed: the backward pass uses static shapes). */
  batch: number;
  /** Number of classes (width of the logits; of the one-hot labels). */
  classes: number;
  /** Per-sample shape of the student output and teacher targets; default [classes]. */
  targetShape?: number[];
  loss?: LossOptions;
  optimizer?: OptimizerOptions;
  /** Shape of the teacher's hint tensor for one sample, when a hint loss is used. */
  teacherHintShape?: number[];
  /** Also output the student logits of every step, [K, B, classes] (tests); default false. */
  emitLogits?: boolean;
  /** Seed of the hint projection's initialisation; default 0. */
  seed?: number;
}

export { type CarriedTensor, carriedInput, carriedOutput, RUN_INPUTS } from './loop.js';

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
  targetShape: number[];
  /** Per-sample shape of the teacher hint tensor, when the loss has a hint term. */
  hintShape?: number[];
  sampleShape: number[];
}

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
  const targetShape = options.targetShape ?? [options.classes];
  if (loss.uses.teacherLogits) extraFeeds[LOSS_INPUTS.teacherLogits] = zeros([B, ...targetShape]);
  if (loss.uses.labels) extraFeeds[LOSS_INPUTS.labels] = zeros([B, options.classes]);
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
      targetShape,
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
    targetShape,
    hintShape: loss.uses.teacherHint ? options.teacherHintShape : undefined,
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
