import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FleetError } from '../../../shared/errors/index.js';
import { distillThenQuantize, type QuantizerHook, symmetricWeightScales } from '../distill/qat.js';
import { runDistill } from '../distill/run.js';
import { type EvaluationReport, evaluateModel } from '../evaluate/evaluate.js';
import { verdictOf } from '../evaluate/verdict.js';
import { decodeModel, encodeModel } from '../onnx/proto.js';
import { elementCount } from '../onnx/tensor.js';
import { type PlannedVariant, planCompression, recommendVariant } from '../profiles/planner.js';
import type { DeviceProfile } from '../profiles/types.js';
import type { SampleSet } from '../quantize/calibrate/data.js';
import { quantizeWithFallback } from '../quantize/fallback.js';
import { convertToFp16 } from '../quantize/fp16.js';
import { buildQdq, calibrateModel } from '../quantize/static.js';
import { int8OptionsFor } from '../quantize/target.js';
import { type CompressionData, splitCompressionData } from './data-split.js';

export interface CompressionRequest {
  /** The FP32 model file. */
  model: string;
  profile: DeviceProfile;
  /** `mnist` or a .npy of inputs [N, ...]; 20 % is held out for evaluation. */
  data: string;
  labels?: string;
  /** Largest accepted top-1 drop against the original, in points; default 1. */
  maxAccuracyDrop?: number;
  /** Latency objective at batch 1 in ms; default the profile's. */
  latencyMs?: number;
  /** Student template instead of the planner's choice. */
  student?: string;
  /** Distillation epochs; default 8. */
  epochs?: number;
  /** Directory for the variants and report.json. */
  outDir: string;
  onProgress?: (stage: string, fraction: number) => void;
}

export interface VariantReport {
  name: string;
  file: string;
  why: string;
  sizeBytes: number;
  accuracy: number | null;
  /** Top-1 agreement with the original, percent. */
  agreement: number | null;
  cosine: number | null;
  latencyMs: number | null;
  latencyRatio: number | null;
  /** Whether it ran faster than the original on the build machine (null for the original). */
  verdict: 'faster' | 'not-faster' | null;
  sizeRatio: number;
  accepted: boolean;
  /** Nodes left in float (quantized variants). */
  keptFloat: string[];
  /** What the stage did beyond the plan (e.g. quantization-aware fine-tuning). */
  notes?: string | null;
  seconds: number;
}

export interface CompressionReport {
  model: string;
  profile: string;
  maxAccuracyDrop: number;
  latencyObjectiveMs: number;
  /**
   * Where the INT8 variants' per-op choices come from: 'measured' on this (x86) build machine,
   * or 'rules' fitting the profile's kernels (ARM, TensorRT), to be confirmed by its devices.
   */
  int8Decisions: 'measured' | 'rules';
  student: string;
  samples: { train: number; holdout: number };
  variants: VariantReport[];
  recommended: string | null;
}

const TOTAL_WEIGHT: Record<PlannedVariant['kind'], number> = { copy: 1, int8: 2, fp16: 1, distill: 6 };

