import { FleetError } from '../../../shared/errors/index.js';
import { attr, makeNode } from '../onnx/build.js';
import { makeTensor, tensorFloats } from '../onnx/tensor.js';
import { DataType, type ModelProto, type TensorProto } from '../onnx/types.js';
import { symmetricScale } from '../quantize/params.js';
import { exportStudent } from './export.js';
import { evaluate, type TrainData, type TrainOptions, type TrainResult, trainStudent } from './trainer.js';

/** Quantization parameters of one tensor, as the quantizer chose them (int8). */
export interface TensorQuantization {
  /** One scale (per tensor) or one per channel along `axis`. */
  scale: number | number[];
  /** Zero point(s); default 0 (symmetric). */
  zeroPoint?: number | number[];
  /** Channel axis of per-channel scales; default 1 for activations, the output-channel axis for weights. */
  axis?: number;
  /**
   * Largest quantized magnitude the INT8 model uses for this tensor (63 for 7-bit weights);
   * default 127. Below 127 the fake-quantized values are clamped to ±qmax steps.
   */
  qmax?: number;
}

/** Tensor name (weight initializer or activation) -> its quantization. */
export type QuantScales = ReadonlyMap<string, TensorQuantization>;

/** Dims of a per-channel bound that broadcasts along `axis` of a rank-`rank` tensor. */
function bounds(rank: number, axis: number, channels: number): number[] {
  const a = axis < 0 ? axis + rank : axis;
  return Array.from({ length: rank }, (_, i) => (i === a ? channels : 1));
}

/**
 * Inserts QuantizeLinear -> DequantizeLinear (int8) after every tensor named in `scales` and
 * points its consumers at the dequantized copy. In the training graph the pair has a
 * straight-through gradient (identity inside the int8 range, zero where clipped).
 */
export function insertFakeQuant(model: ModelProto, scales: QuantScales): ModelProto {
  const out = structuredClone(model);
  const graph = out.graph;
  const known = new Set([
    ...(graph.initializer ?? []).map((t) => t.name!),
    ...(graph.input ?? []).map((i) => i.name),
    ...graph.node.flatMap((n) => n.output),
  ]);
  const inserted = [];
  const extra: TensorProto[] = [];
  const ranks = new Map((graph.initializer ?? []).map((t) => [t.name!, (t.dims ?? []).length]));
  for (const [name, q] of scales) {
    if (!known.has(name))
      throw new FleetError('INPUT_INVALID', `fake quantization: no tensor ${name} in the student`);
    const s = Array.isArray(q.scale) ? q.scale : [q.scale];
    const z =
      q.zeroPoint === undefined ? s.map(() => 0) : Array.isArray(q.zeroPoint) ? q.zeroPoint : [q.zeroPoint];
    const dims = s.length > 1 ? [s.length] : [];
    const scaleName = `${name}/fq_scale`;
    const zeroName = `${name}/fq_zero`;
    extra.push(makeTensor(scaleName, DataType.FLOAT, dims, s), makeTensor(zeroName, DataType.INT8, dims, z));
    const axis = s.length > 1 ? [attr.int('axis', q.axis ?? 1)] : [];
    const dq = `${name}/fq`;
    for (const node of graph.node) node.input = node.input.map((i) => (i === name ? dq : i));
    let source = name;
    if (q.qmax !== undefined && q.qmax < 127) {
      // A narrower grid than int8's (7-bit weights): clamp to ±qmax steps first.
      const rank = ranks.get(name) ?? 1;
      const boundDims = s.length > 1 ? bounds(rank, q.axis ?? 1, s.length) : [];
      const qmax = q.qmax;
      extra.push(
        makeTensor(
          `${name}/fq_lo`,
          DataType.FLOAT,
          boundDims,
          s.map((v) => -qmax * v),
        ),
        makeTensor(
          `${name}/fq_hi`,
          DataType.FLOAT,
          boundDims,
          s.map((v) => qmax * v),
        ),
      );
      inserted.push(
        makeNode('Max', [name, `${name}/fq_lo`], [`${name}/fq_above`], [], `${name}/fq_max`),
        makeNode('Min', [`${name}/fq_above`, `${name}/fq_hi`], [`${name}/fq_clamped`], [], `${name}/fq_min`),
      );
      source = `${name}/fq_clamped`;
    }
    inserted.push(
      makeNode(
        'QuantizeLinear',
        [source, scaleName, zeroName],
        [`${name}/fq_int8`],
        axis,
        `${name}/fq_quantize`,
      ),
      makeNode(
        'DequantizeLinear',
        [`${name}/fq_int8`, scaleName, zeroName],
        [dq],
        axis,
        `${name}/fq_dequantize`,
      ),
    );
  }
  graph.node = [...inserted, ...graph.node];
  graph.initializer = [...(graph.initializer ?? []), ...extra];
  const opset = out.opsetImport?.find((o) => !o.domain);
  if (opset && opset.version < 13) opset.version = 13;
  return out;
}

/**
 * Symmetric scales for the weights of Gemm/MatMul/Conv, on the grid the quantizer writes them
 * with: max |w| / 127 for 8-bit weights, max / 63 for the 7-bit weights of x86 without VNNI
 * (reduce range, quantize/target.ts), per output channel when `perChannel`. Fake quantization
 * at these scales trains the weights for the values the INT8 model holds; with `bits` 7 the
 * fake-quantized weights are also clamped to ±63 steps (an int8 Q/DQ pair alone would let
 * them reach ±127, which the 7-bit model cannot hold).
 */
