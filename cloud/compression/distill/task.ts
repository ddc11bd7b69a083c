import { FleetError } from '../../../shared/errors/index.js';
import type { GraphProto, ModelProto } from '../onnx/types.js';
import type { DistillTask } from './losses.js';

/** The activation that produces a model's first output, if it is one the losses understand. */
export type OutputActivation = 'softmax' | 'logsoftmax' | 'sigmoid' | 'none';

export function outputActivation(graph: GraphProto): OutputActivation {
  const out = graph.output?.[0]?.name;
  if (flattenedSoftmax(graph, out ?? '')) return 'softmax';
  const producer = graph.node.find((n) => n.output.includes(out ?? ''));
  if (producer?.opType === 'Softmax') return 'softmax';
  if (producer?.opType === 'LogSoftmax') return 'logsoftmax';
  if (producer?.opType === 'Sigmoid') return 'sigmoid';
  return 'none';
}

/**
 * The tensor the distillation loss reads from the student: the logits before a final
 * Softmax/LogSoftmax/Sigmoid (a shrunk teacher keeps its output activation), else the output.
 */
export function studentLogitsTensor(graph: GraphProto): string {
  const out = graph.output![0].name;
  const flattened = flattenedSoftmax(graph, out);
  if (flattened) return flattened;
  if (outputActivation(graph) === 'none') return out;
  return graph.node.find((n) => n.output.includes(out))!.input[0];
}

/**
 * The input x of Reshape(Softmax(Flatten(x)), Shape(x)) producing `out`: how upgrading an
 * opset 9–12 Softmax whose axis is not known to be the last writes it (PaddleOCR's recogniser:
 * Softmax axis 2 of [N, T, C]). Exporters put such an axis on the last dimension, where the
 * flattened softmax is the softmax over C that the losses apply to x.
 */
function flattenedSoftmax(graph: GraphProto, out: string): string | undefined {
  const producer = (name: string) => graph.node.find((n) => n.output.includes(name));
  const reshape = producer(out);
  if (reshape?.opType !== 'Reshape') return undefined;
  const softmax = producer(reshape.input[0]);
  const shape = producer(reshape.input[1]);
  if (softmax?.opType !== 'Softmax') return undefined;
  const flatten = producer(softmax.input[0]);
  if (flatten?.opType !== 'Flatten' || shape?.opType !== 'Shape') return undefined;
  return shape.input[0] === flatten.input[0] ? flatten.input[0] : undefined;
}

/** The task from the shape of one sample of the teacher's output: [C], [T, C] or [C, H, W]. */
export function detectTask(targetShape: readonly number[]): DistillTask {
  if (targetShape.length === 1) return 'classes';
  if (targetShape.length === 2) return 'sequence';
  if (targetShape.length === 3) return 'dense';
  throw new FleetError(
    'INPUT_INVALID',
    `cannot tell how to distil an output of per-sample shape [${targetShape}]; pass the task (classes, sequence, dense)`,
  );
}

/**
 * Converts the teacher's raw outputs (in place) into what the loss expects: logits for soft
 * targets (log-probabilities of a softmax output serve, since softmax(log p / T) ∝ p^(1/T)),
 * probabilities for sigmoid maps.
 */
export function toTargets(
  raw: Float32Array,
  activation: OutputActivation,
  task: DistillTask,
  channels: number,
): Float32Array {
  const sigmoidMap = task === 'dense' && channels === 1;
  if (sigmoidMap && activation !== 'sigmoid') {
    for (let i = 0; i < raw.length; i++) raw[i] = 1 / (1 + Math.exp(-raw[i]));
  } else if (!sigmoidMap && activation === 'softmax') {
    for (let i = 0; i < raw.length; i++) raw[i] = Math.log(Math.max(raw[i], 1e-8));
  } else if (!sigmoidMap && activation === 'sigmoid') {
    throw new FleetError('INPUT_INVALID', `a sigmoid output cannot give soft targets for a ${task} task`);
  }
  return raw;
}

/** The teacher model's output activation (convenience for callers holding a ModelProto). */
export function teacherActivation(model: ModelProto): OutputActivation {
  return outputActivation(model.graph);
}