/** The `fleetml compress` pipeline: plan for the profile, build every variant, measure, report. */
export async function runCompression(request: CompressionRequest): Promise<CompressionReport> {
  const progress = request.onProgress ?? (() => {});
  const maxDrop = request.maxAccuracyDrop ?? 1;
  await mkdir(request.outDir, { recursive: true });
  const originalBytes = await readFile(request.model);
  const original = decodeModel(originalBytes);
  const parameters = (original.graph.initializer ?? []).reduce((n, t) => n + elementCount(t.dims), 0);
  const plan = planCompression({
    profile: request.profile,
    teacherBytes: originalBytes.length,
    teacherParameters: parameters,
    latencyObjectiveMs: request.latencyMs,
    student: request.student,
  });
  const data = await splitCompressionData(request.data, request.labels, join(request.outDir, '.work'));
  const total = plan.variants.reduce((n, v) => n + TOTAL_WEIGHT[v.kind], 0);
  let done = 0;
  const built = new Map<string, Uint8Array>([['input', originalBytes]]);
  const reports: VariantReport[] = [];
  let originalAccuracy: number | null = null;

  for (const variant of plan.variants) {
    progress(variant.name, done / total);
    const started = performance.now();
    const source = built.get(variant.from === 'student' ? 'student' : 'input');
    if (!source)
      throw new FleetError('INTERNAL', `variant ${variant.name} needs ${variant.from}, which was not built`);
    const file = join(request.outDir, `${variant.name}.onnx`);
    const { bytes, keptFloat, notes } = await buildVariant(
      variant,
      source,
      data,
      request,
      plan.student,
      file,
      originalAccuracy,
      maxDrop,
      built,
    );
    built.set(variant.name, bytes);
    await writeFile(file, bytes);
    const evaluation = await evaluateModel(
      bytes,
      data.holdout,
      variant.name === 'original' ? undefined : originalBytes,
      {
        latency: { runs: 50 },
      },
    );
    const accuracy = evaluation.model.accuracy ?? null;
    if (variant.name === 'original') originalAccuracy = accuracy;
    reports.push({
      notes: notes ?? null,
      ...toReport(
        variant,
        file,
        bytes.length,
        originalBytes.length,
        evaluation,
        originalAccuracy,
        maxDrop,
        keptFloat,
        started,
      ),
    });
    done += TOTAL_WEIGHT[variant.kind];
  }
  progress('done', 1);
  return {
    model: request.model,
    profile: request.profile.name,
    maxAccuracyDrop: maxDrop,
    latencyObjectiveMs: plan.latencyObjectiveMs,
    int8Decisions: request.profile.int8.decisions,
    student: plan.student,
    samples: { train: data.train.count, holdout: data.holdout.count },
    variants: reports,
    recommended: recommendVariant(
      // A compressed variant that measured no faster than the original is never recommended.
      reports.map((r) => ({
        name: r.name,
        accepted: r.accepted && r.verdict !== 'not-faster',
        latencyMs: r.latencyMs,
      })),
    ),
  };
}

async function buildVariant(
  variant: PlannedVariant,
  source: Uint8Array,
  data: CompressionData,
  request: CompressionRequest,
  student: string,
  file: string,
  originalAccuracy: number | null,
  maxDrop: number,
  built: Map<string, Uint8Array>,
): Promise<{ bytes: Uint8Array; keptFloat: string[]; notes?: string }> {
  switch (variant.kind) {
    case 'copy':
      return { bytes: source, keptFloat: [] };
    case 'int8':
      if (variant.from === 'student' && data.holdout.labels) {
        return quantizeStudent(source, built.get('input')!, data, request.profile, maxDrop);
      }
      return quantizeVariant(source, data, request.profile, originalAccuracy, maxDrop);
    case 'distill': {
      await mkdir(join(request.outDir, '.work'), { recursive: true });
      const teacherPath = join(request.outDir, '.work', 'teacher.onnx');
      await writeFile(teacherPath, source);
      await runDistill({
        teacher: teacherPath,
        data: data.trainSpec,
        labels: data.trainLabels,
        student,
        output: file,
        progress: false,
        train: { epochs: request.epochs ?? 8, seed: 0 },
      });
      return { bytes: await readFile(file), keptFloat: [] };
    }
    case 'fp16': {
      const result = await convertToFp16(decodeModel(source));
      return { bytes: encodeModel(result.model), keptFloat: Object.keys(result.floatOps) };
    }
  }
}

/**
 * Static INT8 with the profile's options. When the plain result breaks the accuracy budget
 * (measured against the original's accuracy on training samples), layers go back to float one
 * by one until it holds.
 */
