import { agreement, argmaxRows, cosine, snrDb } from '../evaluate/metrics.js';
import { GraphIndex } from '../onnx/graph.js';
import { intermediateTensors, runOnce, withExtraOutputs } from '../onnx/ort-eval.js';
import { encodeModel } from '../onnx/proto.js';
import { createSession, type OrtTensor } from '../runtime/ort.js';
import { batchTensor, type SampleSet } from './calibrate/data.js';
import { buildQdq, type CalibratedModel, type QdqOptions, type QdqResult } from './static.js';

export interface FallbackBudget {
  /** Largest allowed top-1 accuracy drop in points (needs labels). */
  maxAccuracyDrop?: number;
  /** Smallest allowed mean output cosine similarity against FP32. */
  minCosine?: number;
  /** Smallest allowed output SNR against FP32, in dB. */
  minSnrDb?: number;
}

export interface FallbackOptions {
  /**
   * Tensors returned to float per step (each with its producer and the readers that quantize
   * it); default 1 (one by one, as the issue asks).
   */
  perStep: number;
  /** Give up after this many steps; default 40. */
  maxSteps: number;
  /** Samples used for the per-layer error probe; default 2. */
  probeSamples: number;
  onStep?: (step: number, metric: Record<string, number>, excluded: string[]) => void;
}

export const DEFAULT_FALLBACK_OPTIONS: FallbackOptions = { perStep: 1, maxSteps: 40, probeSamples: 2 };

export interface FallbackResult extends QdqResult {
  /** Nodes the search returned to float, in the order it did so. */
  keptFloat: string[];
  metrics: Record<string, number>;
  budgetMet: boolean;
}

/** The first output of `bytes` on every sample of `data`, concatenated. */
export async function firstOutputs(
  bytes: Uint8Array,
  data: SampleSet,
): Promise<{ values: Float32Array; per: number }> {
  const session = await createSession(bytes, { intraOpThreads: 2 });
  try {
    const parts: Float32Array[] = [];
    const batch = Math.max(
      1,
      Math.min(32, Math.floor(2 ** 20 / data.sampleShape.reduce((a, b) => a * b, 1))),
    );
    for (let s = 0; s < data.count; s += batch) {
      const r = await session.run({ [session.inputNames[0]]: batchTensor(data, s, batch) });
      parts.push(Float32Array.from(r[session.outputNames[0]].data as Float32Array));
    }
    // Concatenated without spreading: a detector map is ~400 k values per sample.
    const values = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
    let at = 0;
    for (const p of parts) {
      values.set(p, at);
      at += p.length;
    }
    return { values, per: values.length / data.count };
  } finally {
    await session.release();
  }
}

/** Mean cosine, SNR and (with labels) accuracy drop of `q` against `ref`. */
export function metricsOf(
  ref: { values: Float32Array; per: number },
  q: { values: Float32Array; per: number },
  data: SampleSet,
) {
  let cos = 0;
  for (let i = 0; i < data.count; i++) {
    cos += cosine(
      ref.values.subarray(i * ref.per, (i + 1) * ref.per),
      q.values.subarray(i * q.per, (i + 1) * q.per),
    );
  }
  const m: Record<string, number> = { cosine: cos / data.count, snrDb: snrDb(ref.values, q.values) };
  if (data.labels && ref.per > 1) {
    m.accuracyDrop =
      100 *
      (agreement(argmaxRows(ref.values, ref.per), data.labels) -
        agreement(argmaxRows(q.values, q.per), data.labels));
  }
  return m;
}

export function withinBudget(m: Record<string, number>, b: FallbackBudget): boolean {
  return (
    (b.maxAccuracyDrop === undefined || (m.accuracyDrop ?? 0) <= b.maxAccuracyDrop) &&
    (b.minCosine === undefined || m.cosine >= b.minCosine) &&
    (b.minSnrDb === undefined || m.snrDb >= b.minSnrDb)
  );
}

/**
 * Accuracy-driven fallback: while the budget does not hold, measure each quantized node's own
 * contribution to the error (output error against FP32 minus the worst error of its inputs,
 * on a few probe samples) and return the worst node to float.
 */
