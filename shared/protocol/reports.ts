import { z } from 'zod';
import { errorInfo, executionProviderSchema, finite, isoTime, nonNegative, sha256, v } from './primitives.js';

export const agentPhaseSchema = z.enum([
  'idle',
  'downloading',
  'installing',
  'benchmarking',
  'active',
  'failed',
]);
export type AgentPhase = z.infer<typeof agentPhaseSchema>;

/** What the agent reports after each step of converging on its target. */
export const stateReportSchema = z.object({
  v,
  targetVersion: z.number().int().nonnegative().nullable(),
  phase: agentPhaseSchema,
  activeModel: z.object({ modelId: z.string().max(128), sha256, version: z.number().int() }).nullable(),
  progress: z.number().min(0).max(1).nullable(),
  error: errorInfo.nullable(),
  at: isoTime,
  /** Epoch of `targetVersion` (see targetStateSchema). */
  epoch: z.number().int().nonnegative().optional(),
});
export type StateReport = z.infer<typeof stateReportSchema>;

export const benchReportSchema = z.object({
  v,
  modelId: z.string().max(128),
  sha256,
  ep: executionProviderSchema,
  runs: z.number().int().positive(),
  warmupRuns: z.number().int().nonnegative(),
  p50Ms: nonNegative,
  p90Ms: nonNegative,
  p99Ms: nonNegative,
  maxMs: nonNegative,
  meanMs: nonNegative,
  throughput: nonNegative,
  loadMs: nonNegative,
  at: isoTime,
  // Added in protocol 1.x; optional so older agents stay valid.
  peakRssBytes: nonNegative.optional(),
  /** CPU temperature right before and after the timed runs, °C (null: no sensor). */
  tempBeforeC: finite.nullable().optional(),
  tempAfterC: finite.nullable().optional(),
  /** The device was throttling (Pi: capped/throttled bits) during the run: latencies are suspect. */
  throttled: z.boolean().optional(),
  /** The shape each input was benchmarked at (issue 14); optional so older agents stay valid. */
  inputShapes: z.record(z.string().max(256), z.array(z.number().int()).max(16)).optional(),
  /**
   * Symbolic dimensions no serving shape resolved (`input:dim`): they were filled with the
   * agent's last-resort value, so the latencies describe a guessed shape.
   */
  unresolvedDims: z.array(z.string().max(320)).max(64).optional(),
  /** Golden-set spot check: cases run, largest |diff|, and top-1 accuracy when labels ship. */
  golden: z
    .object({
      cases: z.number().int().nonnegative(),
      maxAbsDiff: nonNegative,
      accuracy: z.number().min(0).max(1).nullable(),
      /** Smallest cosine similarity between expected and actual outputs over all cases. */
      cosine: z.number().min(-1).max(1).optional(),
    })
    .nullable()
    .optional(),
});
export type BenchReport = z.infer<typeof benchReportSchema>;

export const eventSchema = z.object({
  v,
  level: z.enum(['info', 'warn', 'error']),
  code: z.string().max(64),
  message: z.string().max(2000),
  at: isoTime,
});
export type EventMessage = z.infer<typeof eventSchema>;