async function quantizeVariant(
  source: Uint8Array,
  data: CompressionData,
  profile: DeviceProfile,
  originalAccuracy: number | null,
  maxDrop: number,
): Promise<{ bytes: Uint8Array; keptFloat: string[] }> {
  const calibrated = await calibrateModel(decodeModel(source), data.train, {
    samples: 64,
    x86Kernels: profile.arch === 'x64',
  });
  const qdq = int8OptionsFor(profile);
  const plain = buildQdq(calibrated, qdq);
  if (!data.holdout.labels || originalAccuracy === null)
    return { bytes: encodeModel(plain.model), keptFloat: [] };
  const check = await evaluateModel(encodeModel(plain.model), data.holdout, undefined, { skipLatency: true });
  if ((check.model.accuracy ?? 0) >= originalAccuracy - maxDrop)
    return { bytes: encodeModel(plain.model), keptFloat: [] };
  const labelled = data.train.labels ? data.train : data.holdout;
  const result = await quantizeWithFallback(calibrated, qdq, labelled, { maxAccuracyDrop: maxDrop });
  return { bytes: encodeModel(result.model), keptFloat: result.keptFloat };
}

/**
 * Distill, then quantize: post-training INT8 of the student; when that loses more than the
 * budget against the float student, fine-tune it with fake quantization under the
 * distillation loss (quantization-aware distillation) and quantize the result.
 */
async function quantizeStudent(
  student: Uint8Array,
  teacher: Uint8Array,
  data: CompressionData,
  profile: DeviceProfile,
  maxDrop: number,
): Promise<{ bytes: Uint8Array; keptFloat: string[]; notes: string }> {
  const qdq = int8OptionsFor(profile);
  const quantizer: QuantizerHook = {
    // Weights are symmetric per channel (max / 127) in both places, so the fine-tuned weights
    // meet the same weight scales; activation ranges are calibrated again on the same data.
    quantize: async (model) => {
      const calibrated = await calibrateModel(model, data.train, {
        samples: 64,
        x86Kernels: profile.arch === 'x64',
      });
      return { model: buildQdq(calibrated, qdq).model, scales: symmetricWeightScales(model, qdq.perChannel) };
    },
  };
  const asTrain = (s: SampleSet) => ({ x: s.x, count: s.count, sampleShape: s.sampleShape, y: s.labels });
  const validation = asTrain(data.holdout) as ReturnType<typeof asTrain> & { y: Int32Array };
  const result = await distillThenQuantize(
    decodeModel(student),
    decodeModel(teacher),
    asTrain(data.train),
    validation,
    quantizer,
    maxDrop / 100,
    { epochs: 2, seed: 0 },
  );
  const pts = (x: number) => (100 * x).toFixed(2);
  const notes = result.usedQat
    ? `PTQ ${pts(result.ptqAccuracy)} % vs float ${pts(result.floatAccuracy)} %: quantization-aware fine-tuning gave ${pts(result.qatAccuracy ?? 0)} %`
    : `PTQ within the budget (${pts(result.ptqAccuracy)} % vs float ${pts(result.floatAccuracy)} %)`;
  return { bytes: encodeModel(result.int8), keptFloat: [], notes };
}

function toReport(
  variant: PlannedVariant,
  file: string,
  size: number,
  originalSize: number,
  e: EvaluationReport,
  originalAccuracy: number | null,
  maxDrop: number,
  keptFloat: string[],
  started: number,
): VariantReport {
  const accuracy = e.model.accuracy ?? null;
  const accepted =
    variant.name === 'original' ||
    (accuracy !== null && originalAccuracy !== null
      ? accuracy >= originalAccuracy - maxDrop
      : (e.cosine ?? 0) >= 0.99);
  return {
    name: variant.name,
    file,
    why: variant.why,
    sizeBytes: size,
    accuracy,
    agreement: e.agreement ?? null,
    cosine: e.cosine ?? null,
    latencyMs: e.model.latencyMs ?? null,
    latencyRatio: e.latencyRatio ?? null,
    verdict: variant.name === 'original' ? null : verdictOf(e.latencyRatio),
    sizeRatio: size / originalSize,
    accepted,
    keptFloat,
    seconds: (performance.now() - started) / 1000,
  };
}
