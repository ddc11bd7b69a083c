import { attr } from '../onnx/build.js';
import { attrInt, GraphIndex, NameGenerator } from '../onnx/graph.js';
import { channelConstant, elementCount, floatTensor, tensorFloats, tensorValues } from '../onnx/tensor.js';
import type { GraphProto, NodeProto } from '../onnx/types.js';

/**
 * Channel padding: widens groups of tensors from C to the next multiple of `multiple`
 * channels, exactly (in float) — the extra channels of a producing Conv get zero weights and
 * bias, and every Conv that reads the group gets zero weights for them.
 *
 * Why: onnxruntime's fast int8 convolutions (MLAS "ConvSym", requantisation fused into the
 * kernel) take a depthwise conv only when its channel count is a multiple of 16 and a
 * regular conv only with at least 16 output channels; anything else falls back to a generic
 * path. On the PaddleOCR classifier (depthwise convs over 88, 40, 104, 200 channels) the
 * fallback depthwise convs ran at ~9 GMAC/s against ~60 for the float NCHWc kernels, which
 * alone made the INT8 model slower than FP32. onnxruntime's float path pads the same way
 * (NCHWc blocks of 8/16 channels), so padding costs int8 little and leaves float as it was.
 */
export interface PadChannelsOptions {
  /** Pad channel counts up to a multiple of this; default 16 (MLAS's depthwise group alignment). */
  multiple: number;
}

export const DEFAULT_PAD_CHANNELS_OPTIONS: PadChannelsOptions = { multiple: 16 };

export interface PadChannelsReport {
  /** Tensor groups widened, each as (channels before → after) with the number of tensors. */
  regions: { from: number; to: number; tensors: number }[];
}

/** Ops that keep the channel layout and act per channel (or per element). */
const PER_CHANNEL_UNARY = new Set([
  'Relu',
  'Clip',
  'LeakyRelu',
  'HardSigmoid',
  'HardSwish',
  'Sigmoid',
  'Tanh',
  'Identity',
  'MaxPool',
  'AveragePool',
  'GlobalAveragePool',
  'GlobalMaxPool',
]);
const PER_CHANNEL_BINARY = new Set(['Add', 'Sub', 'Mul', 'Div', 'Max', 'Min']);

/** A group of tensors that must be widened together, and the nodes around it. */
interface Region {
  channels: number;
  rank: number;
  tensors: Set<string>;
  /** Regular convs writing a region tensor: pad output channels. */
  producers: Set<NodeProto>;
  /** Regular convs reading a region tensor: pad input channels. */
  readers: Set<NodeProto>;
  /** Depthwise convs inside the region: pad groups. */
  depthwise: Set<NodeProto>;
  /** Per-channel element-wise ops inside the region with a constant operand to pad. */
  constants: Map<NodeProto, number>;
}

export function padChannels(graph: GraphProto, options: Partial<PadChannelsOptions> = {}): PadChannelsReport {
  const { multiple } = { ...DEFAULT_PAD_CHANNELS_OPTIONS, ...options };
  const index = new GraphIndex(graph);
  const names = new NameGenerator(graph);
  const report: PadChannelsReport = { regions: [] };
  const seen = new Set<string>();
  const weightsOf = (node: NodeProto) => index.initializers.get(node.input[1] ?? '');
  const regions: Region[] = [];
  for (const node of graph.node) {
    if (node.opType !== 'Conv') continue;
    const w = weightsOf(node);
    const out = node.output[0];
    if (!w?.dims || seen.has(out)) continue;
    const channels = Number(w.dims[0]);
    if (channels % multiple === 0) continue;
    const region = collectRegion(index, out, channels, w.dims.length);
    for (const t of region?.tensors ?? [out]) seen.add(t);
    if (region) regions.push(region);
  }
  for (const region of regions) {
    const to = Math.ceil(region.channels / multiple) * multiple;
    widenRegion(graph, index, names, region, to);
    report.regions.push({ from: region.channels, to, tensors: region.tensors.size });
  }
  return report;
}

/** Kind of a Conv relative to a channel count: depthwise over it, or a regular conv. */
function convKind(index: GraphIndex, node: NodeProto, channels: number): 'depthwise' | 'regular' | undefined {
  const w = index.initializers.get(node.input[1] ?? '');
  if (!w?.dims || (node.input[2] && !index.initializers.has(node.input[2]))) return undefined;
  const group = attrInt(node, 'group', 1);
  if (group === 1) return 'regular';
  if (group === channels && Number(w.dims[0]) === channels && Number(w.dims[1]) === 1) return 'depthwise';
  return undefined;
}

/** A Reshape to shape [0, …, 0] of the tensor's rank: every dimension kept (keep-nchw.ts writes them). */
function keepsShape(index: GraphIndex, node: NodeProto, rank: number): boolean {
  if (node.opType !== 'Reshape' || attrInt(node, 'allowzero', 0) !== 0) return false;
  const shape = index.initializers.get(node.input[1]);
  if (!shape || elementCount(shape.dims) !== rank) return false;
  return Array.from(tensorValues(shape), Number).every((v) => v === 0);
}

/**
 * Grows the region from one conv output through per-channel ops until every edge ends in a
 * regular Conv; undefined if it reaches anything else (a reshape, a graph output, a residual
 * Add with an unpaddable operand…), in which case nothing is padded.
 */
