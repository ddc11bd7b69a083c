import { constantsToInitializers } from './constants.js';
import { bypassNode, cloneModel, pruneGraph, sortGraph } from './edit.js';
import { foldBatchNorm } from './fold-batchnorm.js';
import { foldConvAffine } from './fuse-conv-activation.js';
import { upgradeOpset } from './opset.js';
import { foldConstants, inferShapes, type OrtTensor, ort } from './ort-eval.js';
import { DataType, type ModelProto } from './types.js';

export interface PrepareOptions {
  /** Default-domain opset to upgrade to; default 13 (per-channel Q/DQ, axes as inputs). */
  opset?: number;
  /**
   * Fold BatchNormalization into Conv/ConvTranspose/Gemm, and a constant scale or shift after a
   * Conv into it (paddle2onnx's affine blocks), so no Q/DQ pair sits between them; default true.
   */
  foldBatchNorm?: boolean;
}

export const DEFAULT_PREPARE_OPTIONS: Required<PrepareOptions> = { opset: 13, foldBatchNorm: true };

export interface PrepareReport {
  fromOpset: number;
  constantsMoved: number;
  constantsFolded: number;
  batchNormsFolded: number;
  /** Constant Mul/Add nodes after a Conv folded into its weights and bias. */
  convAffinesFolded: number;
  identitiesRemoved: number;
}

/**
 * The canonical form every quantization path starts from: weights as initializers, constant
 * subgraphs folded, opset >= 13, BatchNorm folded, Identity/Dropout removed, and value_info
 * filled in by running `sample` through onnxruntime. The input model is not modified.
 */
export async function prepareModel(
  input: ModelProto,
  sample: Record<string, OrtTensor>,
  options: PrepareOptions = {},
): Promise<{ model: ModelProto; report: PrepareReport }> {
  const o = { ...DEFAULT_PREPARE_OPTIONS, ...options };
  const model = cloneModel(input);
  sortGraph(model.graph);
  const constantsMoved = constantsToInitializers(model);
  const constantsFolded = await foldConstants(model);
  let identitiesRemoved = 0;
  for (const node of [...model.graph.node]) {
    if (node.opType === 'Identity' || node.opType === 'Dropout') {
      if (node.output.filter((x) => x).length !== 1) continue;
      bypassNode(model.graph, node);
      identitiesRemoved++;
    }
  }
  await inferShapes(model, sample);
  const fromOpset = upgradeOpset(model, o.opset);
  const batchNormsFolded = o.foldBatchNorm ? foldBatchNorm(model.graph) : 0;
  const convAffinesFolded = o.foldBatchNorm ? foldConvAffine(model.graph) : 0;
  pruneGraph(model.graph);
  sortGraph(model.graph);
  await inferShapes(model, sample);
  return {
    model,
    report: {
      fromOpset,
      constantsMoved,
      constantsFolded,
      batchNormsFolded,
      convAffinesFolded,
      identitiesRemoved,
    },
  };
}

/**
 * Zero-filled feeds for every non-initializer input, symbolic dims set to 1: enough for
 * prepareModel's shape inference when a format (dynamic INT8, INT4, FP16) needs no data.
 */
export function zeroFeeds(model: ModelProto): Record<string, OrtTensor> {
  const inits = new Set((model.graph.initializer ?? []).map((t) => t.name));
  const feeds: Record<string, OrtTensor> = {};
  for (const input of model.graph.input ?? []) {
    if (inits.has(input.name)) continue;
    const type = input.type?.tensorType;
    const dims = (type?.shape?.dim ?? []).map((d) => (d.dimValue && d.dimValue > 0 ? d.dimValue : 1));
    const n = dims.reduce((a, b) => a * b, 1);
    const elem = type?.elemType ?? DataType.FLOAT;
    if (elem === DataType.INT64) feeds[input.name] = new ort.Tensor('int64', new BigInt64Array(n), dims);
    else if (elem === DataType.INT32) feeds[input.name] = new ort.Tensor('int32', new Int32Array(n), dims);
    else feeds[input.name] = new ort.Tensor('float32', new Float32Array(n), dims);
  }
  return feeds;
}
