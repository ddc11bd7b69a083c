/**
 * The INT8 variant of `compress` on a profile whose kernels are this machine's (x86 on x86):
 * static QDQ, dynamic and MatMul-only INT8 are measured against the original at the
 * profile's batch and the fastest is kept; on other profiles the static form of the rules.
 */
import { benchmarkFeeds } from '../evaluate/verdict.js';
import { decodeModel, encodeModel } from '../onnx/proto.js';
import type { ModelProto } from '../onnx/types.js';
import type { DeviceProfile } from '../profiles/types.js';
import type { SampleSet } from '../quantize/calibrate/data.js';
import { chooseByMeasurement, type Int8Candidate, matmulOnlyExclusions } from '../quantize/choose.js';
import { quantizeDynamic } from '../quantize/dynamic.js';
import { buildQdq, type CalibratedModel, type QdqOptions } from '../quantize/static.js';

/** How the INT8 form of a variant was chosen, as the report shows it. */
export interface Int8Decision {
  /** The form written for the variant (the fastest measured when none beat FP32). */
  form: string;
  /** False when no form measured faster than the original (the variant is then not recommended). */
  fasterThanOriginal: boolean;
  /** Where it was decided: measured on this machine (`arch`), at `batch`. */
  measuredOn: string;
  batch: number;
  candidates: Array<{ form: string; latencyRatio: number; sizeRatio: number; verdict: string }>;
}

/**
 * Dynamic INT8 of the float model, or undefined when it quantizes nothing or cannot be built
 * (e.g. symbolic sizes its preparation cannot resolve): the other forms still compete.
 */
export async function dynamicForm(
  source: Uint8Array,
  qdq: Partial<QdqOptions>,
): Promise<ModelProto | undefined> {
  try {
    const dynamic = await quantizeDynamic(decodeModel(source), {
      perChannel: qdq.perChannel,
      reduceRange: qdq.reduceRange,
    });
    return dynamic.quantizedNodes > 0 ? dynamic.model : undefined;
  } catch {
    return undefined;
  }
}

/** What the form comparison starts from. */
export interface Int8FormsInput {
  /** The float model the variant is made from. */
  source: Uint8Array;
  /** Its static INT8 build (already within the accuracy budget). */
  staticModel: ModelProto;
  calibrated: CalibratedModel;
  qdq: Partial<QdqOptions>;
  profile: DeviceProfile;
  /** Rows for the measurement's feeds. */
  data: SampleSet;
}

/**
 * Measures the static build against dynamic and MatMul-only INT8 (when weight MatMuls hold most
 * of the weights, see matmulOnlyExclusions, and `accept` lets them in) at the profile's batch;
 * returns the fastest form and how it was decided.
 */
export async function chooseInt8Form(
  input: Int8FormsInput,
  accept: (bytes: Uint8Array) => Promise<boolean> = async () => true,
): Promise<{ bytes: Uint8Array; decision: Int8Decision }> {
  const { source, calibrated, qdq, profile } = input;
  const candidates: Int8Candidate[] = [{ form: 'static', bytes: encodeModel(input.staticModel) }];
  const exclusions = matmulOnlyExclusions(calibrated.model);
  if (exclusions) {
    const matmuls = buildQdq(calibrated, { ...qdq, exclude: [...(qdq.exclude ?? []), ...exclusions] });
    const others: Int8Candidate[] = [{ form: 'matmul-only', bytes: encodeModel(matmuls.model) }];
    const dynamic = await dynamicForm(source, qdq);
    if (dynamic) others.push({ form: 'dynamic', bytes: encodeModel(dynamic) });
    for (const c of others) if (await accept(c.bytes)) candidates.push(c);
  }
  const feeds = benchmarkFeeds(source, profile.batch, input.data);
  const choice = await chooseByMeasurement(source, candidates, feeds, { batch: profile.batch });
  const best = choice.best;
  return {
    bytes: candidates.find((c) => c.form === best.form)!.bytes,
    decision: {
      form: best.form,
      fasterThanOriginal: choice.chosen !== 'fp32',
      measuredOn: process.arch,
      batch: profile.batch,
      candidates: choice.candidates.map((c) => ({
        form: c.form,
        latencyRatio: c.latencyRatio,
        sizeRatio: c.sizeRatio,
        verdict: c.verdict,
      })),
    },
  };
}
