import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FleetError } from '../../../shared/errors/index.js';
import { evaluateModel } from '../evaluate/evaluate.js';
import { decodeModel } from '../onnx/proto.js';
import { elementCount } from '../onnx/tensor.js';
import {
  type CompressionPlan,
  type PlannedVariant,
  planCompression,
  recommendVariant,
} from '../profiles/planner.js';
import type { DeviceProfile } from '../profiles/types.js';
import { hostCpu, hostMeasurementsApply } from '../quantize/target.js';
import { type CompressionData, splitCompressionData } from './data-split.js';
import { type CompressionReport, measuredVariant, unbuiltVariant, type VariantReport } from './report.js';
import { resolveSampleShape } from './shapes.js';
import { CHOOSABLE_VARIANTS } from './variant-names.js';
import { buildVariant } from './variants.js';

export type { CompressionReport, VariantReport } from './report.js';

export { CHOOSABLE_VARIANTS };

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
  /** Variants to build among those the profile plans; default all of them. */
  variants?: readonly string[];
  /** Directory for the variants and report.json (rewritten after every variant). */
  outDir: string;
  onProgress?: (stage: string, fraction: number) => void;
}

export const COMPRESSION_DEFAULTS = { maxAccuracyDrop: 1, epochs: 8 };

const TOTAL_WEIGHT: Record<PlannedVariant['kind'], number> = { copy: 1, int8: 2, fp16: 1, distill: 6 };

/** The plan's variants narrowed to the chosen ones; INPUT_INVALID for a name it cannot build. */
export function chooseVariants(
  plan: CompressionPlan,
  profile: string,
  chosen?: readonly string[],
): PlannedVariant[] {
  if (!chosen) return plan.variants;
  const planned = plan.variants.map((v) => v.name as string);
  for (const name of chosen) {
    if (!(CHOOSABLE_VARIANTS as readonly string[]).includes(name)) {
      throw new FleetError(
        'INPUT_INVALID',
        `--variants: unknown variant ${name}; choose from ${CHOOSABLE_VARIANTS.join(', ')}`,
      );
    }
    if (!planned.includes(name)) {
      throw new FleetError(
        'INPUT_INVALID',
        `profile ${profile} does not call for ${name}; it plans ${planned.join(', ')}`,
      );
    }
  }
  if (chosen.includes('student-int8') && !chosen.includes('student')) {
    throw new FleetError(
      'INPUT_INVALID',
      '--variants: student-int8 is made from the student; choose student too',
    );
  }
  return plan.variants.filter((v) => v.name === 'original' || chosen.includes(v.name));
}

/** The `fleetml compress` pipeline: plan for the profile, build every variant, measure, report. */
export async function runCompression(request: CompressionRequest): Promise<CompressionReport> {
  const progress = request.onProgress ?? (() => {});
  const maxDrop = request.maxAccuracyDrop ?? COMPRESSION_DEFAULTS.maxAccuracyDrop;
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
    teacherOpTypes: original.graph.node.map((n) => n.opType),
  });
  const variants = chooseVariants(plan, request.profile.name, request.variants);
  const workDir = join(request.outDir, '.work');
  const data = await splitCompressionData(request.data, request.labels, workDir);
  const shapes = resolveSampleShape(originalBytes, data.holdout.sampleShape, `--data ${request.data}`);
  const report: CompressionReport = {
    model: request.model,
    profile: request.profile.name,
    maxAccuracyDrop: maxDrop,
    latencyObjectiveMs: plan.latencyObjectiveMs,
    int8Decisions: hostMeasurementsApply(request.profile) ? 'measured' : 'rules',
    measuredOn: `${process.arch} build machine (${hostCpu().cpuModel || 'unknown CPU'})`,
    recommendationBasis: hostMeasurementsApply(request.profile) ? 'measured' : 'provisional',
    student: plan.student,
    samples: { train: data.train.count, holdout: data.holdout.count },
    servingShapes: shapes.servingShapes,
    variants: [],
    recommended: null,
    complete: false,
  };
  const run: PipelineRun = {
    request,
    data,
    teacher: shapes.teacher,
    student: plan.student,
    maxDrop,
    workDir,
    originalBytes,
    built: new Map([['input', originalBytes]]),
  };
  const total = variants.reduce((n, v) => n + TOTAL_WEIGHT[v.kind], 0);
  let done = 0;
  for (const variant of variants) {
    progress(variant.name, done / total);
    report.variants.push(await runVariant(run, variant, report.variants));
    report.recommended = recommend(report.variants);
    // Every finished variant is on disk with its row: a later failure or a kill loses nothing.
    await writeReport(request.outDir, report);
    done += TOTAL_WEIGHT[variant.kind];
  }
  progress('done', 1);
  report.complete = true;
  await writeReport(request.outDir, report);
  return report;
}

