import { makeNode } from '../onnx/build.js';
import { pruneGraph, sortGraph } from '../onnx/edit.js';
import { fuseTransformerOps } from '../onnx/fuse-transformer.js';
import { GraphIndex, NameGenerator } from '../onnx/graph.js';
import { prepareModel, zeroFeeds } from '../onnx/prepare.js';
import { floatTensor } from '../onnx/tensor.js';
import type { ModelProto, NodeProto, TensorProto } from '../onnx/types.js';
import { type WeightMatMul, weightMatMul } from './weight-matmul.js';

/** What a weight-only format gets to build the replacement of one MatMul/Gemm. */
export interface WeightRewriteContext {
  /** A graph-unique name prefixed by the node's name. */
  name(suffix: string): string;
  addInitializer(...tensors: TensorProto[]): void;
  /** Where the replacement writes x·W; the driver adds the bias (if any) after it. */
  product: string;
}

/**
 * The loop both weight-only formats (dynamic INT8, INT4) share: prepare the model, replace
 * every MatMul/Gemm with constant weights (except excluded nodes) by the nodes `build`
 * returns, add the bias back, then prune and re-sort the graph.
 */
export async function rewriteWeightMatMuls(
  input: ModelProto,
  exclude: readonly string[],
  build: (mm: WeightMatMul, context: WeightRewriteContext) => NodeProto[],
  options: { fuseTransformer?: boolean } = {},
): Promise<{ model: ModelProto; quantizedNodes: number }> {
  const { model } = await prepareModel(input, zeroFeeds(input));
  if (options.fuseTransformer) {
    // The graph onnxruntime runs: decomposed LayerNorm/GELU as single ops (onnx/fuse-transformer.ts).
    const shapes = new Map(
      [...(model.graph.valueInfo ?? []), ...(model.graph.input ?? []), ...(model.graph.output ?? [])].map(
        (v) => [v.name, v.type?.tensorType?.shape?.dim?.map((d) => Number(d.dimValue ?? 0))],
      ),
    );
    fuseTransformerOps(model, (t) => shapes.get(t));
  }
  const graph = model.graph;
  const index = new GraphIndex(graph);
  const names = new NameGenerator(graph);
  const excluded = new Set(exclude);
  const replaced = new Map<NodeProto, NodeProto[]>();
  for (const node of graph.node) {
    if (node.name && excluded.has(node.name)) continue;
    const mm = weightMatMul(node, index);
    if (!mm) continue;
    const base = node.name || node.output[0];
    const name = (suffix: string) => names.next(`${base}_${suffix}`);
    const out = node.output[0];
    const product = mm.bias ? name('p') : out;
    const nodes = build(mm, { name, addInitializer: (...t) => graph.initializer!.push(...t), product });
    if (mm.bias) {
      const bias = name('b');
      graph.initializer!.push(floatTensor(bias, [mm.n], mm.bias));
      nodes.push(makeNode('Add', [product, bias], [out]));
    }
    replaced.set(node, nodes);
  }
  graph.node = graph.node.flatMap((n) => replaced.get(n) ?? [n]);
  pruneGraph(graph);
  sortGraph(graph);
  graph.valueInfo = [];
  model.producerName = 'fleetml';
  return { model, quantizedNodes: replaced.size };
}
