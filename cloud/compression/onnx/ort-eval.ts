import { FleetError } from '../../../shared/errors/index.js';
import { createSession, type OrtTensor, ort } from '../runtime/ort.js';
import { pruneGraph } from './edit.js';
import { describeNode, GraphIndex, NameGenerator } from './graph.js';
import { encodeModel } from './proto.js';
import { makeTensor, type NumericArray } from './tensor.js';
import { DataType, type ModelProto, type NodeProto, type ValueInfo } from './types.js';

/** Shape and element type of a tensor as onnxruntime reported it for one run. */
export interface TensorShapeInfo {
  dims: number[];
  elemType: number;
}

const ORT_TO_ONNX: Record<string, number> = {
  float32: DataType.FLOAT,
  float16: DataType.FLOAT16,
  float64: DataType.DOUBLE,
  int8: DataType.INT8,
  uint8: DataType.UINT8,
  int16: DataType.INT16,
  uint16: DataType.UINT16,
  int32: DataType.INT32,
  uint32: DataType.UINT32,
  int64: DataType.INT64,
  bool: DataType.BOOL,
};

export function onnxTypeOfOrt(type: string): number {
  return ORT_TO_ONNX[type] ?? DataType.UNDEFINED;
}

/** Every tensor that a node of the main graph produces, in node order. */
export function intermediateTensors(model: ModelProto): string[] {
  return model.graph.node.flatMap((n) => n.output.filter((o) => o !== ''));
}

/**
 * A copy of the model whose graph also outputs the given tensors (onnxruntime accepts
 * outputs without type information and fills it in), for calibration and shape inference.
 */
export function withExtraOutputs(model: ModelProto, tensors: readonly string[]): ModelProto {
  const existing = new Set((model.graph.output ?? []).map((o) => o.name));
  const extra: ValueInfo[] = tensors.filter((t) => !existing.has(t)).map((name) => ({ name }));
  return { ...model, graph: { ...model.graph, output: [...(model.graph.output ?? []), ...extra] } };
}

/**
 * Shapes and types of `tensors` from one run that outputs, per tensor, only its Shape and its
 * first element (which carries the type): nothing large is copied out of onnxruntime, which
 * on a 640×640 detector is most of the cost of exposing every intermediate. Undefined when
 * the probe does not run (e.g. an empty or non-tensor value), so the caller can fall back.
 */
async function probeShapes(
  model: ModelProto,
  tensors: readonly string[],
  feeds: Record<string, OrtTensor>,
): Promise<Map<string, TensorShapeInfo> | undefined> {
  const names = new NameGenerator(model.graph);
  const flat = names.next('shape_probe_flat');
  const first = names.next('shape_probe_first');
  const nodes: NodeProto[] = [];
  const outputs: [string, string, string][] = [];
  for (const t of tensors) {
    const shape = names.next(`${t}_probe_shape`);
    const reshaped = names.next(`${t}_probe_flat`);
    const head = names.next(`${t}_probe_first`);
    nodes.push(
      { opType: 'Shape', input: [t], output: [shape], name: shape },
      { opType: 'Reshape', input: [t, flat], output: [reshaped], name: reshaped },
      { opType: 'Gather', input: [reshaped, first], output: [head], name: head },
    );
    outputs.push([t, shape, head]);
  }
  const probe: ModelProto = {
    ...model,
    graph: {
      ...model.graph,
      node: [...model.graph.node, ...nodes],
      initializer: [
        ...(model.graph.initializer ?? []),
        makeTensor(flat, DataType.INT64, [1], [-1]),
        makeTensor(first, DataType.INT64, [1], [0]),
      ],
      output: [...(model.graph.output ?? []), ...outputs.flatMap(([, a, b]) => [{ name: a }, { name: b }])],
    },
  };
  let session: Awaited<ReturnType<typeof createSession>> | undefined;
  try {
    // Full optimisation: the probe only reads shapes and first elements, which fusions keep.
    session = await createSession(encodeModel(probe), { allowSpinning: false });
    const results = await session.run(
      feeds,
      outputs.flatMap(([, a, b]) => [a, b]),
    );
    const shapes = new Map<string, TensorShapeInfo>();
    for (const [t, a, b] of outputs) {
      shapes.set(t, {
        dims: Array.from(results[a].data as BigInt64Array, Number),
        elemType: onnxTypeOfOrt(results[b].type),
      });
    }
    return shapes;
  } catch {
    return undefined;
  } finally {
    await session?.release();
  }
}

/**
 * Learns the shape of every intermediate tensor by running one sample through onnxruntime,
 * and records their types and ranks as value_info. Used when the exporter left value_info out
 * (paddle2onnx does) and a pass needs ranks or channel counts.
 */
