import { FleetError } from '../../../shared/errors/index.js';
import { attr, makeNode } from '../onnx/build.js';
import { describeNode, GraphIndex, NameGenerator } from '../onnx/graph.js';
import { makeTensor, tensorFloats } from '../onnx/tensor.js';
import { DataType, type ModelProto, type NodeProto, type TensorProto } from '../onnx/types.js';
import type { Range } from './calibrate/methods.js';
import {
  activationParams,
  type QParams,
  type QuantType,
  quantizeArray,
  quantizeBias,
  quantizePerChannel,
} from './params.js';
import type { QuantPlan } from './plan.js';

export interface EmitOptions {
  /** Activation integer type; weights are always symmetric int8. */
  activationType: QuantType;
  /** Per-channel weight scales (needs opset 13); otherwise one scale per weight tensor. */
  perChannel: boolean;
  /** Symmetric weight bits: 8 (±127) or 7 (±63, reduce range for x86 without VNNI). */
  weightBits: 7 | 8;
  /** The calibrated range of a tensor (throws if calibration did not see it). */
  range(tensor: string): Range;
}

const ONNX_TYPE: Record<QuantType, number> = { uint8: DataType.UINT8, int8: DataType.INT8 };

/**
 * Writes a plan into the graph as QuantizeLinear/DequantizeLinear nodes with int8 weights
 * and int32 biases (the QDQ format onnxruntime fuses into QLinear* kernels). Edits in place.
 */
