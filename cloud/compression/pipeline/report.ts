import type { EvaluationReport } from '../evaluate/evaluate.js';
import { verdictOf } from '../evaluate/verdict.js';
import type { PlannedVariant } from '../profiles/planner.js';
import type { Int8Decision } from './int8-forms.js';

/** How one variant ended: built and measured, failed on its own, or skipped (its source failed). */
export type VariantStatus = 'ok' | 'failed' | 'skipped';

export interface VariantReport {
  name: string;
  status: VariantStatus;
  /** Why a variant failed or was skipped (a code from shared/errors); null when ok. */
  error: { code: string; message: string } | null;
  /** Written file; null when the variant was not built. */
  file: string | null;
  why: string;
  sizeBytes: number | null;
  accuracy: number | null;
  /** Top-1 agreement with the original, percent. */
  agreement: number | null;
  cosine: number | null;
  latencyMs: number | null;
  latencyRatio: number | null;
  /** Whether it ran faster than the original on the build machine (null for the original or unbuilt). */
  verdict: 'faster' | 'not-faster' | null;
  sizeRatio: number | null;
  accepted: boolean;
  /** Nodes left in float (quantized variants). */
  keptFloat: string[];
  /** What the stage did beyond the plan (e.g. quantization-aware fine-tuning). */
  notes?: string | null;
  /**
   * INT8 variants: how the INT8 form was decided: by measurement on the build machine (forms
   * compared against the original at the profile's batch), or 'rules' (the profile's static
   * INT8, not decided here: an ARM/TensorRT device's kernels are not this machine's); null for
   * the others (and for a student-int8 made by quantization-aware fine-tuning: static, not compared).
   */
  int8Decision?: Int8Decision | 'rules' | null;
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
  /** Where every latency and verdict of the report was measured (this build machine). */
  measuredOn: string;
  /**
   * 'measured': the recommendation rests on this machine's kernels, the profile's; 'provisional':
   * on this machine's although the profile's devices run others (ARM, TensorRT): devices of
   * the profile decide once they report (fleet closed loop).
   */
  recommendationBasis: 'measured' | 'provisional';
  student: string;
  samples: { train: number; holdout: number };
  /** The shape each input was calibrated and measured at (input name -> dims, batch 1). */
  servingShapes: Record<string, number[]>;
  variants: VariantReport[];
  recommended: string | null;
  /** False while the pipeline is still running (report.json is rewritten after every variant). */
  complete: boolean;
}

export interface MeasuredVariantInput {
  variant: PlannedVariant;
  file: string;
  size: number;
  originalSize: number;
  evaluation: EvaluationReport;
  originalAccuracy: number | null;
  maxDrop: number;
  keptFloat: string[];
  notes?: string | null;
  int8?: Int8Decision | 'rules';
  started: number;
}

/** The report row of a variant that was built and measured. */
export function measuredVariant(m: MeasuredVariantInput): VariantReport {
  const e = m.evaluation;
  const accuracy = e.model.accuracy ?? null;
  const accepted =
    m.variant.name === 'original' ||
    (accuracy !== null && m.originalAccuracy !== null
      ? accuracy >= m.originalAccuracy - m.maxDrop
      : (e.cosine ?? 0) >= 0.99);
  return {
    name: m.variant.name,
    status: 'ok',
    error: null,
    file: m.file,
    why: m.variant.why,
    sizeBytes: m.size,
    accuracy,
    agreement: e.agreement ?? null,
    cosine: e.cosine ?? null,
    latencyMs: e.model.latencyMs ?? null,
    latencyRatio: e.latencyRatio ?? null,
    verdict:
      m.variant.name === 'original'
        ? null
        : typeof m.int8 === 'object' && !m.int8.fasterThanOriginal
          ? 'not-faster' // the form comparison at the profile's batch found none faster
          : verdictOf(e.latencyRatio),
    sizeRatio: m.size / m.originalSize,
    accepted,
    keptFloat: m.keptFloat,
    notes: m.notes ?? null,
    int8Decision: m.int8 ?? null,
    seconds: (performance.now() - m.started) / 1000,
  };
}

/** The report row of a variant that failed or was skipped: no numbers, the coded reason. */
export function unbuiltVariant(
  variant: PlannedVariant,
  status: 'failed' | 'skipped',
  error: { code: string; message: string },
  started: number,
): VariantReport {
  return {
    name: variant.name,
    status,
    error,
    file: null,
    why: variant.why,
    sizeBytes: null,
    accuracy: null,
    agreement: null,
    cosine: null,
    latencyMs: null,
    latencyRatio: null,
    verdict: null,
    sizeRatio: null,
    accepted: false,
    keptFloat: [],
    notes: null,
    int8Decision: null,
    seconds: (performance.now() - started) / 1000,
  };
}
