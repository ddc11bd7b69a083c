import { GraphIndex, topologicalOrder } from '../onnx/graph.js';
import { elementCount, tensorFloats } from '../onnx/tensor.js';
import { DataType, type ModelProto, type NodeProto } from '../onnx/types.js';
import type { Range } from './calibrate/methods.js';
import { opQuantizer } from './ops/registry.js';
import type { NodePlan, PlanContext } from './ops/types.js';

/** Where the quantization parameters of a tensor come from. */
export type TensorPlan =
  | { source: 'own' }
  | { source: 'fixed'; range: Range }
  | { source: 'share'; from: string }
  | { source: 'alias'; from: string; factor: number; node: NodeProto }
  | { source: 'absorb'; clip: Range; node: NodeProto };

export interface QuantPlan {
  /** Nodes that run in integer form (or are removed by it), with their op quantizer's plan. */
  nodes: Map<NodeProto, NodePlan>;
  /** Tensors that get a Q/DQ pair (or a DQ alias), by name. */
  tensors: Map<string, TensorPlan>;
}

export interface PlanOptions {
  /** Node names (or output tensor names) to keep in float. */
  exclude: ReadonlySet<string>;
  /** Op types to keep in float. */
  excludeOps: ReadonlySet<string>;
  perChannel: boolean;
}

export function planContext(model: ModelProto, index: GraphIndex, perChannel: boolean): PlanContext {
  const ranks = new Map<string, number>();
  for (const v of [
    ...(model.graph.input ?? []),
    ...(model.graph.valueInfo ?? []),
    ...(model.graph.output ?? []),
  ]) {
    const dims = v.type?.tensorType?.shape?.dim;
    if (dims) ranks.set(v.name, dims.length);
  }
  for (const t of model.graph.initializer ?? []) if (t.name) ranks.set(t.name, t.dims?.length ?? 0);
  return {
    index,
    perChannel,
    rank: (t) => ranks.get(t),
    scalar: (t) => {
      const init = index.initializers.get(t);
      if (
        !init ||
        elementCount(init.dims) !== 1 ||
        (init.dataType !== DataType.FLOAT && init.dataType !== undefined)
      )
        return undefined;
      return tensorFloats(init)[0];
    },
  };
}

/** Float tensors by name (from value_info, inputs and outputs), to skip shape/index tensors. */
function floatTensors(model: ModelProto): Set<string> {
  const out = new Set<string>();
  for (const v of [
    ...(model.graph.input ?? []),
    ...(model.graph.valueInfo ?? []),
    ...(model.graph.output ?? []),
  ]) {
    if (v.type?.tensorType?.elemType === DataType.FLOAT) out.add(v.name);
  }
  return out;
}

/**
 * Decides which nodes run quantized and where every Q/DQ goes. Anchor ops (with integer
 * kernels) request their inputs and outputs quantized; followers (shape ops, scalar Mul)
 * join when their input is quantized; Relu/Clip are absorbed into the Q after them.
 */
export function planQuantization(model: ModelProto, options: PlanOptions): QuantPlan {
  const graph = model.graph;
  const index = new GraphIndex(graph);
  const ctx = planContext(model, index, options.perChannel);
  const isFloat = floatTensors(model);
  const order = topologicalOrder(graph);
  const candidates = new Map<NodeProto, NodePlan>();
  for (const node of order) {
    if ((node.domain ?? '') !== '') continue;
    if (options.excludeOps.has(node.opType)) continue;
    if ((node.name && options.exclude.has(node.name)) || node.output.some((o) => options.exclude.has(o)))
      continue;
    if (!node.output[0] || !isFloat.has(node.output[0])) continue;
    const plan = opQuantizer(node.opType)?.(node, ctx);
    if (plan) candidates.set(node, plan);
  }
  const nodes = new Map<NodeProto, NodePlan>();
  const tensors = new Map<string, TensorPlan>();
  // An anchor's output feeding only an absorbable activation is not quantized itself: the
  // activation is removed and its Q reads the anchor's output (Conv+Relu -> QLinearConv).
  const absorbedBy = (tensor: string) => {
    const readers = index.consumersOf(tensor);
    return (
      readers.length === 1 &&
      !index.graphOutputs.has(tensor) &&
      candidates.get(readers[0])?.output.kind === 'absorb'
    );
  };
  for (const node of order) {
    const plan = candidates.get(node);
    if (!plan || plan.needsQuantizedInput) continue;
    nodes.set(node, plan);
    for (const i of plan.activations) {
      const t = node.input[i];
      if (!t || index.isInitializer(t) || !isFloat.has(t)) continue;
      if (!tensors.has(t)) tensors.set(t, { source: 'own' });
    }
    const out = node.output[0];
    if (plan.output.kind === 'absorb') tensors.set(out, { source: 'absorb', clip: plan.output.clip, node });
    else if (plan.output.kind === 'fixed') tensors.set(out, { source: 'fixed', range: plan.output.range });
    else if (plan.output.kind === 'own' && !absorbedBy(out)) tensors.set(out, { source: 'own' });
  }
  // Followers, in order, so that chains (Transpose -> Reshape -> ...) propagate.
  for (const node of order) {
    const plan = candidates.get(node);
    if (!plan?.needsQuantizedInput) continue;
    const out = plan.output;
    if (out.kind !== 'share' && out.kind !== 'alias') continue;
    const from = node.input[out.from];
    if (!tensors.has(from)) continue;
    nodes.set(node, plan);
    const o = node.output[0];
    if (out.kind === 'share') tensors.set(o, { source: 'share', from });
    else tensors.set(o, { source: 'alias', from, factor: out.factor, node });
  }
  return { nodes, tensors };
}
