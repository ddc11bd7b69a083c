import { batchTensor, type SampleSet } from '../quantize/calibrate/data.js';
import { createSession, type OrtSession } from '../runtime/ort.js';
import { type LatencyOptions, measureLatency } from './latency.js';
import { agreement, argmaxRows, cosine, snrDb } from './metrics.js';

export interface EvaluateOptions {
  /** Samples per run when computing outputs; default 32 (1 if the model fixes its batch). */
  batchSize: number;
  /** Batch size of the latency measurement; default 1. */
  latencyBatch: number;
  /** Latency settings (runs, threads, optimisation level); defaults as in measureLatency. */
  latency: Partial<LatencyOptions>;
  /** Skip latency (accuracy only); default false. */
  skipLatency: boolean;
}

export const DEFAULT_EVALUATE_OPTIONS: EvaluateOptions = {
  batchSize: 32,
  latencyBatch: 1,
  latency: {},
  skipLatency: false,
};

export interface ModelReport {
  sizeBytes: number;
  /** Top-1 accuracy in percent, when labels are given and the output is [N, classes]. */
  accuracy?: number;
  latencyMs?: number;
}

export interface EvaluationReport {
  samples: number;
  model: ModelReport;
  reference?: ModelReport;
  /** Top-1 agreement with the reference in percent. */
  agreement?: number;
  /** Mean per-sample cosine similarity of the first output against the reference. */
  cosine?: number;
  /** SNR of the first output against the reference over all samples, in dB. */
  snrDb?: number;
  /** model latency / reference latency, measured interleaved in the same run. */
  latencyRatio?: number;
  sizeRatio?: number;
}

/** First output of every sample, concatenated, and the number of values per sample. */
async function outputs(
  bytes: Uint8Array,
  data: SampleSet,
  batchSize: number,
): Promise<{ values: Float32Array; per: number }> {
  const session: OrtSession = await createSession(bytes, { intraOpThreads: 2 });
  try {
    const chunks: Float32Array[] = [];
    for (let start = 0; start < data.count; start += batchSize) {
      const x = batchTensor(data, start, batchSize);
      const result = await session.run({ [session.inputNames[0]]: x });
      chunks.push(Float32Array.from(result[session.outputNames[0]].data as Float32Array));
    }
    const total = chunks.reduce((a, c) => a + c.length, 0);
    const values = new Float32Array(total);
    let at = 0;
    for (const c of chunks) {
      values.set(c, at);
      at += c.length;
    }
    return { values, per: total / data.count };
  } finally {
    await session.release();
  }
}

const accuracyOf = (predicted: Int32Array, labels: Int32Array) => 100 * agreement(predicted, labels);

/**
 * Accuracy (with labels), agreement/cosine/SNR against a reference model, sizes, and p50
 * latency measured interleaved with the reference under the same session options.
 */
export async function evaluateModel(
  model: Uint8Array,
  data: SampleSet,
  reference?: Uint8Array,
  options: Partial<EvaluateOptions> = {},
): Promise<EvaluationReport> {
  const o = { ...DEFAULT_EVALUATE_OPTIONS, ...options };
  const report: EvaluationReport = { samples: data.count, model: { sizeBytes: model.length } };
  const perSample = data.sampleShape.reduce((a, b) => a * b, 1);
  const batchSize = Math.max(1, Math.min(o.batchSize, Math.floor(2 ** 20 / perSample)));
  const mine = await outputs(model, data, batchSize);
  const classes = mine.per > 1 && mine.per <= 1000 ? mine.per : 0;
  const predicted = classes ? argmaxRows(mine.values, classes) : undefined;
  if (predicted && data.labels) report.model.accuracy = accuracyOf(predicted, data.labels);
  if (reference) {
    report.reference = { sizeBytes: reference.length };
    const theirs = await outputs(reference, data, batchSize);
    if (classes) {
      const refPredicted = argmaxRows(theirs.values, classes);
      report.agreement = 100 * agreement(predicted!, refPredicted);
      if (data.labels) report.reference.accuracy = accuracyOf(refPredicted, data.labels);
    }
    let sum = 0;
    for (let i = 0; i < data.count; i++) {
      sum += cosine(
        theirs.values.subarray(i * theirs.per, (i + 1) * theirs.per),
        mine.values.subarray(i * mine.per, (i + 1) * mine.per),
      );
    }
    report.cosine = sum / data.count;
    report.snrDb = snrDb(theirs.values, mine.values);
    report.sizeRatio = model.length / reference.length;
  }
  if (!o.skipLatency) {
    const feeds = { input: batchTensor(data, 0, o.latencyBatch) };
    const [a, b] = await measureLatency(reference ? [model, reference] : [model], feeds, o.latency);
    report.model.latencyMs = a.p50;
    if (b && report.reference) {
      report.reference.latencyMs = b.p50;
      report.latencyRatio = a.p50 / b.p50;
    }
  }
  return report;
}
