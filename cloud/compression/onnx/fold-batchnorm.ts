import { attrFloat, attrInt, GraphIndex, NameGenerator } from './graph.js';
import { channelConstant, floatTensor, tensorFloats } from './tensor.js';
import type { GraphProto, NodeProto, TensorProto } from './types.js';

/**
 * Folds BatchNormalization (inference form) into the Conv, ConvTranspose or Gemm that feeds
 * it, when that layer's output has no other reader and its weights are initializers:
 * W' = W·γ/√(σ²+ε) per output channel, b' = (b − μ)·γ/√(σ²+ε) + β. Quantizing before folding
 * would put Q/DQ between the layer and the BN, so every quantization path runs this first.
 * A bias Add between the layer and the BN (paddle2onnx writes ConvTranspose → Add → BN) folds
 * with it. Returns the number of folded BatchNormalization nodes.
 */
export function foldBatchNorm(graph: GraphProto): number {
  const index = new GraphIndex(graph);
  const names = new NameGenerator(graph);
  const removed = new Set<NodeProto>();
  let count = 0;
  for (const bn of graph.node) {
    if (bn.opType !== 'BatchNormalization' || bn.output.filter((o) => o).length !== 1) continue;
    if (index.consumersOf(bn.input[0]).length !== 1 || index.graphOutputs.has(bn.input[0])) continue;
    let layer = index.producer.get(bn.input[0]);
    let biasAdd: NodeProto | undefined;
    if (layer?.opType === 'Add') {
      biasAdd = layer;
      const from = biasAdd.input.find((t) => !index.initializers.has(t));
      layer = from ? index.producer.get(from) : undefined;
      if (!from || index.consumersOf(from).length !== 1 || index.graphOutputs.has(from)) continue;
    }
    if (!layer || !['Conv', 'ConvTranspose', 'Gemm'].includes(layer.opType)) continue;
    const params = bn.input.slice(1, 5).map((n) => index.initializers.get(n));
    const weight = index.initializers.get(layer.input[1]);
    if (params.some((p) => !p) || !weight) continue;
    const [gamma, beta, mean, variance] = params.map((p) => tensorFloats(p as TensorProto));
    const eps = attrFloat(bn, 'epsilon', 1e-5);
    const channels = gamma.length;
    const w = tensorFloats(weight);
    const dims = weight.dims ?? [];
    // Which weight axis indexes output channels, and how the rest of the tensor is laid out.
    let outer: number;
    let inner: number;
    let channelAxisSize: number;
    if (layer.opType === 'Conv') {
      [outer, channelAxisSize, inner] = [1, dims[0], w.length / dims[0]];
    } else if (layer.opType === 'ConvTranspose') {
      if (attrInt(layer, 'group', 1) !== 1) continue;
      [outer, channelAxisSize, inner] = [dims[0], dims[1], w.length / (dims[0] * dims[1])];
    } else {
      if (attrFloat(layer, 'alpha', 1) !== 1 || attrFloat(layer, 'beta', 1) !== 1) continue;
      const transB = attrInt(layer, 'transB', 0) === 1;
      if (transB) [outer, channelAxisSize, inner] = [1, dims[0], dims[1]];
      else [outer, channelAxisSize, inner] = [dims[0], dims[1], 1];
    }
    if (channelAxisSize !== channels) continue;
    const factor = new Float32Array(channels);
    for (let c = 0; c < channels; c++) factor[c] = gamma[c] / Math.sqrt(variance[c] + eps);
    const folded = new Float32Array(w.length);
    for (let o = 0; o < outer; o++)
      for (let c = 0; c < channels; c++)
        for (let i = 0; i < inner; i++) {
          const at = (o * channels + c) * inner + i;
          folded[at] = w[at] * factor[c];
        }
    const biasTensor = layer.input[2] ? index.initializers.get(layer.input[2]) : undefined;
    if (layer.input[2] && !biasTensor) continue;
    const bias = biasTensor ? Float32Array.from(tensorFloats(biasTensor)) : new Float32Array(channels);
    if (bias.length !== channels) continue;
    if (biasAdd) {
      const constant = biasAdd.input.find((t) => index.initializers.has(t))!;
      const rank = layer.opType === 'Gemm' ? 2 : dims.length;
      const added = channelConstant(index.initializers.get(constant), channels, rank);
      if (!added) continue;
      for (let c = 0; c < channels; c++) bias[c] += added[c];
      removed.add(biasAdd);
    }
    const newBias = new Float32Array(channels);
    for (let c = 0; c < channels; c++) newBias[c] = (bias[c] - mean[c]) * factor[c] + beta[c];
    // New initializers: the originals may be shared with other layers.
    const wName = names.next(`${layer.input[1]}_bnfold`);
    const bName = names.next(`${bn.output[0]}_bias`);
    graph.initializer!.push(floatTensor(wName, dims, folded), floatTensor(bName, [channels], newBias));
    layer.input[1] = wName;
    layer.input[2] = bName;
    layer.output[0] = bn.output[0];
    removed.add(bn);
    count++;
  }
  graph.node = graph.node.filter((n) => !removed.has(n));
  return count;
}
