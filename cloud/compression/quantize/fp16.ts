import { attr, makeNode } from '../onnx/build.js';
import { pruneGraph, sortGraph } from '../onnx/edit.js';
import { float32ToFloat16 } from '../onnx/float16.js';
import { GraphIndex, NameGenerator } from '../onnx/graph.js';
import { prepareModel, zeroFeeds } from '../onnx/prepare.js';
import { makeTensor, tensorFloats } from '../onnx/tensor.js';
import { DataType, type ModelProto, type NodeProto } from '../onnx/types.js';

/**
 * Ops left in FP32 by default: exponentials, powers and reductions overflow float16's
 * ±65504 range or lose too much precision when summing many terms; normalisations divide by
 * such sums; the rest take float parameters that are not of the data type (Resize scales)
 * or have no float16 meaning (indices, random numbers).
 */
export const FP16_KEEP_FLOAT_OPS = [
  'Exp',
  'Pow',
  'Log',
  'Softmax',
  'LogSoftmax',
  'ReduceSum',
  'ReduceMean',
  'ReduceSumSquare',
  'ReduceL2',
  'ReduceLogSumExp',
  'ReduceProd',
  'LayerNormalization',
  'InstanceNormalization',
  'LpNormalization',
  'CumSum',
  'Range',
  'Resize',
  'Upsample',
  'TopK',
  'NonMaxSuppression',
  'RoiAlign',
  'RandomNormal',
  'RandomUniform',
  'RandomNormalLike',
  'RandomUniformLike',
];

export interface Fp16Options {
  /** Op types kept in FP32; default FP16_KEEP_FLOAT_OPS. */
  keepFloatOps: string[];
  /** Node names kept in FP32; default none. */
  exclude: string[];
}

export const DEFAULT_FP16_OPTIONS: Fp16Options = { keepFloatOps: FP16_KEEP_FLOAT_OPS, exclude: [] };

export interface Fp16Result {
  model: ModelProto;
  /** Nodes that run in float16. */
  fp16Nodes: number;
  /** Op types (with counts) kept in FP32. */
  floatOps: Record<string, number>;
  /** Weight values beyond ±65504 that were clamped. */
  clamped: number;
}

/** Ops whose float inputs (by index) do not follow the data type T. */
const NOT_T_INPUTS: Record<string, number[]> = { Resize: [1, 2], Upsample: [1] };
/** Ops with an output type set by attribute `to` that must follow the conversion. */
const isFloatCast = (n: NodeProto) =>
  n.opType === 'Cast' && n.attribute?.find((a) => a.name === 'to')?.i === DataType.FLOAT;

/**
 * FP16 conversion: float weights become float16 and float ops run in float16, while graph
 * inputs and outputs stay float32 (a Cast at each boundary), and overflow-prone ops stay in
 * FP32 behind Casts. onnxruntime's CPU provider runs float16 ops it has no kernel for by
 * inserting Casts itself; the point of this format is size and devices with FP16 units.
 */
