import { FleetError } from '../../../../shared/errors/index.js';
import { attr, makeNode } from '../../onnx/build.js';
import { attrFloat, describeNode } from '../../onnx/graph.js';
import { elementCount, makeTensor } from '../../onnx/tensor.js';
import { DataType, type ModelProto, type NodeProto, type TensorProto } from '../../onnx/types.js';
import { assertDifferentiable } from '../autodiff/backward.js';
import { gradRule } from '../autodiff/registry.js';

/** A running statistic the forward pass updates (BatchNormalization mean and variance). */
export interface Buffer {
  name: string;
  /** The training graph's tensor holding the updated value after a step. */
  next: string;
}

/** The student's forward pass as it runs during training. */
export interface TrainingForm {
  nodes: NodeProto[];
  /** Trainable float initializers, in graph order. */
  params: TensorProto[];
  buffers: Buffer[];
  /** Initializers that are neither parameters nor buffers (shapes, ratios ...). */
  constants: TensorProto[];
  /** Every initializer of the inference model, as given. */
  allInitializers: TensorProto[];
  input: string;
  output: string;
  /** Shape of one input sample (the input's dimensions after the batch axis). */
  sampleShape: number[];
  opset: number;
}

export const MIN_STUDENT_OPSET = 13;

/** Element-wise ops whose single-number float operands are constants, not parameters. */
const ELEMENTWISE = new Set(['Add', 'Sub', 'Mul', 'Div', 'Pow', 'Max', 'Min', 'Sum']);

export function defaultOpset(model: ModelProto): number {
  return model.opsetImport?.find((o) => !o.domain || o.domain === 'ai.onnx')?.version ?? 0;
}

/**
 * Derives the training form of an inference model: BatchNormalization switches to batch
 * statistics and emits updated running statistics, Dropout becomes active with a seeded
 * mask. Float initializers that reach a differentiable input slot are the parameters. Every
 * op between the parameters and the output must have a gradient rule (GRAD_UNSUPPORTED_OP
 * names the first one that does not).
 */
export function trainingForm(model: ModelProto, seed = 0, sampleShape?: number[]): TrainingForm {
  const opset = defaultOpset(model);
  if (opset < MIN_STUDENT_OPSET) {
    throw new FleetError(
      'INPUT_INVALID',
      `student opset ${opset} is older than ${MIN_STUDENT_OPSET}; upgrade the model's opset first`,
    );
  }
  const graph = model.graph;
  const input = (graph.input ?? []).find(
    (i) => !(graph.initializer ?? []).some((t) => t.name === i.name),
  )?.name;
  const output = graph.output?.[0]?.name;
  if (!input || !output) throw new FleetError('ONNX_INVALID', 'student model needs one input and one output');
  const inputInfo = graph.input!.find((i) => i.name === input)!;
  const dims = (inputInfo.type?.tensorType?.shape?.dim ?? []).slice(1).map((d) => d.dimValue);
  const shape = sampleShape ?? (dims.every((d) => typeof d === 'number') ? (dims as number[]) : undefined);
  if (!shape) {
    throw new FleetError(
      'ONNX_SHAPE',
      `student input ${input} has symbolic sample dimensions; give the sample shape`,
    );
  }
  const initializers = new Map((graph.initializer ?? []).map((t) => [t.name!, t]));
  const trainable = new Set<string>();
  const bufferNames = new Set<string>();
  for (const node of graph.node) {
    if (node.opType === 'BatchNormalization') {
      bufferNames.add(node.input[3]);
      bufferNames.add(node.input[4]);
    }
    const rule = gradRule(node.opType, node.domain);
    node.input.forEach((name, i) => {
      const t = initializers.get(name);
      // Fake-quantization constants (scales, clamp bounds: distill/qat.ts) are never parameters,
      // nor single numbers in element-wise ops: exporters write epsilons, attention scales and
      // exponents that way (paddle2onnx's decomposed LayerNorm adds 1e-5), and Adam's steps of
      // about lr would push an epsilon past zero. A one-channel bias of a Conv or Gemm still trains.
      const scalarOperand = ELEMENTWISE.has(node.opType) && elementCount(t?.dims?.map(Number)) === 1;
      if (
        t &&
        t.dataType === DataType.FLOAT &&
        rule?.differentiable.includes(i) &&
        !name.includes('/fq_') &&
        !scalarOperand
      )
        trainable.add(name);
    });
  }
  for (const b of bufferNames) trainable.delete(b);
  const params = (graph.initializer ?? []).filter((t) => trainable.has(t.name!));
  assertDifferentiable(graph, output, [...trainable]);

  const constants = (graph.initializer ?? []).filter(
    (t) => !trainable.has(t.name!) && !bufferNames.has(t.name!),
  );
  const buffers: Buffer[] = [];
  let dropoutIndex = 0;
  const nodes = graph.node.map((node) => {
    if (node.opType === 'BatchNormalization') {
      const [, , , mean, variance] = node.input;
      const nextMean = `${mean}/next`;
      const nextVar = `${variance}/next`;
      buffers.push({ name: mean, next: nextMean }, { name: variance, next: nextVar });
      const attributes = (node.attribute ?? []).filter((a) => a.name !== 'training_mode');
      return {
        ...node,
        output: [node.output[0], nextMean, nextVar],
        attribute: [...attributes, attr.int('training_mode', 1)],
      };
    }
    if (node.opType === 'Dropout') return activeDropout(node, seed + 1000 * ++dropoutIndex, constants);
    return node;
  });
  return {
    nodes,
    params,
    buffers,
    constants,
    allInitializers: graph.initializer ?? [],
    input,
    output,
    sampleShape: shape,
    opset,
  };
}

function activeDropout(node: NodeProto, seed: number, constants: TensorProto[]): NodeProto {
  let ratio = node.input[1];
  if (!ratio) {
    ratio = `${node.output[0]}/ratio`;
    constants.push(makeTensor(ratio, DataType.FLOAT, [], [attrFloat(node, 'ratio', 0.5)]));
  }
  const training = `${node.output[0]}/training`;
  constants.push(makeTensor(training, DataType.BOOL, [], [1]));
  const mask = node.output[1] || `${node.output[0]}/mask`;
  if (!node.output[0]) throw new FleetError('ONNX_INVALID', `${describeNode(node)} has no output`);
  const attributes = (node.attribute ?? []).filter((a) => a.name !== 'seed' && a.name !== 'ratio');
  return makeNode(
    'Dropout',
    [node.input[0], ratio, training],
    [node.output[0], mask],
    [...attributes, attr.int('seed', seed)],
    node.name,
  );
}
