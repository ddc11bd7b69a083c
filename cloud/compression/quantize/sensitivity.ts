import { cosine } from '../evaluate/metrics.js';
import { makeNode } from '../onnx/build.js';
import { cloneModel } from '../onnx/edit.js';
import { GraphIndex, NameGenerator } from '../onnx/graph.js';
import { encodeModel } from '../onnx/proto.js';
import { makeTensor } from '../onnx/tensor.js';
import { DataType, type ModelProto } from '../onnx/types.js';
import { createSession } from '../runtime/ort.js';
import { batchTensor, type SampleSet } from './calibrate/data.js';
import { DEFAULT_CALIBRATOR_OPTIONS, getCalibrator, type Range } from './calibrate/methods.js';
import { activationParams, type QParams, type QuantType } from './params.js';
import { planQuantization } from './plan.js';
import type { CalibratedModel, QdqOptions } from './static.js';

export interface SensitivityOptions {
  /** Samples the float and fake-quantized models are compared on; default 1. */
  probeSamples: number;
  /** onnxruntime intra-op threads; default 0 (all cores). */
  threads: number;
  /** Called after each tensor with (done, total). */
  onProgress?: (done: number, total: number) => void;
}

export const DEFAULT_SENSITIVITY_OPTIONS: SensitivityOptions = { probeSamples: 1, threads: 0 };

export interface TensorSensitivity {
  tensor: string;
  /** 1 − mean cosine of the first output when only this tensor is quantized (0 = harmless). */
  error: number;
}

/**
 * The integer parameters the QDQ model will give each tensor that owns its parameters (shared
 * and aliased tensors carry their source's error and are not listed).
 */
export function plannedActivations(
  calibrated: CalibratedModel,
  qdq: Partial<QdqOptions> = {},
): Map<string, QParams> {
  const type: QuantType = qdq.activationType ?? 'uint8';
  const symmetric = qdq.symmetricActivations ?? false;
  const plan = planQuantization(calibrated.model, {
    exclude: new Set(qdq.exclude ?? []),
    excludeOps: new Set(qdq.excludeOps ?? []),
    perChannel: qdq.perChannel ?? true,
  });
  const calibrator = getCalibrator(calibrated.calibration.method);
  const options = { ...DEFAULT_CALIBRATOR_OPTIONS, percentile: calibrated.calibration.percentile };
  const range = (t: string): Range | undefined => {
    const s = calibrated.stats.get(t);
    return s && s.count > 0 ? calibrator.compute(s, options) : undefined;
  };
  const out = new Map<string, QParams>();
  for (const [t, p] of plan.tensors) {
    if (p.source === 'fixed') out.set(t, activationParams(p.range, type, symmetric));
    const r = range(t);
    if (!r) continue;
    if (p.source === 'own') out.set(t, activationParams(r, type, symmetric));
    else if (p.source === 'absorb')
      out.set(t, activationParams({ min: 0, max: Math.min(r.max, p.clip.max) }, type, symmetric));
  }
  return out;
}

/** A copy of the float model with Q/DQ on `tensor` only (every op still computes in float). */
export function fakeQuantizeOne(model: ModelProto, tensor: string, p: QParams): ModelProto {
  const copy = cloneModel(model);
  const graph = copy.graph;
  const names = new NameGenerator(graph);
  const index = new GraphIndex(graph);
  const s = names.next(`${tensor}_fq_scale`);
  const z = names.next(`${tensor}_fq_zero_point`);
  const q = names.next(`${tensor}_fq_q`);
  const dq = names.next(`${tensor}_fq_dq`);
  graph.initializer = [
    ...(graph.initializer ?? []),
    makeTensor(s, DataType.FLOAT, [], [p.scale]),
    makeTensor(z, p.type === 'uint8' ? DataType.UINT8 : DataType.INT8, [], [p.zeroPoint]),
  ];
  for (const reader of index.consumersOf(tensor))
    for (let i = 0; i < reader.input.length; i++) if (reader.input[i] === tensor) reader.input[i] = dq;
  graph.node = [
    ...graph.node,
    makeNode('QuantizeLinear', [tensor, s, z], [q], [], q),
    makeNode('DequantizeLinear', [q, s, z], [dq], [], dq),
  ];
  return copy;
}

async function firstOutput(bytes: Uint8Array, data: SampleSet, threads: number): Promise<Float32Array[]> {
  const session = await createSession(bytes, { intraOpThreads: threads, allowSpinning: false });
  try {
    const out: Float32Array[] = [];
    for (let i = 0; i < data.count; i++) {
      const r = await session.run({ [session.inputNames[0]]: batchTensor(data, i, 1) });
      out.push(Float32Array.from(r[session.outputNames[0]].data as Float32Array));
    }
    return out;
  } finally {
    await session.release();
  }
}

/**
 * Measured per-tensor sensitivity: for every activation the QDQ model would quantize, the
 * output error when that tensor alone is quantized (with the parameters it will get) and
 * everything else stays float. Sorted worst first. Graph outputs are skipped (their error
 * is the error). One onnxruntime session per tensor.
 */
export async function tensorSensitivity(
  calibrated: CalibratedModel,
  qdq: Partial<QdqOptions>,
  data: SampleSet,
  options: Partial<SensitivityOptions> = {},
): Promise<TensorSensitivity[]> {
  const o = { ...DEFAULT_SENSITIVITY_OPTIONS, ...options };
  const probe: SampleSet = { ...data, count: Math.min(o.probeSamples, data.count) };
  const reference = await firstOutput(encodeModel(calibrated.model), probe, o.threads);
  const planned = plannedActivations(calibrated, qdq);
  const outputs = new Set((calibrated.model.graph.output ?? []).map((v) => v.name));
  const tensors = [...planned].filter(([t]) => !outputs.has(t));
  const result: TensorSensitivity[] = [];
  for (const [t, p] of tensors) {
    const q = await firstOutput(encodeModel(fakeQuantizeOne(calibrated.model, t, p)), probe, o.threads);
    const cos = reference.reduce((a, r, i) => a + cosine(r, q[i]), 0) / reference.length;
    result.push({ tensor: t, error: 1 - cos });
    o.onProgress?.(result.length, tensors.length);
  }
  return result.sort((a, b) => b.error - a.error);
}