export async function convertToFp16(
  input: ModelProto,
  options: Partial<Fp16Options> = {},
): Promise<Fp16Result> {
  const o = { ...DEFAULT_FP16_OPTIONS, ...options };
  const { model } = await prepareModel(input, zeroFeeds(input));
  const graph = model.graph;
  const floatTensors = new Set<string>();
  for (const v of [...(graph.input ?? []), ...(graph.valueInfo ?? []), ...(graph.output ?? [])])
    if (v.type?.tensorType?.elemType === DataType.FLOAT) floatTensors.add(v.name);
  const inits = new Map((graph.initializer ?? []).map((t) => [t.name ?? '', t]));
  for (const [name, t] of inits)
    if ((t.dataType ?? DataType.FLOAT) === DataType.FLOAT) floatTensors.add(name);
  const keepOps = new Set(o.keepFloatOps);
  const excluded = new Set(o.exclude);
  const isHalfNode = (n: NodeProto) =>
    (n.domain ?? '') === '' && !keepOps.has(n.opType) && !(n.name && excluded.has(n.name));
  const index = new GraphIndex(graph);
  const names = new NameGenerator(graph);
  const floatOps: Record<string, number> = {};

  // Which float tensors hold float16 values: outputs of float16 nodes.
  const half = new Set<string>();
  for (const node of graph.node) {
    if (!isHalfNode(node)) {
      if (node.output.some((t) => floatTensors.has(t)))
        floatOps[node.opType] = (floatOps[node.opType] ?? 0) + 1;
      continue;
    }
    for (const t of node.output) if (floatTensors.has(t)) half.add(t);
    if (isFloatCast(node)) {
      half.add(node.output[0]);
      node.attribute = [attr.int('to', DataType.FLOAT16)];
    }
  }

  // Float initializers read by float16 nodes (at positions of type T) become float16; one read
  // by both kinds of node gets a float16 copy.
  let clamped = 0;
  const halfCopy = new Map<string, string>();
  const halfInit = (name: string): string => {
    const known = halfCopy.get(name);
    if (known) return known;
    const t = inits.get(name)!;
    const readers = index.consumersOf(name);
    const shared = readers.some((r) => !isHalfNode(r)) || index.graphOutputs.has(name);
    const { bits, clamped: c } = float32ToFloat16(tensorFloats(t));
    clamped += c;
    const target = shared ? names.next(`${name}_fp16`) : name;
    const tensor = makeTensor(target, DataType.FLOAT16, t.dims ?? [], bits);
    if (shared) graph.initializer!.push(tensor);
    else graph.initializer![graph.initializer!.indexOf(t)] = tensor;
    halfCopy.set(name, target);
    return target;
  };

  const casts: NodeProto[] = [];
  const castOf = new Map<string, string>();
  const cast = (t: string, to: number): string => {
    const key = `${t}:${to}`;
    const known = castOf.get(key);
    if (known) return known;
    const out = names.next(`${t}_${to === DataType.FLOAT16 ? 'fp16' : 'fp32'}`);
    casts.push(makeNode('Cast', [t], [out], [attr.int('to', to)], names.next(`${out}_Cast`)));
    castOf.set(key, out);
    return out;
  };

  for (const node of [...graph.node]) {
    const halfNode = isHalfNode(node);
    const notT = new Set(NOT_T_INPUTS[node.opType] ?? []);
    node.input.forEach((t, i) => {
      if (!t || !floatTensors.has(t)) return;
      if (halfNode && !notT.has(i)) {
        if (inits.has(t)) node.input[i] = halfInit(t);
        else if (!half.has(t)) node.input[i] = cast(t, DataType.FLOAT16);
      } else if (half.has(t)) node.input[i] = cast(t, DataType.FLOAT);
    });
  }
  // Graph outputs stay float32: rename the float16 producer's output and cast back.
  for (const out of graph.output ?? []) {
    if (!half.has(out.name)) continue;
    const producer = index.producer.get(out.name);
    if (!producer) continue;
    const renamed = names.next(`${out.name}_fp16`);
    producer.output[producer.output.indexOf(out.name)] = renamed;
    for (const n of graph.node)
      for (let i = 0; i < n.input.length; i++) if (n.input[i] === out.name) n.input[i] = renamed;
    for (const c of casts) if (c.input[0] === out.name) c.input[0] = renamed;
    casts.push(
      makeNode(
        'Cast',
        [renamed],
        [out.name],
        [attr.int('to', DataType.FLOAT)],
        names.next(`${out.name}_Cast`),
      ),
    );
  }
  graph.node.push(...casts);
  pruneGraph(graph);
  sortGraph(graph);
  graph.valueInfo = [];
  model.producerName = 'fleetml';
  const fp16Nodes = graph.node.filter((n) => isHalfNode(n) && n.opType !== 'Cast').length;
  return { model, fp16Nodes, floatOps, clamped };
}
