import { measureLatency } from '../evaluate/latency.js';
import { encodeModel } from '../onnx/proto.js';
import { batchTensor, type SampleSet } from './calibrate/data.js';
import { buildQdq, type CalibratedModel, type QdqOptions, type QdqResult } from './static.js';

/** Ops whose integer form may cost more than it saves (layout changes, slow kernels). */
export const TUNABLE_OPS = [
  'MaxPool',
  'Resize',
  'Sigmoid',
  'Softmax',
  'Concat',
  'GlobalAveragePool',
  'AveragePool',
  'ConvTranspose',
  'Mul',
  'Add',
];

export interface TuneOptions {
  /** Timed runs per candidate (interleaved with the current best); default 30. */
  runs: number;
  /** Batch size of the latency measurement; default 1. */
  batch: number;
  /** A candidate must be at least this much faster to be kept (fraction); default 0.03. */
  minGain: number;
  /**
   * Node names tried one at a time after the op types (e.g. every Conv: an int8 conv with few
   * input channels can be slower than onnxruntime's float NCHWc kernel); default none.
   */
  nodes: string[];
  onCandidate?: (op: string, ratio: number, kept: boolean) => void;
}

export const DEFAULT_TUNE_OPTIONS: TuneOptions = { runs: 30, batch: 1, minGain: 0.03, nodes: [] };

/**
 * Decides per op type whether keeping it in float is faster than its integer form, by
 * building both and measuring them interleaved with the same session options (greedy, one op
 * type at a time). Returns the fastest variant and the op types left in float.
 */
export async function tuneForLatency(
  calibrated: CalibratedModel,
  qdq: Partial<QdqOptions>,
  data: SampleSet,
  options: Partial<TuneOptions> = {},
): Promise<QdqResult & { floatByMeasurement: string[] }> {
  const o = { ...DEFAULT_TUNE_OPTIONS, ...options };
  const feeds = { [calibrated.model.graph.input?.[0]?.name ?? 'input']: batchTensor(data, 0, o.batch) };
  const excluded = [...(qdq.excludeOps ?? [])];
  let best = buildQdq(calibrated, { ...qdq, excludeOps: excluded });
  let bestBytes = encodeModel(best.model);
  const present = new Set(calibrated.model.graph.node.map((n) => n.opType));
  const chosen: string[] = [];
  for (const op of TUNABLE_OPS) {
    if (!present.has(op) || excluded.includes(op)) continue;
    const candidate = buildQdq(calibrated, { ...qdq, excludeOps: [...excluded, op] });
    const bytes = encodeModel(candidate.model);
    const [a, b] = await measureLatency([bytes, bestBytes], feeds, { runs: o.runs, warmup: 3 });
    const ratio = a.p50 / b.p50;
    const kept = ratio < 1 - o.minGain;
    o.onCandidate?.(op, ratio, kept);
    if (kept) {
      excluded.push(op);
      chosen.push(op);
      best = candidate;
      bestBytes = bytes;
    }
  }
  const excludedNodes = [...(qdq.exclude ?? [])];
  for (const name of o.nodes) {
    if (excludedNodes.includes(name)) continue;
    const candidate = buildQdq(calibrated, {
      ...qdq,
      excludeOps: excluded,
      exclude: [...excludedNodes, name],
    });
    const bytes = encodeModel(candidate.model);
    const [a, b] = await measureLatency([bytes, bestBytes], feeds, { runs: o.runs, warmup: 3 });
    const ratio = a.p50 / b.p50;
    const kept = ratio < 1 - o.minGain;
    o.onCandidate?.(name, ratio, kept);
    if (kept) {
      excludedNodes.push(name);
      chosen.push(name);
      best = candidate;
      bestBytes = bytes;
    }
  }
  return { ...best, floatByMeasurement: chosen };
}
