import { z } from 'zod';
import { sketchWireSchema } from '../sketch.js';
import { finite, isoTime, nonNegative, v } from './primitives.js';

export const latencyStatsSchema = z.object({
  count: z.number().int().nonnegative(),
  p50Ms: nonNegative,
  p90Ms: nonNegative,
  p99Ms: nonNegative,
  maxMs: nonNegative,
  meanMs: nonNegative,
});
export type LatencyStats = z.infer<typeof latencyStatsSchema>;

/**
 * Real traffic of one model release over one telemetry interval, from the agent's inference
 * service: every request counted, every successful one timed into DDSketches (ms).
 */
export const servingStatsSchema = z.object({
  /** Model name as served (`/v2/models/{name}`). */
  model: z.string().min(1).max(256),
  /** Release as served (`/versions/{version}`): the manifest version. */
  version: z.string().min(1).max(64),
  /** The cloud's model id of that release (manifest.modelId). */
  modelId: z.string().max(128).nullable(),
  requests: z.number().int().nonnegative(),
  /** Requests answered with an error (bad input or a runtime failure). */
  errors: z.number().int().nonnegative(),
  /** Arrival to response, ms. */
  totalMs: sketchWireSchema,
  /** Arrival to the start of the run (read, decode, batch wait), ms. */
  queueMs: sketchWireSchema,
  /** The onnxruntime run, ms. */
  computeMs: sketchWireSchema,
});
export type ServingStats = z.infer<typeof servingStatsSchema>;

export const telemetryRecordSchema = z.object({
  seq: z.number().int().nonnegative(),
  at: isoTime,
  cpuLoad: z.number().min(0).max(100),
  memUsedBytes: nonNegative,
  memTotalBytes: nonNegative,
  tempC: finite.nullable(),
  modelId: z.string().max(128).nullable(),
  latency: latencyStatsSchema.nullable(),
  // Added in protocol 1.x; optional so older agents stay valid.
  cpuLoadPerCore: z.array(z.number().min(0).max(100)).max(1024).optional(),
  diskFreeBytes: nonNegative.nullable().optional(),
  /** Pi vcgencmd get_throttled bits (0 under-voltage, 1 capped, 2 throttled, 3 soft limit, 16-19 occurred). */
  throttledBits: z.number().int().nonnegative().nullable().optional(),
  throttled: z.boolean().optional(),
  uptimeS: nonNegative.optional(),
  agentRssBytes: nonNegative.optional(),
  /** The agent's own CPU use since the last sample, percent of one core. */
  agentCpuPercent: nonNegative.optional(),
  modelVersion: z.number().int().nonnegative().nullable().optional(),
  /** Records the device's outbox has dropped so far because it was full (oldest first). */
  droppedTotal: z.number().int().nonnegative().optional(),
  /**
   * Real-traffic latency per served release since the previous record (issue 13). When present
   * with requests, `latency` is null: the probe only runs on devices without traffic.
   */
  serving: z.array(servingStatsSchema).max(64).optional(),
});
export type TelemetryRecord = z.infer<typeof telemetryRecordSchema>;

export const telemetryBatchSchema = z.object({ v, records: z.array(telemetryRecordSchema).min(1).max(1000) });
export type TelemetryBatch = z.infer<typeof telemetryBatchSchema>;

/**
 * Cloud -> agent on `.../telemetry/ack` after a batch is stored: the seq range of that batch
 * (first and last record). The agent deletes exactly that range from its outbox; a broker's
 * PUBACK alone does not prove the cloud has the records (nobody may be subscribed yet).
 */
export const telemetryAckSchema = z.object({
  v,
  from: z.number().int().nonnegative(),
  to: z.number().int().nonnegative(),
});
export type TelemetryAck = z.infer<typeof telemetryAckSchema>;
