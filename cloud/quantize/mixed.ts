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
  /** Called after each evaluated prefix: how many tensors were float and the metrics. */
  onStep?: (floatTensors: number, metrics: Record<string, number>) => void;
}

export const DEFAULT_MIXED_OPTIONS: MixedOptions = { probeSamples: 1, fillGaps: true };

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
 * smallest k that was measured to meet the budget is returned.
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
  const results = new Map<number, { result: QdqResult; metrics: Record<string, number>; met: boolean }>();
  const trace: [number, number][] = [];
  const evaluate = async (k: number) => {
    const known = results.get(k);
    if (known) return known;
    const tensors = sensitivity.slice(0, k).map((s) => s.tensor);
    const result = buildQdq(calibrated, {
      ...qdq,
      exclude: [...(qdq.exclude ?? []), ...keptFor(tensors)],
    });
    const metrics = metricsOf(reference, await firstOutputs(encodeModel(result.model), data), data);
    const entry = { result, metrics, met: withinBudget(metrics, budget) };
    results.set(k, entry);
    trace.push([k, metrics.cosine]);
    o.onStep?.(k, metrics);
    return entry;
  };
  const n = sensitivity.length;
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
  const k = hi >= 0 ? hi : [...results].sort((a, b) => b[1].metrics.cosine - a[1].metrics.cosine)[0][0];
  const chosen = results.get(k)!;
  const floatTensors = sensitivity.slice(0, k).map((s) => s.tensor);
  return {
    ...chosen.result,
    floatTensors,
    keptFloat: keptFor(floatTensors),
    metrics: chosen.metrics,
    budgetMet: chosen.met,
    sensitivity,
    trace,
  };
}
