import { performance } from 'node:perf_hooks';
import { FleetError } from '../../shared/errors/index.js';
import type { ExecutionProvider, LatencyStats, ServingShapes } from '../../shared/protocol/index.js';
import { createRng } from '../../shared/random.js';
import { resolveInputShape } from '../../shared/serving-shape.js';
import {
  createSession,
  inputInfo,
  makeTensor,
  type OrtFeeds,
  type OrtSession,
  type SessionProfile,
  type TensorInfo,
} from '../runtime/ort.js';
import { readThermal } from '../telemetry/thermal.js';
import { latencyStats } from './stats.js';

export interface BenchmarkOptions {
  /** Untimed runs first (caches, allocator, lazy kernels). Default 5. */
  warmupRuns?: number;
  /** Timed runs, upper bound. Default 50. */
  runs?: number;
  /** Time budget for the timed runs, ms; stops at runs or budget, whichever first. Default 10 000. */
  budgetMs?: number;
  /** Concrete shape for every input (overrides the model's dims). Default none. */
  shape?: readonly number[];
  /** The model's serving shapes (input name -> dims), from its manifest. Default none. */
  servingShapes?: ServingShapes;
  /**
   * Last resort for symbolic dims that neither `shape` nor `servingShapes` resolve; such dims are
   * reported in `unresolvedDims`. Default 1.
   */
  dynamicDim?: number;
  /** Seed for the random inputs. Default 1. */
  seed?: number;
}

export const DEFAULT_BENCHMARK_OPTIONS = {
  warmupRuns: 5,
  runs: 50,
  budgetMs: 10_000,
  dynamicDim: 1,
  seed: 1,
};

export interface BenchmarkResult extends LatencyStats {
  ep: ExecutionProvider;
  runs: number;
  warmupRuns: number;
  /** Inferences per second over the timed runs. */
  throughput: number;
  /** Session creation time, ms (0 when the session was given). */
  loadMs: number;
  /** Peak resident set of the process so far, bytes. */
  peakRssBytes: number;
  /** CPU temperature before warm-up and after the timed runs, °C; null without a sensor. */
  tempBeforeC: number | null;
  tempAfterC: number | null;
  /** Throttling or a capped clock before or after the run: the latencies are suspect. */
  throttled: boolean;
  /** The dims each input ran at. */
  inputShapes: Record<string, number[]>;
  /** Symbolic dims filled with the last-resort `dynamicDim` (`input:dim`); empty when all resolved. */
  unresolvedDims: string[];
}

export interface FeedPlan {
  shapes: Record<string, number[]>;
  unresolved: string[];
}

export function resolveShape(info: TensorInfo, options: BenchmarkOptions): number[] {
  return resolveInput(info, options).dims;
}

function resolveInput(info: TensorInfo, options: BenchmarkOptions): { dims: number[]; unresolved: string[] } {
  if (options.shape) {
    const fixed = info.shape.filter((d): d is number => typeof d === 'number' && d > 0);
    if (fixed.length === info.shape.length && info.shape.length !== options.shape.length) {
      throw new FleetError(
        'ONNX_SHAPE',
        `input ${info.name} has rank ${info.shape.length}, --shape gives ${options.shape.length}`,
        { input: info.name },
      );
    }
    return { dims: [...options.shape], unresolved: [] };
  }
  const dyn = options.dynamicDim ?? DEFAULT_BENCHMARK_OPTIONS.dynamicDim;
  return resolveInputShape(info, options.servingShapes, dyn);
}

/** The dims every input runs at, and which symbolic dims only the last resort filled. */
export function planFeeds(session: OrtSession, options: BenchmarkOptions = {}): FeedPlan {
  const plan: FeedPlan = { shapes: {}, unresolved: [] };
  for (const info of inputInfo(session)) {
    const { dims, unresolved } = resolveInput(info, options);
    plan.shapes[info.name] = dims;
    plan.unresolved.push(...unresolved);
  }
  return plan;
}

