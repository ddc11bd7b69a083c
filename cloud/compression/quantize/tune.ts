import { DEFAULT_LATENCY_OPTIONS, type LatencyOptions, measureLatency } from '../evaluate/latency.js';
import { median } from '../evaluate/metrics.js';
import { attrInt, GraphIndex } from '../onnx/graph.js';
import { encodeModel } from '../onnx/proto.js';
import type { ModelProto } from '../onnx/types.js';
import type { OrtTensor } from '../runtime/ort.js';
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
  /** Timed runs per model and round (interleaved with the current best); default 30. */
  runs: number;
  /**
   * Rounds per candidate, each in fresh sessions; default 3. A candidate already slower
   * than the best after one round is not measured further.
   */
  rounds: number;
  /** Batch size of the latency measurement; default 1. */
  batch: number;
  /** A candidate's median paired ratio must be below 1 − minGain (fraction); default 0.03. */
  minGain: number;
  /**
   * One-sided sign-test z score the candidate must reach: of n interleaved pairs it must win
   * at least n/2 + z·√n/2; default 2.33 (p ≈ 0.01). Keeps noise on a loaded machine from
   * returning ops to float.
   */
  zScore: number;
  /** Try all depthwise convolutions (group = channels > 1) in float as one candidate; default true. */
  depthwise: boolean;
  /**
   * Try the convolutions that read at most 4 channels (an image stem: 3 → 16 at full
   * resolution) in float as one candidate, with the activations only they feed; default true.
   * onnxruntime's int8 conv packs so few channels poorly: the PP-OCRv4 detector student's stem
   * took 3.1 ms as QLinearConv (plus a uint8 transpose of the input), 2.0 ms in float.
   */
  narrowInput: boolean;
  /**
   * Node names tried one at a time after the op types, each with the activations and pooling
   * only it feeds (floatChain); e.g. every Conv: an int8 conv with one input channel is ~6×
   * slower than onnxruntime's float NCHWc kernel; default none.
   */
  nodes: string[];
  /**
   * Wall-clock budget for all measurements, in seconds; candidates left when it runs out are
   * not measured (and stay int8); default 15. The PaddleOCR detector measured 40 s unbounded.
   */
  budgetSeconds: number;
  /** Timed runs per round are cut so one round of both models takes about this long; default 1. */
  roundSeconds: number;
  onCandidate?: (candidate: string, ratio: number, kept: boolean, detail: PairedComparison) => void;
}

export const DEFAULT_TUNE_OPTIONS: TuneOptions = {
  runs: 30,
  rounds: 3,
  batch: 1,
  minGain: 0.03,
  zScore: 2.33,
  depthwise: true,
  narrowInput: true,
  nodes: [],
  budgetSeconds: 15,
  roundSeconds: 1,
};

export interface PairedComparison {
  /** Median over interleaved pairs of candidate time / best time. */
  ratio: number;
  /** Pairs in which the candidate was faster, of `pairs`. */
  wins: number;
  pairs: number;
  /** Sign-test z score of the wins (positive: candidate faster). */
  z: number;
  /** Fastest candidate run / fastest best run (what each achieves when nothing interferes). */
  minRatio: number;
}

/**
 * Candidate against the current best: `rounds` interleaved measurements in fresh sessions,
 * judged on the paired per-run ratios (load from other processes hits both runs of a pair
 * alike), not on two medians taken at different moments.
 */
export async function comparePaired(
  candidate: Uint8Array,
  best: Uint8Array,
  feeds: Record<string, OrtTensor>,
  options: Pick<TuneOptions, 'runs' | 'rounds'> & { earlyStop?: boolean } & Partial<
      Pick<LatencyOptions, 'spinning' | 'block'>
    >,
): Promise<PairedComparison> {
  const ratios: number[] = [];
  let minA = Number.POSITIVE_INFINITY;
  let minB = Number.POSITIVE_INFINITY;
  for (let round = 0; round < options.rounds; round++) {
    const [a, b] = await measureLatency([candidate, best], feeds, {
      runs: options.runs,
      warmup: 3,
      spinning: options.spinning ?? DEFAULT_LATENCY_OPTIONS.spinning,
      block: options.block ?? DEFAULT_LATENCY_OPTIONS.block,
    });
    for (let i = 0; i < a.times.length; i++) ratios.push(a.times[i] / b.times[i]);
    minA = Math.min(minA, a.min);
    minB = Math.min(minB, b.min);
    if (round === 0 && options.earlyStop !== false && median(ratios) >= 1) break;
  }
  return judgePairs(ratios, minA / minB);
}

/**
 * The verdict on paired runs (candidate time / best time per pair): the median ratio and a sign
 * test of how often the candidate won. Pure, so the statistics are tested apart from timing.
 */
export function judgePairs(ratios: number[], minRatio: number): PairedComparison {
  const wins = ratios.filter((r) => r < 1).length;
  const n = ratios.length;
  return {
    ratio: median(ratios),
    wins,
    pairs: n,
    z: n === 0 ? 0 : (wins - n / 2) / (Math.sqrt(n) / 2),
    minRatio,
  };
}

/** Depthwise Conv nodes (one input channel per group) of a model. */
export function depthwiseConvs(model: ModelProto): string[] {
  const inits = new Map((model.graph.initializer ?? []).map((t) => [t.name, t]));
  return model.graph.node
    .filter((n) => {
      if (n.opType !== 'Conv' || !n.name) return false;
      const group = attrInt(n, 'group', 1);
      return group > 1 && inits.get(n.input[1])?.dims?.[1] === 1;
    })
    .map((n) => n.name!);
}

