import { FleetError } from '../../../shared/errors/index.js';
import { makeNode } from '../onnx/build.js';
import { describeNode, GraphIndex, NameGenerator } from '../onnx/graph.js';
import { makeTensor, tensorFloats } from '../onnx/tensor.js';
import { DataType, type GraphProto, type ModelProto, type NodeProto } from '../onnx/types.js';
import type { Range } from './calibrate/methods.js';
import type { NodePlan } from './ops/types.js';
import {
  activationParams,
  type QParams,
  type QuantType,
  quantizeArray,
  quantizeBias,
  quantizePerChannel,
} from './params.js';
import type { QuantPlan, TensorPlan } from './plan.js';
import { ONNX_TYPE, QdqWriter, SUFFIX } from './qdq-writer.js';

export { SUFFIX };

export interface EmitOptions {
  /** Activation integer type; weights are always symmetric int8. */
  activationType: QuantType;
  /** Symmetric activations (zero point 0 for int8: TensorRT); default asymmetric. */
  symmetricActivations?: boolean;
  /** Per-channel weight scales (needs opset 13); otherwise one scale per weight tensor. */
  perChannel: boolean;
  /** Symmetric weight bits: 8 (±127) or 7 (±63, reduce range for x86 without VNNI). */
  weightBits: 7 | 8;
  /** The calibrated range of a tensor (throws if calibration did not see it). */
  range(tensor: string): Range;
}

/**
 * The scale and zero point of every planned tensor (shared tensors take their source's,
 * aliases their source's with the scale multiplied). Pure: reads the plan and the ranges.
 */
export function resolveActivationParams(
  tensors: ReadonlyMap<string, TensorPlan>,
  options: Pick<EmitOptions, 'activationType' | 'symmetricActivations' | 'range'>,
): Map<string, QParams> {
  const resolved = new Map<string, QParams>();
  const make = (range: Range) =>
    activationParams(range, options.activationType, options.symmetricActivations);
  const resolve = (t: string, path: ReadonlySet<string>): QParams => {
    const known = resolved.get(t);
    if (known) return known;
    const p = tensors.get(t);
    if (!p) throw new FleetError('QUANT_FAILED', `tensor ${t} has no quantization plan`);
    if (path.has(t)) throw new FleetError('QUANT_FAILED', `cyclic quantization parameters at ${t}`);
    const inner = new Set([...path, t]);
    let q: QParams;
    if (p.source === 'share') q = resolve(p.from, inner);
    else if (p.source === 'alias') {
      const from = resolve(p.from, inner);
      q = { ...from, scale: Math.fround(from.scale * p.factor) };
    } else if (p.source === 'fixed') q = make(p.range);
    else if (p.source === 'absorb') q = make({ min: 0, max: Math.min(options.range(t).max, p.clip.max) });
    else q = make(options.range(t));
    resolved.set(t, q);
    return q;
  };
  for (const t of tensors.keys()) resolve(t, new Set());
  return resolved;
}

/** Integer tensor names: one per owning tensor; aliases reuse their source's integers. */
function integerNames(tensors: ReadonlyMap<string, TensorPlan>, writer: QdqWriter): Map<string, string> {
  const names = new Map<string, string>();
  const of = (t: string): string => {
    const p = tensors.get(t);
    if (p?.source === 'alias') return of(p.from);
    let name = names.get(t);
    if (!name) {
      name = writer.name(`${t}${SUFFIX.quantized}`);
      names.set(t, name);
    }
    return name;
  };
  for (const t of tensors.keys()) names.set(t, of(t));
  return names;
}

/**
 * Activations: Q after the producer, DQ under the original name so readers need no change
 * (a graph input keeps its name and its readers move to the DQ's output).
 */
function emitActivations(
  index: GraphIndex,
  plan: QuantPlan,
  params: Map<string, QParams>,
  writer: QdqWriter,
): void {
  const ints = integerNames(plan.tensors, writer);
  for (const [t, p] of plan.tensors) {
    const [s, z] = writer.scalarParams(t, params.get(t)!);
    if (p.source === 'alias') {
      writer.removed.add(p.node);
      writer.dequantize(ints.get(t)!, s, z, t);
      continue;
    }
    const producer = index.producer.get(t);
    let source: string;
    let dqOut = t;
    if (p.source === 'absorb') {
      writer.removed.add(p.node);
      source = p.node.input[0];
    } else if (producer) {
      source = writer.name(`${t}${SUFFIX.float}`);
      producer.output[producer.output.indexOf(t)] = source;
    } else {
      source = t;
      dqOut = writer.name(`${t}${SUFFIX.dequantized}`);
      params.set(dqOut, params.get(t)!);
      for (const reader of index.consumersOf(t))
        reader.input = reader.input.map((i) => (i === t ? dqOut : i));
    }
    writer.nodes.push(makeNode('QuantizeLinear', [source, s, z], [ints.get(t)!]));
    writer.dequantize(ints.get(t)!, s, z, dqOut);
  }
}