interface PipelineRun {
  request: CompressionRequest;
  data: CompressionData;
  teacher: Uint8Array;
  student: string;
  maxDrop: number;
  workDir: string;
  originalBytes: Uint8Array;
  /** Bytes of the variants built so far, by name ('input' is the original). */
  built: Map<string, Uint8Array>;
}

/** Builds and measures one variant; its failure is its own row, never the pipeline's end. */
async function runVariant(
  run: PipelineRun,
  variant: PlannedVariant,
  earlier: VariantReport[],
): Promise<VariantReport> {
  const started = performance.now();
  const built = run.built;
  const source = built.get(variant.from === 'student' ? 'student' : 'input');
  if (!source) {
    const cause = earlier.find((r) => r.name === variant.from)?.error;
    return unbuiltVariant(
      variant,
      'skipped',
      {
        code: cause?.code ?? 'INPUT_INVALID',
        message: `made from ${variant.from}, which was not built${cause ? ` (${cause.code})` : ''}`,
      },
      started,
    );
  }
  const originalAccuracy = earlier.find((r) => r.name === 'original')?.accuracy ?? null;
  const file = join(run.request.outDir, `${variant.name}.onnx`);
  try {
    const result = await buildVariant({
      variant,
      source,
      teacher: run.teacher,
      data: run.data,
      profile: run.request.profile,
      student: run.student,
      epochs: run.request.epochs ?? COMPRESSION_DEFAULTS.epochs,
      file,
      workDir: run.workDir,
      originalAccuracy,
      maxDrop: run.maxDrop,
    });
    await writeFile(file, result.bytes);
    const reference = variant.name === 'original' ? undefined : run.originalBytes;
    const evaluation = await evaluateModel(result.bytes, run.data.holdout, reference, {
      latency: { runs: 50 },
    });
    built.set(variant.name, result.bytes);
    return measuredVariant({
      variant,
      file,
      size: result.bytes.length,
      originalSize: run.originalBytes.length,
      evaluation,
      originalAccuracy: variant.name === 'original' ? (evaluation.model.accuracy ?? null) : originalAccuracy,
      maxDrop: run.maxDrop,
      keptFloat: result.keptFloat,
      notes: result.notes,
      int8: result.int8,
      started,
    });
  } catch (error) {
    if (variant.name === 'original') throw error; // no reference, nothing to compare against
    return unbuiltVariant(variant, 'failed', toCodedReason(error), started);
  }
}

function toCodedReason(error: unknown): { code: string; message: string } {
  if (error instanceof FleetError) return { code: error.code, message: error.message };
  // Not one of ours: keep the message (first line), never a stack trace.
  const message = String((error as Error)?.message ?? error)
    .split('\n')[0]
    .slice(0, 500);
  return { code: 'INTERNAL', message };
}

function recommend(rows: VariantReport[]): string | null {
  const measured = rows.filter((r) => r.status === 'ok');
  return recommendVariant(
    // A compressed variant that measured no faster than the original is never recommended.
    measured.map((r) => ({
      name: r.name,
      accepted: r.accepted && r.verdict !== 'not-faster',
      latencyMs: r.latencyMs,
    })),
  );
}

async function writeReport(outDir: string, report: CompressionReport): Promise<void> {
  await writeFile(join(outDir, 'report.json'), `${JSON.stringify(report, null, 2)}\n`);
}