function collectRegion(index: GraphIndex, seed: string, channels: number, rank: number): Region | undefined {
  const region: Region = {
    channels,
    rank,
    tensors: new Set(),
    producers: new Set(),
    readers: new Set(),
    depthwise: new Set(),
    constants: new Map(),
  };
  const inner = new Set<NodeProto>();
  const pending = [seed];
  const addTensor = (t: string) => {
    if (!region.tensors.has(t)) pending.push(t);
  };
  /** Takes a node into the region: its data inputs and outputs join it. */
  const absorb = (node: NodeProto): boolean => {
    if (inner.has(node)) return true;
    const op = node.opType;
    if (op === 'Conv') {
      if (convKind(index, node, channels) !== 'depthwise') return false;
      region.depthwise.add(node);
      inner.add(node);
      addTensor(node.input[0]);
      addTensor(node.output[0]);
      return true;
    }
    if (PER_CHANNEL_UNARY.has(op) || keepsShape(index, node, rank)) {
      // Clip's bounds are scalar constants; pools have one data input; a second output (MaxPool indices) is not handled.
      if (op !== 'Reshape' && node.input.slice(1).some((t) => t && !isScalarInitializer(index, t)))
        return false;
      if (node.output.length > 1 && node.output[1]) return false;
      inner.add(node);
      addTensor(node.input[0]);
      addTensor(node.output[0]);
      return true;
    }
    if (PER_CHANNEL_BINARY.has(op)) {
      inner.add(node);
      for (const [i, t] of node.input.entries()) {
        const c = index.initializers.get(t);
        if (!c) {
          addTensor(t);
          continue;
        }
        // Scalars stay; a per-channel constant is padded with the region.
        if (!channelConstant(c, channels, rank)) return false;
        if (elementCount(c.dims) > 1) region.constants.set(node, i);
      }
      addTensor(node.output[0]);
      return true;
    }
    return false;
  };
  while (pending.length > 0) {
    const t = pending.pop()!;
    if (region.tensors.has(t)) continue;
    if (index.graphInputs.has(t) || index.graphOutputs.has(t) || index.isInitializer(t)) return undefined;
    region.tensors.add(t);
    const producer = index.producer.get(t);
    if (!producer) return undefined;
    if (producer.opType === 'Conv' && convKind(index, producer, channels) === 'regular') {
      if (Number(index.initializers.get(producer.input[1])!.dims![0]) !== channels) return undefined;
      region.producers.add(producer);
    } else if (!absorb(producer)) return undefined;
    for (const reader of index.consumersOf(t)) {
      if (
        reader.opType === 'Conv' &&
        reader.input[0] === t &&
        convKind(index, reader, channels) === 'regular'
      ) {
        const w = index.initializers.get(reader.input[1])!;
        if (Number(w.dims![1]) !== channels || w.dims!.length !== rank) return undefined;
        region.readers.add(reader);
      } else if (!absorb(reader)) return undefined;
    }
  }
  return region;
}

function isScalarInitializer(index: GraphIndex, t: string): boolean {
  const c = index.initializers.get(t);
  return !!c && (c.dims ?? []).every((d) => Number(d) === 1);
}

function widenRegion(graph: GraphProto, index: GraphIndex, names: NameGenerator, region: Region, to: number) {
  const from = region.channels;
  const put = (base: string, dims: number[], values: Float32Array) => {
    const name = names.next(`${base}_padded`);
    const tensor = floatTensor(name, dims, values);
    graph.initializer!.push(tensor);
    // A conv can be a reader of one region and the producer of the next: keep the index live.
    index.initializers.set(name, tensor);
    return name;
  };
  const floats = (name: string) => tensorFloats(index.initializers.get(name)!);
  const dimsOf = (name: string) => index.initializers.get(name)!.dims!.map(Number);
  /** Pads axis 0 of a [from, ...rest] constant to [to, ...rest] with `fill`. */
  const padLeading = (name: string, fill = 0) => {
    const dims = dimsOf(name);
    const v = floats(name);
    const out = new Float32Array((v.length / from) * to).fill(fill);
    out.set(v);
    return put(name, [to, ...dims.slice(1)], out);
  };
  for (const conv of [...region.producers, ...region.depthwise]) {
    conv.input[1] = padLeading(conv.input[1]);
    if (conv.input[2]) conv.input[2] = padLeading(conv.input[2]);
    if (region.depthwise.has(conv)) {
      conv.attribute = (conv.attribute ?? []).filter((a) => a.name !== 'group');
      conv.attribute.push(attr.int('group', to));
    }
  }
  for (const conv of region.readers) {
    const dims = dimsOf(conv.input[1]);
    const v = floats(conv.input[1]);
    const per = dims.slice(2).reduce((a, b) => a * b, 1);
    const out = new Float32Array(dims[0] * to * per);
    for (let o = 0; o < dims[0]; o++) out.set(v.subarray(o * from * per, (o + 1) * from * per), o * to * per);
    conv.input[1] = put(conv.input[1], [dims[0], to, ...dims.slice(2)], out);
  }
  for (const [node, i] of region.constants) {
    const name = node.input[i];
    const dims = dimsOf(name);
    const axis = dims.findIndex((d) => d === from && d !== 1);
    const v = floats(name);
    const out = new Float32Array(to).fill(node.opType === 'Div' ? 1 : 0);
    out.set(v);
    node.input[i] = put(
      name,
      dims.map((d, k) => (k === axis ? to : d)),
      out,
    );
  }
}