export async function quantizeWithFallback(
  calibrated: CalibratedModel,
  qdq: Partial<QdqOptions>,
  data: SampleSet,
  budget: FallbackBudget,
  options: Partial<FallbackOptions> = {},
): Promise<FallbackResult> {
  const o = { ...DEFAULT_FALLBACK_OPTIONS, ...options };
  const reference = await firstOutputs(encodeModel(calibrated.model), data);
  const keptFloat: string[] = [];
  const floatNames = intermediateTensors(calibrated.model);
  const probe = { [calibrated.model.graph.input![0].name]: batchTensor(data, 0, o.probeSamples) };
  const floatProbe = await runOnce(withExtraOutputs(calibrated.model, floatNames), probe);
  for (let step = 0; ; step++) {
    const result = buildQdq(calibrated, { ...qdq, exclude: [...(qdq.exclude ?? []), ...keptFloat] });
    const metrics = metricsOf(reference, await firstOutputs(encodeModel(result.model), data), data);
    o.onStep?.(step, metrics, keptFloat);
    const met = withinBudget(metrics, budget);
    if (met || step >= o.maxSteps) return { ...result, keptFloat, metrics, budgetMet: met };
    const present = new Set(intermediateTensors(result.model));
    const names = floatNames.filter((n) => present.has(n));
    const quantProbe = await runOnce(withExtraOutputs(result.model, names), probe);
    const producers = new Map(
      calibrated.model.graph.node.flatMap((n) => n.output.map((o) => [o, n] as const)),
    );
    const memo = new Map<string, number>();
    // A tensor that no longer exists in the quantized graph (folded into a neighbour) carries
    // the error of its inputs, so that the node reading it is not blamed for all of it.
    const err = (t: string): number => {
      const known = memo.get(t);
      if (known !== undefined) return known;
      memo.set(t, 0);
      let e = 0;
      if (floatProbe[t] && quantProbe[t] && floatProbe[t].data instanceof Float32Array)
        e = channelError(floatProbe[t], quantProbe[t]);
      else if (producers.has(t)) e = Math.max(0, ...producers.get(t)!.input.map(err));
      memo.set(t, e);
      return e;
    };
    const excluded = new Set([...(qdq.exclude ?? []), ...keptFloat]);
    // Blame tensors, not nodes: the error a tensor's quantization adds is removed only when
    // its producer and every reader that asks for it quantized run in float.
    const index = new GraphIndex(calibrated.model.graph);
    const scored = calibrated.model.graph.node
      .filter((n) => n.name && present.has(n.output[0]))
      .map((n) => {
        const group = [n, ...index.consumersOf(n.output[0])]
          .map((m) => m.name)
          .filter((m): m is string => !!m && !excluded.has(m));
        return { group, local: err(n.output[0]) - Math.max(0, ...n.input.map(err)) };
      })
      .filter((s) => s.group.length > 0)
      .sort((a, b) => b.local - a.local);
    const worst = scored.slice(0, o.perStep).filter((s) => s.local > 0);
    if (worst.length === 0) return { ...result, keptFloat, metrics, budgetMet: false };
    for (const w of worst) for (const name of w.group) if (!keptFloat.includes(name)) keptFloat.push(name);
  }
}

/**
 * Quantization error of one tensor: the mean over channels (axis 1) of 1 − cosine, so that a
 * tensor whose large channels survive but whose small ones are wiped out (per-tensor scales
 * with one outlier channel) still shows its damage; whole-tensor 1 − cosine below rank 2.
 */
export function channelError(reference: OrtTensor, quantized: OrtTensor): number {
  const a = reference.data as Float32Array;
  const b = quantized.data as Float32Array;
  if (reference.dims.length < 2 || a.length !== b.length) return 1 - cosine(a, b);
  const [n, c] = [reference.dims[0], reference.dims[1]];
  const inner = a.length / (n * c);
  let total = 0;
  for (let k = 0; k < c; k++) {
    let dot = 0;
    let na = 0;
    let nb = 0;
    for (let s = 0; s < n; s++) {
      const base = (s * c + k) * inner;
      for (let i = 0; i < inner; i++) {
        const x = a[base + i];
        const y = b[base + i];
        dot += x * y;
        na += x * x;
        nb += y * y;
      }
    }
    total += na === 0 && nb === 0 ? 0 : na === 0 || nb === 0 ? 1 : 1 - dot / Math.sqrt(na * nb);
  }
  return total / c;
}
