import { FleetError } from '../../../shared/errors/index.js';
import { cloneModel, pruneGraph, sortGraph } from '../onnx/edit.js';
import { fuseTransformerOps } from '../onnx/fuse-transformer.js';
import { inferShapes } from '../onnx/ort-eval.js';
import { type PrepareReport, prepareModel } from '../onnx/prepare.js';
import { DataType, type ModelProto, type NodeProto } from '../onnx/types.js';
import { collectStatistics } from './calibrate/collect.js';
import { batchTensor, headSamples, type SampleSet } from './calibrate/data.js';
import type { TensorStats } from './calibrate/histogram.js';
import { type CalibrationMethod, DEFAULT_CALIBRATOR_OPTIONS, getCalibrator } from './calibrate/methods.js';
import { removeRedundantQdq, shareEqualConstants, shortenScalarNames } from './cleanup.js';
import { quantizeFloatConstants } from './constants.js';
import { emitQdq } from './emit.js';
import { equalizeCrossLayer } from './equalize.js';
import { padChannels } from './pad-channels.js';
import type { QuantType } from './params.js';
import { planQuantization } from './plan.js';
import { rewriteForQuantization } from './rewrite.js';
import { type ReduceRange, resolveReduceRange, weightBits } from './target.js';

export interface CalibrationOptions {
  /** Range method: minmax | percentile | entropy | mse; default 'minmax'. */
  method: CalibrationMethod;
  /** Percentile of |x| kept by 'percentile', in percent; default 99.999. */
  percentile: number;
  /** Calibration samples used (the first N of the set); default 64. */
  samples: number;
  /** Samples per onnxruntime run during calibration; default 0 = automatic (about 1 M input values). */
  batchSize: number;
  /**
   * Cross-layer equalisation of Conv → [Relu] → Conv pairs before calibration (exact in
   * float; balances per-channel activation ranges for per-tensor int8); default true.
   */
  equalize: boolean;
  /**
   * Pad channel counts to multiples of 16 where exact (zero weights), so that onnxruntime runs
   * the convolutions with its fast int8 kernels (see pad-channels.ts); default true.
   */
  padChannels: boolean;
  /**
   * Rewrites that pay only on onnxruntime's x86 int8 kernels (rewrite.ts); default true.
   * Off when the target is ARM or TensorRT.
   */
  x86Kernels: boolean;
  /**
   * Fuse decomposed LayerNorm (→ LayerNormalization, opset 17) and GELU (→ Gelu) before
   * quantizing, as onnxruntime does on the float graph (onnx/fuse-transformer.ts); default true.
   */
  fuseTransformer: boolean;
  /** Called with (samples done, total) during calibration. */
  onProgress?: (done: number, total: number) => void;
}

export const DEFAULT_CALIBRATION_OPTIONS: CalibrationOptions = {
  method: 'minmax',
  percentile: 99.999,
  samples: 64,
  batchSize: 0,
  equalize: true,
  padChannels: true,
  x86Kernels: true,
  fuseTransformer: true,
};

/** A float model in quantizable form plus the activation statistics of every float tensor. */
export interface CalibratedModel {
  model: ModelProto;
  stats: Map<string, TensorStats>;
  prepare: PrepareReport;
  rewrites: Record<string, number>;
  calibration: CalibrationOptions;
  calibrationMs: number;
}

/**
 * Prepares (opset, BN folding, rewrites) and calibrates a model once; any number of QDQ
 * variants (exclusions, activation types) can then be built from the result without
 * running calibration again.
 */
export async function calibrateModel(
  input: ModelProto,
  data: SampleSet,
  options: Partial<CalibrationOptions> = {},
): Promise<CalibratedModel> {
  const o = { ...DEFAULT_CALIBRATION_OPTIONS, ...options };
  if (data.count === 0) throw new FleetError('CALIBRATION_DATA', 'no calibration samples');
  const sample = { [input.graph.input?.[0]?.name ?? 'input']: batchTensor(data, 0, 1) };
  const { model, report } = await prepareModel(input, sample);
  const rankOf = (t: string) =>
    [...(model.graph.valueInfo ?? []), ...(model.graph.input ?? []), ...(model.graph.output ?? [])].find(
      (v) => v.name === t,
    )?.type?.tensorType?.shape?.dim?.length;
  const shapeOf = (t: string) =>
    [...(model.graph.valueInfo ?? []), ...(model.graph.input ?? []), ...(model.graph.output ?? [])]
      .find((v) => v.name === t)
      ?.type?.tensorType?.shape?.dim?.map((d) => Number(d.dimValue ?? 0));
  // Fused first: the normalisation then stays one float op instead of int8 islands.
  const fused = o.fuseTransformer ? fuseTransformerOps(model, shapeOf) : { layerNorms: 0, gelus: 0 };
  // The x86 rewrites that pay only on large maps need the sizes this data gives symbolic dims.
  const probed = o.x86Kernels ? await inferShapes(model, sample) : undefined;
  const rewrites = rewriteForQuantization(model.graph, rankOf, {
    x86Kernels: o.x86Kernels,
    shapeOf: (t) => probed?.get(t)?.dims,
  });
  if (fused.layerNorms > 0) rewrites.layerNormsFused = fused.layerNorms;
  if (fused.gelus > 0) rewrites.gelusFused = fused.gelus;
  pruneGraph(model.graph);
  if (o.equalize) {
    const pairs = await equalizeCrossLayer(model, headSamples(data, o.samples));
    if (pairs > 0) rewrites.equalizedPairs = pairs;
    pruneGraph(model.graph);
  }
  sortGraph(model.graph);
  await inferShapes(model, sample);
  const floats = [
    ...(model.graph.input ?? []),
    ...(model.graph.valueInfo ?? []),
    ...(model.graph.output ?? []),
  ]
    .filter((v) => v.type?.tensorType?.elemType === DataType.FLOAT)
    .map((v) => v.name);
  const initializers = new Set((model.graph.initializer ?? []).map((t) => t.name));
  const tensors = [...new Set(floats)].filter((t) => !initializers.has(t));
  const started = performance.now();
  const stats = await collectStatistics(model, tensors, headSamples(data, o.samples), {
    batchSize: o.batchSize,
    histogram: getCalibrator(o.method).needsHistogram,
    onProgress: o.onProgress,
  });
  // Padded after calibration: the extra channels must not enter the ranges (zeros would pull
  // histogram-based ranges in), and they never reach a real channel, so any value is fine.
  if (o.padChannels) {
    const padded = padChannels(model.graph);
    if (padded.regions.length > 0) rewrites.paddedChannelGroups = padded.regions.length;
    pruneGraph(model.graph);
  }
  return {
    model,
    stats,
    prepare: report,
    rewrites,
    calibration: o,
    calibrationMs: performance.now() - started,
  };
}

