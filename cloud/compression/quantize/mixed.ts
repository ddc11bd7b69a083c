import { GraphIndex } from '../onnx/graph.js';
import { encodeModel } from '../onnx/proto.js';
import type { SampleSet } from './calibrate/data.js';
import { type FallbackBudget, firstOutputs, metricsOf, withinBudget } from './fallback.js';
import { type TensorSensitivity, tensorSensitivity } from './sensitivity.js';
import { buildQdq, type CalibratedModel, type QdqOptions, type QdqResult } from './static.js';

export interface MixedOptions {
  /** Samples of the per-tensor sensitivity probe; default 1. */
  probeSamples: number;
  /** A sensitivity ranking measured before (skips the probe); default none. */
  sensitivity?: TensorSensitivity[];
  onSensitivity?: (done: number, total: number) => void;
  /** Also keep float the nodes whose neighbours are all float (fillFloatGaps); default true. */
  fillGaps: boolean;
  /**
   * Searches after the first: each moves the tensor that completed the budget (the last of the
   * chosen prefix) to the front of the ranking and searches again; the smallest float set wins.
   * Default 3. Why: errors interact, so one tensor can be what a whole prefix was needed for
   * (PaddleOCR detector: 88 float tensors, then 84, 36, 28 — latency 0.82 → 0.75 of FP32).
   */
  refineRounds: number;
  /** Called after each evaluated prefix: how many tensors were float and the metrics. */
  onStep?: (floatTensors: number, metrics: Record<string, number>) => void;
  /** Called when a refining round starts, with the tensor moved to the front. */
  onRefine?: (round: number, promoted: string) => void;
}

export const DEFAULT_MIXED_OPTIONS: MixedOptions = { probeSamples: 1, fillGaps: true, refineRounds: 3 };

export interface MixedResult extends QdqResult {
  /** Tensors kept in float, most sensitive first. */
  floatTensors: string[];
  /** Nodes kept in float for them (producers, the readers that would quantize them, gaps). */
  keptFloat: string[];
  metrics: Record<string, number>;
  budgetMet: boolean;
  sensitivity: TensorSensitivity[];
  /** Prefixes evaluated, as [float tensors, cosine]. */
  trace: [number, number][];
}

/** Node names that must run in float for `tensors` to carry no Q/DQ. */
export function floatGroup(calibrated: CalibratedModel, tensors: readonly string[]): string[] {
  const index = new GraphIndex(calibrated.model.graph);
  const names = new Set<string>();
  for (const t of tensors) {
    const producer = index.producer.get(t);
    if (producer?.name) names.add(producer.name);
    for (const reader of index.consumersOf(t)) if (reader.name) names.add(reader.name);
  }
  return [...names];
}

/**
 * Adds to the float set every node whose producers (of non-constant inputs) and readers are
 * all float already: its integer form would only add a Q/DQ pair on each side. On the
 * PaddleOCR detector with 88 float tensors this moved 44 more nodes to float at the same
 * cosine and took the latency from 0.89 to 0.83 of FP32.
 */
export function fillFloatGaps(calibrated: CalibratedModel, names: readonly string[]): string[] {
  const index = new GraphIndex(calibrated.model.graph);
  const float = new Set(names);
  for (let changed = true; changed; ) {
    changed = false;
    for (const node of calibrated.model.graph.node) {
      if (!node.name || float.has(node.name)) continue;
      const producers = node.input.flatMap((t) => index.producer.get(t) ?? []);
      const readers = node.output.flatMap((t) => index.consumersOf(t));
      if (
        producers.length > 0 &&
        readers.length > 0 &&
        producers.every((p) => p.name && float.has(p.name)) &&
        readers.every((r) => r.name && float.has(r.name))
      ) {
        float.add(node.name);
        changed = true;
      }
    }
  }
  return [...float];
}