/** Random inputs from the model's input metadata. */
export function randomFeeds(session: OrtSession, options: BenchmarkOptions = {}): OrtFeeds {
  const rng = createRng(options.seed ?? DEFAULT_BENCHMARK_OPTIONS.seed);
  const plan = planFeeds(session, options);
  const feeds: OrtFeeds = {};
  for (const info of inputInfo(session)) {
    const dims = plan.shapes[info.name];
    const n = dims.reduce((a, b) => a * b, 1);
    feeds[info.name] = makeTensor(info.type, randomData(info, n, rng), dims);
  }
  return feeds;
}

function randomData(info: TensorInfo, n: number, rng: () => number) {
  switch (info.type) {
    case 'float32':
      return Float32Array.from({ length: n }, () => rng());
    case 'float64':
      return Float64Array.from({ length: n }, () => rng());
    case 'int64':
      return BigInt64Array.from({ length: n }, () => BigInt(Math.floor(rng() * 8)));
    case 'int32':
      return Int32Array.from({ length: n }, () => Math.floor(rng() * 8));
    case 'uint8':
      return Uint8Array.from({ length: n }, () => Math.floor(rng() * 256));
    case 'int8':
      return Int8Array.from({ length: n }, () => Math.floor(rng() * 256) - 128);
    case 'bool':
      return Uint8Array.from({ length: n }, () => (rng() < 0.5 ? 1 : 0));
    default:
      throw new FleetError(
        'ONNX_SHAPE',
        `input ${info.name} has type ${info.type}, which the benchmark cannot fill`,
        {
          input: info.name,
        },
      );
  }
}

/** Warm-up, then timed runs until `runs` or `budgetMs`. */
export async function runBenchmark(
  session: OrtSession,
  ep: ExecutionProvider,
  options: BenchmarkOptions = {},
  feeds?: OrtFeeds,
): Promise<BenchmarkResult> {
  const o = { ...DEFAULT_BENCHMARK_OPTIONS, ...options };
  // Given feeds are the caller's choice of shape; generated ones may rest on the last resort.
  const plan: FeedPlan = feeds
    ? { shapes: Object.fromEntries(Object.entries(feeds).map(([k, t]) => [k, [...t.dims]])), unresolved: [] }
    : planFeeds(session, options);
  const inputs = feeds ?? randomFeeds(session, options);
  const before = await readThermal();
  try {
    for (let i = 0; i < o.warmupRuns; i++) await session.run(inputs);
    const samples: number[] = [];
    const start = performance.now();
    while (samples.length < o.runs && (samples.length === 0 || performance.now() - start < o.budgetMs)) {
      const t0 = performance.now();
      await session.run(inputs);
      samples.push(performance.now() - t0);
    }
    const total = samples.reduce((a, b) => a + b, 0);
    const after = await readThermal();
    const isThrottled = (t: typeof before) =>
      Boolean(t.throttle && (t.throttle.throttled || t.throttle.frequencyCapped));
    return {
      tempBeforeC: before.tempC,
      tempAfterC: after.tempC,
      throttled: isThrottled(before) || isThrottled(after),
      ...latencyStats(samples),
      ep,
      runs: samples.length,
      warmupRuns: o.warmupRuns,
      throughput: total > 0 ? Math.round((samples.length / (total / 1000)) * 100) / 100 : 0,
      loadMs: 0,
      peakRssBytes: process.resourceUsage().maxRSS * 1024,
      inputShapes: plan.shapes,
      unresolvedDims: plan.unresolved,
    };
  } catch (error) {
    if (error instanceof FleetError) throw error;
    throw new FleetError('RUNTIME_RUN', `onnxruntime failed while benchmarking: ${(error as Error).message}`);
  }
}

/** Loads a model (timing the load) and benchmarks it; releases the session afterwards. */
export async function benchmarkModel(
  model: string | Uint8Array,
  profile: SessionProfile & { ep: ExecutionProvider },
  options: BenchmarkOptions = {},
): Promise<BenchmarkResult> {
  const t0 = performance.now();
  const session = await createSession(model, profile);
  const loadMs = performance.now() - t0;
  try {
    const result = await runBenchmark(session, profile.ep, options);
    return { ...result, loadMs: Math.round(loadMs * 100) / 100 };
  } finally {
    await session.release();
  }
}