/** Group-1 Conv nodes that read at most `maxChannels` input channels (image stems). */
export function narrowInputConvs(model: ModelProto, maxChannels = 4): string[] {
  const inits = new Map((model.graph.initializer ?? []).map((t) => [t.name, t]));
  return model.graph.node
    .filter((n) => {
      if (n.opType !== 'Conv' || !n.name || attrInt(n, 'group', 1) !== 1) return false;
      const channels = Number(inits.get(n.input[1])?.dims?.[1] ?? 0);
      return channels > 0 && channels <= maxChannels;
    })
    .map((n) => n.name!);
}

/** Ops that follow a float node into float when it is tried alone (see convChain). */
const CHAIN_OPS = new Set(['Relu', 'Clip', 'MaxPool', 'LeakyRelu', 'HardSigmoid', 'Sigmoid']);

/**
 * A node plus the activations and pooling that only it feeds, in order: keeping a conv in
 * float alone leaves its Relu as a Q and its MaxPool in uint8 NCHW, which onnxruntime runs
 * ~12× slower than the float or NHWC form (MNIST CNN: 1.3 ms of 2.4), so the candidate
 * moves the whole chain to float and quantizes once, where the next integer op starts.
 */
export function floatChain(model: ModelProto, name: string): string[] {
  const index = new GraphIndex(model.graph);
  let node = model.graph.node.find((n) => n.name === name);
  const chain: string[] = [];
  while (node?.name) {
    chain.push(node.name);
    const readers = index.consumersOf(node.output[0]);
    if (readers.length !== 1 || index.graphOutputs.has(node.output[0])) break;
    node = CHAIN_OPS.has(readers[0].opType) ? readers[0] : undefined;
  }
  return chain;
}

/**
 * Decides for the narrow-input convs together, per op type, for all depthwise convs together,
 * then per named node whether
 * keeping it in float is faster than its integer form, by building both and measuring them
 * interleaved with the same session options (greedy, one candidate at a time). A candidate
 * is kept only when it is faster by `minGain` and significantly so (sign test over the
 * paired runs of several rounds). Returns the fastest variant and what was left in float.
 */
export async function tuneForLatency(
  calibrated: CalibratedModel,
  qdq: Partial<QdqOptions>,
  data: SampleSet,
  options: Partial<TuneOptions> = {},
): Promise<QdqResult & { floatByMeasurement: string[]; notMeasured: string[] }> {
  const started = performance.now();
  const o = { ...DEFAULT_TUNE_OPTIONS, ...options };
  const feeds = { [calibrated.model.graph.input?.[0]?.name ?? 'input']: batchTensor(data, 0, o.batch) };
  const excludeOps = [...(qdq.excludeOps ?? [])];
  const exclude = [...(qdq.exclude ?? [])];
  let best = buildQdq(calibrated, { ...qdq, excludeOps, exclude });
  let bestBytes = encodeModel(best.model);
  const [probe] = await measureLatency([bestBytes], feeds, { runs: 3, warmup: 1 });
  const runs = Math.max(8, Math.min(o.runs, Math.floor((o.roundSeconds * 1000) / (2 * probe.p50))));
  const chosen: string[] = [];
  const notMeasured: string[] = [];
  const tryCandidate = async (label: string, ops: string[], nodes: string[]) => {
    if ((performance.now() - started) / 1000 > o.budgetSeconds) {
      notMeasured.push(label);
      return;
    }
    const candidate = buildQdq(calibrated, {
      ...qdq,
      excludeOps: [...excludeOps, ...ops],
      exclude: [...exclude, ...nodes],
    });
    const bytes = encodeModel(candidate.model);
    const c = await comparePaired(bytes, bestBytes, feeds, { ...o, runs });
    const kept = c.ratio < 1 - o.minGain && c.z >= o.zScore;
    o.onCandidate?.(label, c.ratio, kept, c);
    if (!kept) return;
    excludeOps.push(...ops);
    exclude.push(...nodes);
    chosen.push(label);
    best = candidate;
    bestBytes = bytes;
  };
  // First, as one cheap candidate that saves much where it applies (before the budget runs out).
  const narrow = o.narrowInput ? narrowInputConvs(calibrated.model).filter((n) => !exclude.includes(n)) : [];
  if (narrow.length > 0) {
    const chains = [...new Set(narrow.flatMap((n) => floatChain(calibrated.model, n)))];
    await tryCandidate(`narrow-input Conv ×${narrow.length}`, [], chains);
  }
  const present = new Set(calibrated.model.graph.node.map((n) => n.opType));
  for (const op of TUNABLE_OPS) {
    if (present.has(op) && !excludeOps.includes(op)) await tryCandidate(op, [op], []);
  }
  const depthwise = o.depthwise ? depthwiseConvs(calibrated.model).filter((n) => !exclude.includes(n)) : [];
  if (depthwise.length > 0) await tryCandidate(`depthwise Conv ×${depthwise.length}`, [], depthwise);
  for (const name of o.nodes) {
    const chain = floatChain(calibrated.model, name).filter((n) => !exclude.includes(n));
    if (chain.length > 0) await tryCandidate(chain.join('+'), [], chain);
  }
  return { ...best, floatByMeasurement: chosen, notMeasured };
}