export function symmetricWeightScales(
  model: ModelProto,
  perChannel = true,
  bits: 7 | 8 = 8,
): Map<string, TensorQuantization> {
  const inits = new Map((model.graph.initializer ?? []).map((t) => [t.name!, t]));
  const scales = new Map<string, TensorQuantization>();
  const qmax = 2 ** (bits - 1) - 1;
  for (const node of model.graph.node) {
    if (!['Gemm', 'MatMul', 'Conv'].includes(node.opType)) continue;
    const w = inits.get(node.input[1]);
    if (!w || w.dataType !== DataType.FLOAT || (w.dims ?? []).length < 2) continue;
    const values = tensorFloats(w);
    const dims = w.dims!;
    const transB = node.attribute?.find((a) => a.name === 'transB')?.i === 1;
    // Output channels: Conv [out, in, k...] axis 0; Gemm [in, out] axis 1 (axis 0 with transB); MatMul [.., in, out] last axis.
    const axis = node.opType === 'Conv' || transB ? 0 : dims.length - 1;
    if (!perChannel) {
      let m = 0;
      for (const v of values) m = Math.max(m, Math.abs(v));
      scales.set(w.name!, { scale: symmetricScale(m, bits), qmax });
      continue;
    }
    const channels = dims[axis];
    const inner = dims.slice(axis + 1).reduce((a, b) => a * b, 1);
    const max = new Array<number>(channels).fill(0);
    for (let i = 0; i < values.length; i++) {
      const c = Math.floor(i / inner) % channels;
      max[c] = Math.max(max[c], Math.abs(values[i]));
    }
    scales.set(w.name!, { scale: max.map((m) => symmetricScale(m, bits)), axis, qmax });
  }
  return scales;
}

export interface QatResult extends TrainResult {
  /** The fine-tuned student with Q/DQ pairs (runs in onnxruntime as an int8 QDQ model). */
  fakeQuantModel: ModelProto;
  /** The fine-tuned float student (same architecture as the input) for the quantizer. */
  floatModel: ModelProto;
}

/**
 * Quantization-aware distillation: fine-tunes `student` with fake quantization at the
 * given scales under the distillation loss. The quantizer (another module) supplies the
 * scales and later turns `floatModel` into the final INT8 model with the same scales.
 */
export async function quantizationAwareFinetune(
  student: ModelProto,
  teacher: ModelProto | undefined,
  train: TrainData,
  validation: TrainData | undefined,
  scales: QuantScales,
  options: TrainOptions = {},
): Promise<QatResult> {
  const fq = insertFakeQuant(student, scales);
  const result = await trainStudent(fq, teacher, train, validation, {
    epochs: 3,
    optimizer: { kind: 'adam', lr: 1e-4 },
    ...options,
  });
  const trained = new Map<string, Float32Array>();
  for (const t of result.model.graph.initializer ?? []) {
    if (t.dataType === DataType.FLOAT && !t.name!.includes('/fq_')) trained.set(t.name!, tensorFloats(t));
  }
  return { ...result, fakeQuantModel: result.model, floatModel: exportStudent(student, trained) };
}

/** What the distill-then-quantize pipeline needs from the quantizer. */
export interface QuantizerHook {
  /**
   * Post-training quantization of a float model: the INT8 model and the scales it chose.
   * With `scales`, it must reuse them (the fine-tuned weights were trained for exactly those).
   */
  quantize(model: ModelProto, scales?: QuantScales): Promise<{ model: ModelProto; scales: QuantScales }>;
}

export interface DistillThenQuantizeResult {
  int8: ModelProto;
  /** Accuracy of the float student, after plain PTQ, and after QAT (when it ran). */
  floatAccuracy: number;
  ptqAccuracy: number;
  qatAccuracy?: number;
  usedQat: boolean;
}

/**
 * Quantizes a distilled student; when post-training quantization loses more than `budget`
 * (accuracy points as a fraction, e.g. 0.005), fine-tunes with fake quantization under the
 * distillation loss at the quantizer's scales and quantizes the fine-tuned student again.
 */
export async function distillThenQuantize(
  student: ModelProto,
  teacher: ModelProto,
  train: TrainData,
  validation: TrainData & { y: Int32Array },
  quantizer: QuantizerHook,
  budget: number,
  options: TrainOptions = {},
): Promise<DistillThenQuantizeResult> {
  const accuracy = async (m: ModelProto, classes: number) =>
    (await evaluate(m, validation, undefined, classes)).accuracy!;
  const classes = validation.y.reduce((m, v) => Math.max(m, v), 0) + 1;
  const floatAccuracy = await accuracy(student, classes);
  const ptq = await quantizer.quantize(student);
  const ptqAccuracy = await accuracy(ptq.model, classes);
  if (floatAccuracy - ptqAccuracy <= budget)
    return { int8: ptq.model, floatAccuracy, ptqAccuracy, usedQat: false };
  const qat = await quantizationAwareFinetune(student, teacher, train, validation, ptq.scales, options);
  const again = await quantizer.quantize(qat.floatModel, ptq.scales);
  return {
    int8: again.model,
    floatAccuracy,
    ptqAccuracy,
    qatAccuracy: await accuracy(again.model, classes),
    usedQat: true,
  };
}
