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
}

export const DEFAULT_LATENCY_OPTIONS: LatencyOptions = {
  runs: 50,
  warmup: 5,
  threads: 2,
  graphOptimizationLevel: 'all',
};

export interface LatencyResult {
  /** Median latency in milliseconds. */
  p50: number;
  /** Fastest run in milliseconds. */
  min: number;
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
        }),
      );
    }
    const feedsFor = (s: OrtSession) =>
      Object.fromEntries(s.inputNames.map((n, i) => [n, feeds[n] ?? Object.values(feeds)[i]]));
    for (let i = 0; i < o.warmup; i++) for (const s of sessions) await s.run(feedsFor(s));
    const times: number[][] = sessions.map(() => []);
    for (let i = 0; i < o.runs; i++) {
      for (let k = 0; k < sessions.length; k++) {
        const started = performance.now();
        await sessions[k].run(feedsFor(sessions[k]));
        times[k].push(performance.now() - started);
      }
    }
    return times.map((t) => ({ p50: median(t), min: Math.min(...t) }));
  } finally {
    for (const s of sessions) await s.release();
  }
}
