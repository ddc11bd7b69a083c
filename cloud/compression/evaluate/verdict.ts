/**
 * "Never ship slower": a quantized model against its FP32 original, whole model, same feeds,
 * same session options, block-alternating runs with onnxruntime threads not spinning.
 */
import { createRng, gaussian } from '../../../shared/random.js';
import { decodeModel } from '../onnx/proto.js';
import { DataType } from '../onnx/types.js';
import { intraOpThreadsFor, type OrtTensor, ort } from '../runtime/ort.js';
import { measureLatency } from './latency.js';
import { median } from './metrics.js';

export interface VerdictOptions {
  /** Batch size of the measurement; default 1 (the profile's `batch` or `--batch N`). */
  batch: number;
  /** onnxruntime intra-op threads; default 0 = this machine's cores. */
  threads: number;
  /** Consecutive runs of one model before switching to the other; default 5. */
  block: number;
  /** Wall-clock time the timed runs aim at, in seconds; default 3. */
  seconds: number;
  /** Timed runs per model are kept between these; defaults 10 and 200. */
  minRuns: number;
  maxRuns: number;
  /** INT8 counts as faster only below (1 − minGain) × FP32 latency; default 0.03. */
  minGain: number;
  /**
   * …and only when it won significantly more paired runs than it lost: a one-sided sign test
   * with this z score (default 2.33, p ≈ 0.01, as the latency tuner uses), so that load from
   * other processes does not make a tiny model's INT8 form "faster".
   */
  zScore: number;
}

export const DEFAULT_VERDICT_OPTIONS: VerdictOptions = {
  batch: 1,
  threads: 0,
  block: 5,
  seconds: 3,
  minRuns: 10,
  maxRuns: 200,
  minGain: 0.03,
  zScore: 2.33,
};

export interface SpeedVerdict {
  batch: number;
  threads: number;
  /** Median latency of one run at `batch`, ms. */
  fp32Ms: number;
  int8Ms: number;
  /** int8Ms / fp32Ms. */
  latencyRatio: number;
  /** Runs (of `runs`) in which the quantized model was faster than the FP32 run paired with it. */
  wins: number;
  runs: number;
  verdict: 'faster' | 'not-faster';
}

/**
 * Feeds at batch `batch` for every real input of a model: float inputs from `sample` (rows
 * repeated until the batch is full) or seeded noise; other dims fixed by the model, symbolic
 * non-batch dims 1; integer inputs zeros.
 */
export function benchmarkFeeds(
  bytes: Uint8Array,
  batch: number,
  sample?: { x: Float32Array; count: number; sampleShape: number[] },
): Record<string, OrtTensor> {
  const model = decodeModel(bytes);
  const initializers = new Set((model.graph.initializer ?? []).map((t) => t.name));
  const feeds: Record<string, OrtTensor> = {};
  for (const [i, input] of (model.graph.input ?? []).filter((v) => !initializers.has(v.name)).entries()) {
    const tensor = input.type?.tensorType;
    const declared = (tensor?.shape?.dim ?? []).map((d, k) =>
      k === 0 ? batch : Number(d.dimValue ?? 0) || 1,
    );
    const elem = tensor?.elemType ?? DataType.FLOAT;
    if (elem === DataType.INT64) {
      const n = declared.reduce((a, b) => a * b, 1);
      feeds[input.name] = new ort.Tensor('int64', new BigInt64Array(n), declared);
      continue;
    }
    const shape = i === 0 && sample ? [batch, ...sample.sampleShape] : declared;
    const n = shape.reduce((a, b) => a * b, 1);
    const values = new Float32Array(n);
    if (i === 0 && sample && sample.count > 0) {
      const size = sample.x.length / sample.count;
      for (let r = 0; r < batch; r++)
        values.set(sample.x.subarray((r % sample.count) * size, ((r % sample.count) + 1) * size), r * size);
    } else {
      const rng = createRng(7);
      for (let k = 0; k < n; k++) values[k] = gaussian(rng);
    }
    feeds[input.name] = new ort.Tensor('float32', values, shape);
  }
  return feeds;
}

/** The verdict from paired times (pure, so the rule is tested apart from timing). */
export function judgeSpeed(
  fp32Times: readonly number[],
  int8Times: readonly number[],
  minGain: number,
  zScore = DEFAULT_VERDICT_OPTIONS.zScore,
): Pick<SpeedVerdict, 'fp32Ms' | 'int8Ms' | 'latencyRatio' | 'wins' | 'runs' | 'verdict'> {
  const fp32Ms = median([...fp32Times]);
  const int8Ms = median([...int8Times]);
  const latencyRatio = int8Ms / fp32Ms;
  const runs = Math.min(fp32Times.length, int8Times.length);
  let wins = 0;
  for (let i = 0; i < runs; i++) if (int8Times[i] < fp32Times[i]) wins++;
  const significant = wins > runs / 2 && wins >= runs / 2 + (zScore * Math.sqrt(runs)) / 2;
  const verdict = latencyRatio < 1 - minGain && significant ? 'faster' : 'not-faster';
  return { fp32Ms, int8Ms, latencyRatio, wins, runs, verdict };
}

/** Measures `quantized` against `float` on the same feeds and says whether it is faster. */
export async function measureSpeedVerdict(
  float: Uint8Array,
  quantized: Uint8Array,
  feeds: Record<string, OrtTensor>,
  options: Partial<VerdictOptions> = {},
): Promise<SpeedVerdict> {
  const [verdict] = await measureSpeedVerdicts(float, [quantized], feeds, options);
  return verdict;
}

/**
 * Several candidates against one FP32 model in the same block-alternating measurement (FP32,
 * candidate 1, candidate 2, …, FP32, …), each judged on its runs paired with FP32's: load
 * from other processes hits every model alike, so the candidates can be compared too.
 */
export async function measureSpeedVerdicts(
  float: Uint8Array,
  candidates: readonly Uint8Array[],
  feeds: Record<string, OrtTensor>,
  options: Partial<VerdictOptions> = {},
): Promise<SpeedVerdict[]> {
  const o = { ...DEFAULT_VERDICT_OPTIONS, ...options };
  const threads = intraOpThreadsFor(o.threads);
  const session = { threads, spinning: false, graphOptimizationLevel: 'all' as const };
  const models = [float, ...candidates];
  const probe = await measureLatency(models, feeds, { ...session, runs: 2, warmup: 1 });
  const perRound = probe.reduce((sum, p) => sum + p.p50, 0);
  const fit = Math.floor((o.seconds * 1000) / Math.max(perRound, 1e-3));
  const runs = Math.max(o.minRuns, Math.min(o.maxRuns, Math.ceil(fit / o.block) * o.block));
  const [fp32, ...measured] = await measureLatency(models, feeds, {
    ...session,
    runs,
    warmup: 3,
    block: o.block,
  });
  return measured.map((m) => ({
    batch: o.batch,
    threads,
    ...judgeSpeed(fp32.times, m.times, o.minGain, o.zScore),
  }));
}

/**
 * The verdict on a latency ratio measured elsewhere (e.g. the compression report's
 * interleaved evaluation): 'faster' only below 1 − minGain; null when nothing was measured.
 */
export function verdictOf(
  latencyRatio: number | null | undefined,
  minGain = DEFAULT_VERDICT_OPTIONS.minGain,
): SpeedVerdict['verdict'] | null {
  if (latencyRatio == null || !Number.isFinite(latencyRatio)) return null;
  return latencyRatio < 1 - minGain ? 'faster' : 'not-faster';
}
