import { attr, makeNode } from '../onnx/build.js';
import { pruneGraph, sortGraph } from '../onnx/edit.js';
import { GraphIndex, NameGenerator } from '../onnx/graph.js';
import { prepareModel, zeroFeeds } from '../onnx/prepare.js';
import { floatTensor, makeTensor } from '../onnx/tensor.js';
import { DataType, type ModelProto, type NodeProto } from '../onnx/types.js';
import { quantizePerChannel } from './params.js';
import { weightMatMul } from './weight-matmul.js';

export interface DynamicOptions {
  /** One weight scale per output column (true) or per tensor; default true. */
  perChannel: boolean;
  /** Node names to leave in float; default none. */
  exclude: string[];
}

export const DEFAULT_DYNAMIC_OPTIONS: DynamicOptions = { perChannel: true, exclude: [] };

export interface DynamicResult {
  model: ModelProto;
  /** MatMul/Gemm nodes rewritten to integer form. */
  quantizedNodes: number;
}

/**
 * Dynamic INT8: weights become symmetric int8 (per column), activations are quantized to
 * uint8 at run time by DynamicQuantizeLinear, and the product runs as MatMulInteger with the
 * scales applied after. Written with standard ONNX ops; onnxruntime fuses the chain into
 * DynamicQuantizeMatMul / MatMulIntegerToFloat. No calibration data is needed.
 */
export async function quantizeDynamic(
  input: ModelProto,
  options: Partial<DynamicOptions> = {},
): Promise<DynamicResult> {
  const o = { ...DEFAULT_DYNAMIC_OPTIONS, ...options };
  const { model } = await prepareModel(input, zeroFeeds(input));
  const graph = model.graph;
  const index = new GraphIndex(graph);
  const names = new NameGenerator(graph);
  const excluded = new Set(o.exclude);
  const replaced = new Map<NodeProto, NodeProto[]>();
  for (const node of graph.node) {
    if (node.name && excluded.has(node.name)) continue;
    const mm = weightMatMul(node, index);
    if (!mm) continue;
    const base = node.name || node.output[0];
    const { values, scales } = quantizePerChannel(mm.w, o.perChannel ? [mm.k, mm.n] : [1, mm.w.length], 1);
    const n = (s: string) => names.next(`${base}_${s}`);
    const [wq, wz, ws] = [n('weight_int8'), n('weight_zero_point'), n('weight_scale')];
    graph.initializer!.push(
      makeTensor(wq, DataType.INT8, [mm.k, mm.n], values),
      makeTensor(wz, DataType.INT8, o.perChannel ? [mm.n] : [], new Int8Array(o.perChannel ? mm.n : 1)),
      floatTensor(ws, o.perChannel ? [mm.n] : [], scales),
    );
    const [xq, xs, xz, acc, accf, scale] = [
      n('input_quantized'),
      n('input_scale'),
      n('input_zero_point'),
      n('int32'),
      n('int32_float'),
      n('scale'),
    ];
    const out = node.output[0];
    const product = mm.bias ? n('product') : out;
    const nodes = [
      makeNode('DynamicQuantizeLinear', [node.input[0]], [xq, xs, xz], [], n('DynamicQuantizeLinear')),
      makeNode('MatMulInteger', [xq, wq, xz, wz], [acc], [], n('MatMulInteger')),
      makeNode('Cast', [acc], [accf], [attr.int('to', DataType.FLOAT)], n('Cast')),
      makeNode('Mul', [xs, ws], [scale], [], n('scale_mul')),
      makeNode('Mul', [accf, scale], [product], [], n('output_mul')),
    ];
    if (mm.bias) {
      const b = n('bias');
      graph.initializer!.push(floatTensor(b, [mm.n], mm.bias));
      nodes.push(makeNode('Add', [product, b], [out], [], n('bias_add')));
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