/**
 * Mixed precision by measured sensitivity: ranks every quantized activation by the output
 * error it causes alone (sensitivity.ts), then keeps the k most sensitive tensors in float
 * for the smallest k (doubling, then bisection) whose full QDQ model meets the budget on
 * `data`. Errors of several tensors do not add up exactly, so every k is measured, and the
 * smallest k that was measured to meet the budget is kept; refining rounds then promote the
 * tensor that completed the budget and search again (see `refineRounds`).
 *
 * Float rather than 16-bit: onnxruntime 1.30's CPU provider accepts 16-bit Q/DQ (opset 21
 * and com.microsoft) but has no 16-bit Conv/MatMul kernels, so a 16-bit tensor makes its
 * readers run in float after an extra Q/DQ pass: as slow as float and less accurate.
 */
export async function quantizeMixed(
  calibrated: CalibratedModel,
  qdq: Partial<QdqOptions>,
  data: SampleSet,
  budget: FallbackBudget,
  options: Partial<MixedOptions> = {},
): Promise<MixedResult> {
  const o = { ...DEFAULT_MIXED_OPTIONS, ...options };
  const sensitivity =
    o.sensitivity ??
    (await tensorSensitivity(calibrated, qdq, data, {
      probeSamples: o.probeSamples,
      onProgress: o.onSensitivity,
    }));
  const reference = await firstOutputs(encodeModel(calibrated.model), data);
  const keptFor = (tensors: string[]) =>
    o.fillGaps ? fillFloatGaps(calibrated, floatGroup(calibrated, tensors)) : floatGroup(calibrated, tensors);
  const trace: [number, number][] = [];
  const search = (ranking: TensorSensitivity[]) =>
    searchPrefix(ranking, async (tensors) => {
      const kept = keptFor(tensors);
      const result = buildQdq(calibrated, { ...qdq, exclude: [...(qdq.exclude ?? []), ...kept] });
      const metrics = metricsOf(reference, await firstOutputs(encodeModel(result.model), data), data);
      trace.push([tensors.length, metrics.cosine]);
      o.onStep?.(tensors.length, metrics);
      return { kept, result, metrics, met: withinBudget(metrics, budget) };
    });
  let best = await search(sensitivity);
  let ranking = sensitivity;
  for (let round = 1; round <= o.refineRounds && best.met && best.k > 1; round++) {
    const promoted = ranking[best.k - 1];
    ranking = [promoted, ...ranking.filter((s) => s !== promoted)];
    o.onRefine?.(round, promoted.tensor);
    const next = await search(ranking);
    if (!next.met || next.kept.length >= best.kept.length) break;
    best = next;
  }
  return {
    ...best.result,
    floatTensors: best.tensors,
    keptFloat: best.kept,
    metrics: best.metrics,
    budgetMet: best.met,
    sensitivity,
    trace,
  };
}

interface PrefixChoice {
  k: number;
  tensors: string[];
  kept: string[];
  result: QdqResult;
  metrics: Record<string, number>;
  met: boolean;
}

/**
 * The smallest k (doubling, then bisection) for which keeping the first k tensors of
 * `ranking` in float meets the budget (as `measure` judges it); the best-scoring k when none does.
 */
async function searchPrefix(
  ranking: TensorSensitivity[],
  measure: (tensors: string[]) => Promise<Omit<PrefixChoice, 'k' | 'tensors'>>,
): Promise<PrefixChoice> {
  const results = new Map<number, PrefixChoice>();
  const evaluate = async (k: number) => {
    const known = results.get(k);
    if (known) return known;
    const tensors = ranking.slice(0, k).map((s) => s.tensor);
    const entry = { k, tensors, ...(await measure(tensors)) };
    results.set(k, entry);
    return entry;
  };
  const n = ranking.length;
  let lo = -1;
  let hi = -1;
  for (let k = 0; ; k = k === 0 ? 1 : Math.min(2 * k, n)) {
    if ((await evaluate(k)).met) {
      hi = k;
      break;
    }
    lo = k;
    if (k === n) break;
  }
  while (hi >= 0 && hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if ((await evaluate(mid)).met) hi = mid;
    else lo = mid;
  }
  if (hi >= 0) return results.get(hi)!;
  return [...results.values()].sort((a, b) => b.metrics.cosine - a.metrics.cosine)[0];
}
