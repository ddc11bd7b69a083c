import { constantsToInitializers } from './constants.js';
import { cloneModel, pruneGraph } from './edit.js';
import { attrFloat, GraphIndex, NameGenerator } from './graph.js';
import { upgradeOpset } from './opset.js';
import { channelConstant, floatTensor, tensorFloats } from './tensor.js';
import type { GraphProto, ModelProto, NodeProto, TensorProto } from './types.js';

/**
 * Folds a constant per-channel (or scalar) scale and shift after a Conv into its weights and
 * bias: Conv → Mul(a) → Add(b) becomes one Conv with W' = a·W, b' = a·bias + b (either of the
 * two may be missing). paddle2onnx writes PP-OCRv4's learnable affine blocks so: 28 Mul and
 * 28 Add passes over full feature maps that onnxruntime's own Conv fusions leave alone.
 * Returns the number of folded nodes.
 */
export function foldConvAffine(graph: GraphProto): number {
  const index = new GraphIndex(graph);
  const names = new NameGenerator(graph);
  const removed = new Set<NodeProto>();
  for (const conv of graph.node) {
    if (conv.opType !== 'Conv') continue;
    const weight = index.initializers.get(conv.input[1]);
    const biasTensor = conv.input[2] ? index.initializers.get(conv.input[2]) : undefined;
    if (!weight || (conv.input[2] && !biasTensor)) continue;
    const channels = Number(weight.dims![0]);
    let w: Float32Array | undefined;
    let bias: Float32Array | undefined;
    // Follow the chain of constant Mul/Add nodes that alone read the Conv's output.
    let output = conv.output[0];
    for (let next = soleConsumer(index, output); next; next = soleConsumer(index, output)) {
      if (next.opType !== 'Mul' && next.opType !== 'Add') break;
      const other = next.input[0] === output ? next.input[1] : next.input[0];
      const constant = channelConstant(index.initializers.get(other), channels, weight.dims!.length);
      if (!constant) break;
      w ??= Float32Array.from(tensorFloats(weight));
      bias ??= biasTensor ? Float32Array.from(tensorFloats(biasTensor)) : new Float32Array(channels);
      const inner = w.length / channels;
      for (let c = 0; c < channels; c++) {
        if (next.opType === 'Mul') {
          for (let i = 0; i < inner; i++) w[c * inner + i] *= constant[c];
          bias[c] *= constant[c];
        } else bias[c] += constant[c];
      }
      removed.add(next);
      output = next.output[0];
    }
    if (!w || !bias) continue;
    // New initializers: the originals may be shared with other layers.
    conv.input[1] = names.next(`${conv.input[1]}_folded`);
    conv.input[2] = names.next(`${output}_bias`);
    graph.initializer!.push(
      floatTensor(conv.input[1], weight.dims!.map(Number), w),
      floatTensor(conv.input[2], [channels], bias),
    );
    conv.output[0] = output;
  }
  graph.node = graph.node.filter((n) => !removed.has(n));
  return removed.size;
}

/**
 * Replaces x · Clip(x + 3, 0, 6) / 6 (how paddle2onnx and older PyTorch exports write
 * hard-swish) with one HardSwish node (opset 14): one pass over the feature map instead of four.
 * The caller makes sure the model's opset is at least 14. Returns the number of fused nodes.
 */
export function fuseHardSwish(graph: GraphProto): number {
  const index = new GraphIndex(graph);
  const removed = new Set<NodeProto>();
  const added: NodeProto[] = [];
  const value = (name: string | undefined) => scalar(name ? index.initializers.get(name) : undefined);
  for (const add of graph.node) {
    if (add.opType !== 'Add') continue;
    const x = value(add.input[1]) === 3 ? add.input[0] : value(add.input[0]) === 3 ? add.input[1] : undefined;
    const clip = x === undefined ? undefined : soleConsumer(index, add.output[0]);
    if (x === undefined || clip?.opType !== 'Clip' || !clipsTo(clip, value)) continue;
    const mul = soleConsumer(index, clip.output[0]);
    if (mul?.opType !== 'Mul' || !mul.input.includes(x) || !mul.input.includes(clip.output[0])) continue;
    const div = soleConsumer(index, mul.output[0]);
    if (div?.opType !== 'Div' || div.input[0] !== mul.output[0] || value(div.input[1]) !== 6) continue;
    for (const n of [add, clip, mul, div]) removed.add(n);
    added.push({
      opType: 'HardSwish',
      input: [x],
      output: [div.output[0]],
      name: `${div.output[0]}_hardswish`,
    });
  }
  if (!added.length) return 0;
  // Each HardSwish takes the place of its Div, so the order stays topological.
  const byOutput = new Map(added.map((h) => [h.output[0], h]));
  graph.node = graph.node.flatMap((n) => {
    const fused = byOutput.get(n.output[0]);
    return fused ? [fused] : removed.has(n) ? [] : [n];
  });
  return added.length;
}

function soleConsumer(index: GraphIndex, tensor: string): NodeProto | undefined {
  const readers = index.consumersOf(tensor);
  return readers.length === 1 && !index.graphOutputs.has(tensor) ? readers[0] : undefined;
}

function scalar(t: TensorProto | undefined): number | undefined {
  if (!t) return undefined;
  const v = tensorFloats(t);
  return v.length === 1 ? v[0] : undefined;
}

function clipsTo(clip: NodeProto, value: (name: string | undefined) => number | undefined): boolean {
  // Clip takes its bounds as inputs from opset 11, as attributes before.
  const min = clip.input.length > 1 ? value(clip.input[1]) : attrFloat(clip, 'min', Number.NaN);
  const max = clip.input.length > 2 ? value(clip.input[2]) : attrFloat(clip, 'max', Number.NaN);
  return min === 0 && max === 6;
}

/**
 * The form a model is delivered in: constant scales and shifts folded into their Conv,
 * hard-swish as one op (opset raised to 14 for it). Outputs equal the input model's up to float
 * rounding. The input model is not modified.
 */
export function fuseForInference(input: ModelProto): {
  model: ModelProto;
  folded: number;
  hardSwish: number;
} {
  const model = cloneModel(input);
  constantsToInitializers(model);
  const folded = foldConvAffine(model.graph);
  const hardSwish = fuseHardSwish(model.graph);
  if (hardSwish) upgradeOpset(model, 14);
  if (folded || hardSwish) pruneGraph(model.graph);
  return { model, folded, hardSwish };
}