export function emitQdq(model: ModelProto, plan: QuantPlan, options: EmitOptions): void {
  const graph = model.graph;
  graph.initializer ??= [];
  const index = new GraphIndex(graph);
  const names = new NameGenerator(graph);
  const params = new Map<string, QParams>();
  const resolving = new Set<string>();

  const paramsOf = (t: string): QParams => {
    const known = params.get(t);
    if (known) return known;
    const p = plan.tensors.get(t);
    if (!p) throw new FleetError('QUANT_FAILED', `tensor ${t} has no quantization plan`);
    if (resolving.has(t)) throw new FleetError('QUANT_FAILED', `cyclic quantization parameters at ${t}`);
    resolving.add(t);
    let q: QParams;
    if (p.source === 'share') q = paramsOf(p.from);
    else if (p.source === 'alias') {
      const from = paramsOf(p.from);
      q = { ...from, scale: Math.fround(from.scale * p.factor) };
    } else if (p.source === 'fixed') q = activationParams(p.range, options.activationType);
    else if (p.source === 'absorb') {
      const r = options.range(t);
      q = activationParams({ min: 0, max: Math.min(r.max, p.clip.max) }, options.activationType);
    } else q = activationParams(options.range(t), options.activationType);
    params.set(t, q);
    resolving.delete(t);
    return q;
  };

  const scalarInit = (base: string, p: QParams): [string, string] => {
    const s = names.next(`${base}_scale`);
    const z = names.next(`${base}_zero_point`);
    graph.initializer!.push(
      makeTensor(s, DataType.FLOAT, [], [p.scale]),
      makeTensor(z, ONNX_TYPE[p.type], [], [p.zeroPoint]),
    );
    return [s, z];
  };

  const newNodes: NodeProto[] = [];
  const removed = new Set<NodeProto>();
  /** Name of the integer tensor holding t (aliases reuse their source's integers). */
  const quantizedName = new Map<string, string>();
  const qName = (t: string): string => {
    const p = plan.tensors.get(t);
    if (p?.source === 'alias') return qName(p.from);
    let name = quantizedName.get(t);
    if (!name) {
      name = names.next(`${t}_quantized`);
      quantizedName.set(t, name);
    }
    return name;
  };

  // Activations: Q after the producer, DQ under the original name so readers need no change.
  for (const [t, p] of plan.tensors) {
    const q = paramsOf(t);
    const producer = index.producer.get(t);
    if (p.source === 'alias') {
      removed.add(p.node);
      const [s, z] = scalarInit(t, q);
      newNodes.push(
        makeNode('DequantizeLinear', [qName(p.from), s, z], [t], [], names.next(`${t}_DequantizeLinear`)),
      );
      continue;
    }
    const [s, z] = scalarInit(t, q);
    let source: string;
    let dqOut = t;
    if (p.source === 'absorb') {
      removed.add(p.node);
      source = p.node.input[0];
    } else if (producer) {
      source = names.next(`${t}_float`);
      producer.output[producer.output.indexOf(t)] = source;
    } else {
      // A graph input: DQ gets a new name and the readers move to it.
      source = t;
      dqOut = names.next(`${t}_dequantized`);
      params.set(dqOut, q);
      for (const reader of index.consumersOf(t)) {
        for (let i = 0; i < reader.input.length; i++) if (reader.input[i] === t) reader.input[i] = dqOut;
      }
    }
    newNodes.push(
      makeNode('QuantizeLinear', [source, s, z], [qName(t)], [], names.next(`${t}_QuantizeLinear`)),
      makeNode('DequantizeLinear', [qName(t), s, z], [dqOut], [], names.next(`${t}_DequantizeLinear`)),
    );
  }

  // Weights, biases and constant operands of the quantized nodes.
  for (const [node, nodePlan] of plan.nodes) {
    if (removed.has(node)) continue;
    let weightScales: Float32Array | undefined;
    if (nodePlan.weight) {
      const { index: wi, axis } = nodePlan.weight;
      const w = index.initializers.get(node.input[wi]);
      if (!w)
        throw new FleetError(
          'QUANT_FAILED',
          `${describeNode(node)}: weight ${node.input[wi]} is not an initializer`,
        );
      const dims = w.dims ?? [];
      const perChannel = options.perChannel && dims.length > 1;
      const { values, scales } = quantizePerChannel(
        tensorFloats(w),
        perChannel ? dims : [1, ...dims],
        perChannel ? axis : 0,
        options.weightBits,
      );
      weightScales = scales;
      node.input[wi] = dequantized(
        w.name!,
        dims,
        values,
        DataType.INT8,
        scales,
        perChannel ? axis : undefined,
      );
    }
    if (nodePlan.bias !== undefined && weightScales) {
      const b = index.initializers.get(node.input[nodePlan.bias])!;
      const inputScale = paramsOf(node.input[0]).scale;
      const { values, scales } = quantizeBias(tensorFloats(b), inputScale, weightScales);
      node.input[nodePlan.bias] = dequantized(
        b.name!,
        b.dims ?? [],
        values,
        DataType.INT32,
        scales,
        scales.length > 1 ? 0 : undefined,
      );
    }
    for (const i of nodePlan.activations) {
      const t = node.input[i];
      const c = t ? index.initializers.get(t) : undefined;
      if (!c || (c.dataType !== DataType.FLOAT && c.dataType !== undefined)) continue;
      const values = tensorFloats(c);
      const p = activationParams(
        { min: values.reduce((a, b) => Math.min(a, b), 0), max: values.reduce((a, b) => Math.max(a, b), 0) },
        options.activationType,
      );
      const [s, z] = scalarInit(t, p);
      const qi = names.next(`${t}_quantized`);
      graph.initializer!.push(makeTensor(qi, ONNX_TYPE[p.type], c.dims ?? [], quantizeArray(values, p)));
      const out = names.next(`${t}_dequantized`);
      newNodes.push(makeNode('DequantizeLinear', [qi, s, z], [out], [], names.next(`${t}_DequantizeLinear`)));
      node.input[i] = out;
    }
  }

  function dequantized(
    base: string,
    dims: number[],
    values: Int8Array | Int32Array,
    dataType: number,
    scales: Float32Array,
    axis: number | undefined,
  ): string {
    const qi = names.next(`${base}_quantized`);
    const s = names.next(`${base}_scale`);
    const z = names.next(`${base}_zero_point`);
    const scaleDims = axis === undefined ? [] : [scales.length];
    const tensors: TensorProto[] = [
      makeTensor(qi, dataType, dims, values),
      makeTensor(s, DataType.FLOAT, scaleDims, axis === undefined ? [scales[0]] : scales),
      makeTensor(z, dataType, scaleDims, new Array(axis === undefined ? 1 : scales.length).fill(0)),
    ];
    graph.initializer!.push(...tensors);
    const out = names.next(`${base}_dequantized`);
    newNodes.push(
      makeNode(
        'DequantizeLinear',
        [qi, s, z],
        [out],
        axis === undefined ? [] : [attr.int('axis', axis)],
        names.next(`${base}_DequantizeLinear`),
      ),
    );
    return out;
  }

  graph.node = [...graph.node.filter((n) => !removed.has(n)), ...newNodes];
}
