/** How each planned variant is built; one function per kind, each taking one context object. */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FleetError } from '../../../shared/errors/index.js';
import { distillThenQuantize, type QuantizerHook, symmetricWeightScales } from '../distill/qat.js';
import { runDistill } from '../distill/run.js';
import { evaluateModel } from '../evaluate/evaluate.js';
import { decodeModel, encodeModel } from '../onnx/proto.js';
import type { ModelProto } from '../onnx/types.js';
import type { PlannedVariant } from '../profiles/planner.js';
import type { DeviceProfile } from '../profiles/types.js';
import type { SampleSet } from '../quantize/calibrate/data.js';
import { quantizeWithFallback } from '../quantize/fallback.js';
import { convertToFp16 } from '../quantize/fp16.js';
import { buildQdq, type CalibratedModel, calibrateModel } from '../quantize/static.js';
import { hostMeasurementsApply, int8OptionsFor, weightBits } from '../quantize/target.js';
import type { CompressionData } from './data-split.js';
import { chooseInt8Form, type Int8Decision } from './int8-forms.js';

export interface VariantContext {
  variant: PlannedVariant;
  /** Bytes of the model the variant is made from (the original, or the student). */
  source: Uint8Array;
  /** The original model, with its symbolic sample dims fixed from the data (teacher). */
  teacher: Uint8Array;
  data: CompressionData;
  profile: DeviceProfile;
  /** Student template. */
  student: string;
  epochs: number;
  /** Where the variant is written; `workDir` holds scratch files. */
  file: string;
  workDir: string;
  originalAccuracy: number | null;
  maxDrop: number;
}

export interface BuiltVariant {
  bytes: Uint8Array;
  keptFloat: string[];
  notes?: string;
  /** How the INT8 form was chosen (by measurement here, or the profile's rules). */
  int8?: Int8Decision | 'rules';
}

/** Ops that mean a model holds quantized tensors already. */
const QUANTIZED_OPS = new Set([
  'QuantizeLinear',
  'DequantizeLinear',
  'DynamicQuantizeLinear',
  'QLinearConv',
  'QLinearMatMul',
  'MatMulInteger',
  'ConvInteger',
  'MatMulNBits',
  'QGemm',
]);

/** ALREADY_QUANTIZED when the model has quantized ops: a second pass only adds Q/DQ pairs. */
export function assertNotQuantized(model: ModelProto): void {
  const found = (model.graph.node ?? []).filter((n) => QUANTIZED_OPS.has(n.opType ?? ''));
  if (found.length > 0) {
    const ops = [...new Set(found.map((n) => n.opType))].join(', ');
    throw new FleetError(
      'ALREADY_QUANTIZED',
      `the model is already quantized (${found.length} ${ops} nodes): quantize the float original instead`,
      { nodes: found.length, ops },
    );
  }
}

export async function buildVariant(ctx: VariantContext): Promise<BuiltVariant> {
  switch (ctx.variant.kind) {
    case 'copy':
      return { bytes: ctx.source, keptFloat: [] };
    case 'int8':
      assertNotQuantized(decodeModel(ctx.source));
      if (ctx.variant.from === 'student' && ctx.data.holdout.labels) return quantizeStudent(ctx);
      return quantizeVariant(ctx);
    case 'distill':
      return distillStudent(ctx);
    case 'fp16': {
      const result = await convertToFp16(decodeModel(ctx.source));
      return { bytes: encodeModel(result.model), keptFloat: Object.keys(result.floatOps) };
    }
  }
}

async function distillStudent(ctx: VariantContext): Promise<BuiltVariant> {
  await mkdir(ctx.workDir, { recursive: true });
  const teacherPath = join(ctx.workDir, 'teacher.onnx');
  await writeFile(teacherPath, ctx.teacher);
  await runDistill({
    teacher: teacherPath,
    data: ctx.data.trainSpec,
    labels: ctx.data.trainLabels,
    student: ctx.student,
    output: ctx.file,
    progress: false,
    train: { epochs: ctx.epochs, seed: 0 },
  });
  return { bytes: await readFile(ctx.file), keptFloat: [] };
}

/**
 * Static INT8 with the profile's options. When the plain result breaks the accuracy budget
 * (measured against the original's accuracy on training samples), layers go back to float one
 * by one until it holds.
 */