export async function inferShapes(
  model: ModelProto,
  feeds: Record<string, OrtTensor>,
): Promise<Map<string, TensorShapeInfo>> {
  const tensors = intermediateTensors(model);
  const shapes = (await probeShapes(model, tensors, feeds)) ?? (await exposeAll(model, tensors, feeds));
  const known = new Set((model.graph.input ?? []).map((v) => v.name));
  for (const o of model.graph.output ?? []) known.add(o.name);
  model.graph.valueInfo = [
    ...(model.graph.valueInfo ?? []).filter((v) => !shapes.has(v.name)),
    ...[...shapes]
      .filter(([name]) => !known.has(name))
      .map(([name, s]) => ({
        name,
        // Rank and type only: concrete sizes from one sample would let onnxruntime fold Shape
        // ops to that sample's batch size.
        type: { tensorType: { elemType: s.elemType, shape: { dim: s.dims.map(() => ({})) } } },
      })),
  ];
  return shapes;
}

/** Ops that must not be folded even with constant inputs (random or stateful). */
const NOT_FOLDABLE = new Set([
  'RandomNormal',
  'RandomUniform',
  'RandomNormalLike',
  'RandomUniformLike',
  'Multinomial',
]);

/**
 * Replaces every node whose inputs are all initializers by initializers holding its outputs,
 * computed by onnxruntime (so folding is exact for any op ORT runs). Returns how many nodes
 * were folded. Quantization needs this so that weights reach Conv/MatMul as initializers.
 */
export async function foldConstants(model: ModelProto): Promise<number> {
  const graph = model.graph;
  const constant = new Set((graph.initializer ?? []).map((t) => t.name ?? ''));
  const graphInputs = new Set((graph.input ?? []).map((v) => v.name));
  for (const name of graphInputs) constant.delete(name);
  constant.add('');
  const foldable: NodeProto[] = [];
  for (const node of graph.node) {
    if (node.opType === 'Constant') {
      foldable.push(node);
      for (const o of node.output) constant.add(o);
      continue;
    }
    if (NOT_FOLDABLE.has(node.opType) || (node.attribute ?? []).some((a) => a.g || a.graphs?.length))
      continue;
    if (node.input.every((i) => constant.has(i))) {
      foldable.push(node);
      for (const o of node.output) constant.add(o);
    }
  }
  if (foldable.length === 0) return 0;
  const outputs = foldable.flatMap((n) => n.output).filter((o) => o !== '');
  const sub: ModelProto = {
    ...model,
    graph: { ...graph, node: foldable, input: [], output: outputs.map((name) => ({ name })), valueInfo: [] },
  };
  pruneGraph(sub.graph);
  let results: Record<string, OrtTensor>;
  const session = await createSession(encodeModel(sub), { graphOptimizationLevel: 'disabled' });
  try {
    results = await session.run({});
  } catch (error) {
    throw new FleetError(
      'ONNX_INVALID',
      `constant folding failed near ${describeNode(foldable[0])}: ${(error as Error).message}`,
    );
  } finally {
    await session.release();
  }
  const index = new GraphIndex(graph);
  const folded = new Set(foldable);
  graph.node = graph.node.filter((n) => !folded.has(n));
  for (const name of outputs) {
    const t = results[name];
    const values = t.data as NumericArray;
    graph.initializer!.push(makeTensor(name, onnxTypeOfOrt(t.type), [...t.dims], values));
  }
  void index;
  pruneGraph(graph);
  return foldable.length;
}

/** Runs a model once on the given feeds (no optimisation), e.g. to compare before/after a pass. */
export async function runOnce(
  model: ModelProto,
  feeds: Record<string, OrtTensor>,
): Promise<Record<string, OrtTensor>> {
  const session = await createSession(encodeModel(model), { graphOptimizationLevel: 'disabled' });
  try {
    return await session.run(feeds);
  } finally {
    await session.release();
  }
}

/** The slow path: every intermediate as a graph output, copied out with its data. */
async function exposeAll(
  model: ModelProto,
  tensors: readonly string[],
  feeds: Record<string, OrtTensor>,
): Promise<Map<string, TensorShapeInfo>> {
  const probe = withExtraOutputs(model, tensors);
  const session = await createSession(encodeModel(probe), { graphOptimizationLevel: 'disabled' });
  let results: Record<string, OrtTensor>;
  try {
    results = await session.run(feeds);
  } catch (error) {
    throw new FleetError('RUNTIME_RUN', `shape inference run failed: ${(error as Error).message}`);
  } finally {
    await session.release();
  }
  const shapes = new Map<string, TensorShapeInfo>();
  for (const [name, tensor] of Object.entries(results)) {
    shapes.set(name, { dims: [...tensor.dims], elemType: onnxTypeOfOrt(tensor.type) });
  }
  return shapes;
}

export { type OrtTensor, ort };