/** Weight (per-channel symmetric int8), int32 bias and constant activation inputs of one node. */
function emitConstants(
  node: NodeProto,
  nodePlan: NodePlan,
  index: GraphIndex,
  params: Map<string, QParams>,
  writer: QdqWriter,
  options: EmitOptions,
): void {
  const weightScales = nodePlan.weight
    ? emitWeight(node, nodePlan.weight, index, writer, options)
    : undefined;
  if (nodePlan.bias !== undefined && weightScales)
    emitBias(node, nodePlan.bias, weightScales, index, params, writer);
  for (const i of nodePlan.activations) emitConstantActivation(node, i, index, writer, options);
}

/** The weight input as int8 (per channel along `axis` when asked); returns its scales. */
function emitWeight(
  node: NodeProto,
  weight: NonNullable<NodePlan['weight']>,
  index: GraphIndex,
  writer: QdqWriter,
  options: EmitOptions,
): Float32Array {
  const { index: wi, axis } = weight;
  const w = index.initializers.get(node.input[wi]);
  if (!w)
    throw new FleetError(
      'QUANT_FAILED',
      `${describeNode(node)}: weight ${node.input[wi]} is not an initializer`,
    );
  const dims = w.dims ?? [];
  const perChannel = options.perChannel && dims.length > 1;
  const q = quantizePerChannel(
    tensorFloats(w),
    perChannel ? dims : [1, ...dims],
    perChannel ? axis : 0,
    options.weightBits,
  );
  node.input[wi] = writer.dequantizedConstant(
    w.name!,
    { dims, data: q.values, type: DataType.INT8 },
    q.scales,
    perChannel ? axis : undefined,
  );
  return q.scales;
}

/** The bias input as int32 at input scale × weight scale. */
function emitBias(
  node: NodeProto,
  bias: number,
  weightScales: Float32Array,
  index: GraphIndex,
  params: Map<string, QParams>,
  writer: QdqWriter,
): void {
  const b = index.initializers.get(node.input[bias])!;
  const input = params.get(node.input[0]);
  if (!input)
    throw new FleetError('QUANT_FAILED', `${describeNode(node)}: input ${node.input[0]} is not quantized`);
  const q = quantizeBias(tensorFloats(b), input.scale, weightScales);
  node.input[bias] = writer.dequantizedConstant(
    b.name!,
    { dims: b.dims ?? [], data: q.values, type: DataType.INT32 },
    q.scales,
    q.scales.length > 1 ? 0 : undefined,
  );
}

/** A float constant fed where the plan expects an activation: quantized with its own range. */
function emitConstantActivation(
  node: NodeProto,
  i: number,
  index: GraphIndex,
  writer: QdqWriter,
  options: EmitOptions,
): void {
  const t = node.input[i];
  const c = t ? index.initializers.get(t) : undefined;
  if (!c || (c.dataType !== DataType.FLOAT && c.dataType !== undefined)) return;
  const values = tensorFloats(c);
  const range = {
    min: values.reduce((a, b) => Math.min(a, b), 0),
    max: values.reduce((a, b) => Math.max(a, b), 0),
  };
  const p = activationParams(range, options.activationType, options.symmetricActivations);
  const [s, z] = writer.scalarParams(t, p);
  const qi = writer.name(`${t}${SUFFIX.quantized}`);
  writer.initializers.push(makeTensor(qi, ONNX_TYPE[p.type], c.dims ?? [], quantizeArray(values, p)));
  const out = writer.name(`${t}${SUFFIX.dequantized}`);
  writer.dequantize(qi, s, z, out);
  node.input[i] = out;
}

/**
 * Writes a plan into the graph as QuantizeLinear/DequantizeLinear nodes with int8 weights
 * and int32 biases (the QDQ format onnxruntime fuses into QLinear* kernels). Edits in place:
 * the parameters are resolved first, then activations and constants are written in two passes
 * that only add to one writer and rename the tensors they quantize.
 */
export function emitQdq(model: ModelProto, plan: QuantPlan, options: EmitOptions): void {
  const graph: GraphProto = model.graph;
  const index = new GraphIndex(graph);
  const writer = new QdqWriter(new NameGenerator(graph));
  const params = resolveActivationParams(plan.tensors, options);
  emitActivations(index, plan, params, writer);
  for (const [node, nodePlan] of plan.nodes) {
    if (!writer.removed.has(node)) emitConstants(node, nodePlan, index, params, writer, options);
  }
  graph.initializer = [...(graph.initializer ?? []), ...writer.initializers];
  graph.node = [...graph.node.filter((n) => !writer.removed.has(n)), ...writer.nodes];
}
