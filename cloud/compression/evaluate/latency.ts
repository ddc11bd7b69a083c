import { createSession, type OrtSession, type OrtTensor } from '../runtime/ort.js';
import { median } from './metrics.js';

export interface LatencyOptions {
  /** Timed runs per model; default 50. */
  runs: number;
  /** Untimed runs per model first; default 5. */
  warmup: number;
  /** onnxruntime intra-op threads (same for every model); default 2. */
  threads: number;
  /** Graph optimisation level (same for every model); default 'all'. */
  graphOptimizationLevel: 'disabled' | 'basic' | 'extended' | 'all';
  /**
   * Let idle onnxruntime threads spin; default false. With runs interleaved, a session whose
   * threads still spin after its run takes the cores from the next model's run: on 2 cores the
   * same model then measured anywhere between 1× and 15× its time.
   */
  spinning: boolean;
  /**
   * Consecutive runs of one model before switching to the next; default 1. Larger blocks
   * with `spinning` keep a device's thread behaviour while only the first run of a block
   * meets the previous model's spinning threads.
   */
  block: number;
}

export const DEFAULT_LATENCY_OPTIONS: LatencyOptions = {
  runs: 50,
  warmup: 5,
  threads: 2,
  graphOptimizationLevel: 'all',
  spinning: false,
  block: 1,
};

export interface LatencyResult {
  /** Median latency in milliseconds. */
  p50: number;
  /** Fastest run in milliseconds. */
  min: number;
  /** Every timed run in milliseconds, in order (run i of each model was interleaved with run i of the others). */
  times: number[];
}

/**
 * p50 latency of several models on the same feeds with the same session options. Runs are
 * interleaved (A, B, A, B, ...) so that load from other processes hits every model alike;
 * ratios between the results are what to trust on a shared machine.
 */
export async function measureLatency(
  models: Uint8Array[],
  feeds: Record<string, OrtTensor>,
  options: Partial<LatencyOptions> = {},
): Promise<LatencyResult[]> {
  const o = { ...DEFAULT_LATENCY_OPTIONS, ...options };
  const sessions: OrtSession[] = [];
  try {
    for (const bytes of models) {
      sessions.push(
        await createSession(bytes, {
          intraOpThreads: o.threads,
          graphOptimizationLevel: o.graphOptimizationLevel,
          allowSpinning: o.spinning,
        }),
      );
    }
    const feedsFor = (s: OrtSession) =>
      Object.fromEntries(s.inputNames.map((n, i) => [n, feeds[n] ?? Object.values(feeds)[i]]));
    for (let i = 0; i < o.warmup; i++) for (const s of sessions) await s.run(feedsFor(s));
    const times: number[][] = sessions.map(() => []);
    const block = Math.max(1, o.block);
    for (let i = 0; i < o.runs; i += block) {
      for (let k = 0; k < sessions.length; k++) {
        for (let j = i; j < Math.min(i + block, o.runs); j++) {
          const started = performance.now();
          await sessions[k].run(feedsFor(sessions[k]));
          times[k].push(performance.now() - started);
        }
      }
    }
    return times.map((t) => ({ p50: median(t), min: Math.min(...t), times: t }));
  } finally {
    for (const s of sessions) await s.release();
  }
}