export interface QdqOptions {
  /** Activation type: 'uint8' (U8S8) or 'int8' (S8S8); default 'uint8'. */
  activationType: QuantType;
  /** Symmetric activations, zero point 0 for int8 (what TensorRT requires); default false. */
  symmetricActivations: boolean;
  /** Per-channel weight scales; default true. */
  perChannel: boolean;
  /** Node names (or output tensor names) kept in float; default none. */
  exclude: string[];
  /** Op types kept in float; default none. */
  excludeOps: string[];
  /**
   * 7-bit weights, so that x86 without VNNI cannot saturate (see target.ts); default 'host':
   * decided by the built-in profile this machine matches (on for x86-avx2).
   */
  reduceRange: ReduceRange;
  /**
   * Float constants left float by the plan (LayerNorm scale/bias, biases of float ops,
   * embedding tables) with ≥ 64 elements are stored as uint8 + DequantizeLinear
   * (constants.ts); default true.
   */
  quantizeConstants: boolean;
}

export const DEFAULT_QDQ_OPTIONS: QdqOptions = {
  activationType: 'uint8',
  symmetricActivations: false,
  perChannel: true,
  exclude: [],
  excludeOps: [],
  reduceRange: 'host',
  quantizeConstants: true,
};

export interface QdqResult {
  model: ModelProto;
  /** Nodes of the float model that run quantized (or were folded into quantized neighbours). */
  quantizedNodes: number;
  /** Op types (with counts) that stayed float. */
  floatOps: Record<string, number>;
  qdqRemoved: number;
  /** Float constants stored as uint8 + DequantizeLinear (see quantizeConstants). */
  constantsQuantized: number;
}

/** Nodes kept float by name or op type (their constants stay float too). */
function excludedNodes(model: ModelProto, o: QdqOptions): Set<NodeProto> {
  const names = new Set(o.exclude);
  const ops = new Set(o.excludeOps);
  return new Set(
    model.graph.node.filter(
      (n) => ops.has(n.opType) || (n.name && names.has(n.name)) || n.output.some((t) => names.has(t)),
    ),
  );
}

/** Builds the static INT8 QDQ model from a calibrated model. */
export function buildQdq(calibrated: CalibratedModel, options: Partial<QdqOptions> = {}): QdqResult {
  const o = { ...DEFAULT_QDQ_OPTIONS, ...options };
  const model = cloneModel(calibrated.model);
  const plan = planQuantization(model, {
    exclude: new Set(o.exclude),
    excludeOps: new Set(o.excludeOps),
    perChannel: o.perChannel,
  });
  const calibrator = getCalibrator(calibrated.calibration.method);
  const calibratorOptions = { ...DEFAULT_CALIBRATOR_OPTIONS, percentile: calibrated.calibration.percentile };
  const floatOps: Record<string, number> = {};
  for (const node of model.graph.node) {
    if (!plan.nodes.has(node)) floatOps[node.opType] = (floatOps[node.opType] ?? 0) + 1;
  }
  emitQdq(model, plan, {
    activationType: o.activationType,
    symmetricActivations: o.symmetricActivations,
    perChannel: o.perChannel,
    weightBits: weightBits(resolveReduceRange(o.reduceRange)),
    range: (t) => {
      const s = calibrated.stats.get(t);
      if (!s || s.count === 0)
        throw new FleetError('QUANT_FAILED', `no calibration statistics for tensor ${t}`);
      return calibrator.compute(s, calibratorOptions);
    },
  });
  const constants = o.quantizeConstants ? quantizeFloatConstants(model.graph, excludedNodes(model, o)) : [];
  sortGraph(model.graph);
  const qdqRemoved = removeRedundantQdq(model.graph);
  shareEqualConstants(model.graph);
  pruneGraph(model.graph);
  shortenScalarNames(model.graph);
  sortGraph(model.graph);
  model.graph.valueInfo = [];
  model.producerName = 'fleetml';
  return {
    model,
    quantizedNodes: plan.nodes.size,
    floatOps,
    qdqRemoved,
    constantsQuantized: constants.length,
  };
}