async function quantizeVariant(ctx: VariantContext): Promise<BuiltVariant> {
  const { data, profile } = ctx;
  const calibrated = await calibrateModel(decodeModel(ctx.source), data.train, {
    samples: 64,
    x86Kernels: profile.arch === 'x64',
  });
  const qdq = int8OptionsFor(profile);
  const built = await staticWithinBudget(ctx, calibrated, qdq);
  if (!hostMeasurementsApply(profile))
    return { bytes: encodeModel(built.model), keptFloat: built.keptFloat, int8: 'rules' };
  // Dynamic and MatMul-only forms compete only within the accuracy budget (static was made to fit it).
  const withinBudget = async (bytes: Uint8Array) => {
    if (!data.holdout.labels || ctx.originalAccuracy === null) return true;
    const check = await evaluateModel(bytes, data.holdout, undefined, { skipLatency: true });
    return (check.model.accuracy ?? 0) >= ctx.originalAccuracy - ctx.maxDrop;
  };
  const { bytes, decision } = await chooseInt8Form(
    { source: ctx.source, staticModel: built.model, calibrated, qdq, profile, data: data.train },
    withinBudget,
  );
  const notes = decision.fasterThanOriginal
    ? `${decision.form} INT8, the fastest form measured on this ${decision.measuredOn} machine`
    : `no INT8 form measured faster than the original on this ${decision.measuredOn} machine (fastest: ${decision.form}): not recommended`;
  return { bytes, keptFloat: decision.form === 'static' ? built.keptFloat : [], notes, int8: decision };
}

/** Plain static INT8, or with layers back in float one by one until the accuracy budget holds. */
async function staticWithinBudget(
  ctx: VariantContext,
  calibrated: CalibratedModel,
  qdq: ReturnType<typeof int8OptionsFor>,
): Promise<{ model: ModelProto; keptFloat: string[] }> {
  const { data } = ctx;
  const plain = buildQdq(calibrated, qdq);
  if (!data.holdout.labels || ctx.originalAccuracy === null) return { model: plain.model, keptFloat: [] };
  const check = await evaluateModel(encodeModel(plain.model), data.holdout, undefined, { skipLatency: true });
  if ((check.model.accuracy ?? 0) >= ctx.originalAccuracy - ctx.maxDrop)
    return { model: plain.model, keptFloat: [] };
  const labelled = data.train.labels ? data.train : data.holdout;
  const result = await quantizeWithFallback(calibrated, qdq, labelled, { maxAccuracyDrop: ctx.maxDrop });
  return { model: result.model, keptFloat: result.keptFloat };
}

/**
 * Distill, then quantize: post-training INT8 of the student; when that loses more than the
 * budget against the float student, fine-tune it with fake quantization under the
 * distillation loss (quantization-aware distillation) and quantize the result.
 */
async function quantizeStudent(ctx: VariantContext): Promise<BuiltVariant> {
  const { data, profile } = ctx;
  const qdq = int8OptionsFor(profile);
  const quantizer: QuantizerHook = {
    // Weights are symmetric per channel (max / 127, or max / 63 with 7-bit weights) in both
    // places, so the fine-tuned weights meet the weight grid the INT8 model is written with;
    // activation ranges are calibrated again on the same data.
    quantize: async (model) => {
      const calibrated = await calibrateModel(model, data.train, {
        samples: 64,
        x86Kernels: profile.arch === 'x64',
      });
      return {
        model: buildQdq(calibrated, qdq).model,
        scales: symmetricWeightScales(model, qdq.perChannel, weightBits(qdq.reduceRange)),
      };
    },
  };
  const asTrain = (s: SampleSet) => ({ x: s.x, count: s.count, sampleShape: s.sampleShape, y: s.labels });
  const validation = asTrain(data.holdout) as ReturnType<typeof asTrain> & { y: Int32Array };
  const result = await distillThenQuantize(
    decodeModel(ctx.source),
    decodeModel(ctx.teacher),
    asTrain(data.train),
    validation,
    quantizer,
    ctx.maxDrop / 100,
    { epochs: 2, seed: 0 },
  );
  const pts = (x: number) => (100 * x).toFixed(2);
  const notes = result.usedQat
    ? `PTQ ${pts(result.ptqAccuracy)} % vs float ${pts(result.floatAccuracy)} %: quantization-aware fine-tuning gave ${pts(result.qatAccuracy ?? 0)} %`
    : `PTQ within the budget (${pts(result.ptqAccuracy)} % vs float ${pts(result.floatAccuracy)} %)`;
  return {
    bytes: encodeModel(result.int8),
    keptFloat: [],
    notes,
    int8: hostMeasurementsApply(profile) ? undefined : 'rules',
  };
}
