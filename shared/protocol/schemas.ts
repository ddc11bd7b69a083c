import { z } from 'zod';
import { sketchWireSchema } from '../sketch.js';

/** Protocol version carried by every payload; a receiver refuses versions it does not know. */
export const PROTOCOL_VERSION = 1;
const v = z.literal(PROTOCOL_VERSION);

const sha256 = z.string().regex(/^[0-9a-f]{64}$/, 'expected a lowercase hex SHA-256');
const deviceId = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/);
const finite = z.number().finite();
const nonNegative = finite.nonnegative();
const isoTime = z.string().datetime({ offset: true });
const errorInfo = z.object({ code: z.string().max(64), message: z.string().max(2000) });

export const executionProviderSchema = z.enum(['cpu', 'cuda', 'tensorrt', 'coreml', 'dml', 'webgpu']);
export type ExecutionProvider = z.infer<typeof executionProviderSchema>;

/** What the agent reads of its hardware at enrollment. */
export const hardwareFactsSchema = z.object({
  hostname: z.string().max(255),
  arch: z.string().max(32),
  platform: z.string().max(32),
  cpuModel: z.string().max(255),
  cpuCores: z.number().int().positive(),
  memoryBytes: nonNegative,
  gpu: z.string().max(255).nullable(),
  executionProviders: z.array(executionProviderSchema).max(8),
  onnxruntimeVersion: z.string().max(32),
  nodeVersion: z.string().max(32),
  cpuFlags: z.array(z.string().max(32)).max(512).optional(),
});
export type HardwareFacts = z.infer<typeof hardwareFactsSchema>;

export const enrollRequestSchema = z.object({
  v,
  requestId: deviceId,
  token: z.string().min(8).max(256),
  agentVersion: z.string().max(32),
  hardware: hardwareFactsSchema,
});
export type EnrollRequest = z.infer<typeof enrollRequestSchema>;

export const enrollReplySchema = z.discriminatedUnion('ok', [
  z.object({
    v,
    ok: z.literal(true),
    deviceId,
    secret: z.string().min(16).max(256),
    profile: z.string().max(64).nullable(),
    fleetPublicKey: z.string().max(4096).optional(),
  }),
  z.object({ v, ok: z.literal(false), error: errorInfo }),
]);
export type EnrollReply = z.infer<typeof enrollReplySchema>;

export const statusSchema = z.object({ v, online: z.boolean(), at: isoTime });
export type StatusMessage = z.infer<typeof statusSchema>;

const tensorSpec = z.object({
  name: z.string().max(256),
  shape: z.array(z.union([z.number().int(), z.string().max(64)])).max(16),
  type: z.string().max(16),
});

/** Concrete dims per input name: every dim a positive integer. */
export const servingShapesSchema = z.record(
  z.string().max(256),
  z
    .array(
      z
        .number()
        .int()
        .positive()
        .max(1 << 20),
    )
    .max(16),
);
export type ServingShapes = z.infer<typeof servingShapesSchema>;

/** Everything the agent needs to fetch, verify and run one model artifact. */
export const manifestSchema = z.object({
  modelId: z.string().max(128),
  name: z.string().max(256),
  variant: z.string().max(64),
  version: z.number().int().nonnegative(),
  sha256,
  size: z.number().int().positive(),
  blockSize: z
    .number()
    .int()
    .min(256)
    .max(1 << 20),
  profile: z.string().max(64).nullable(),
  inputs: z.array(tensorSpec).max(64),
  outputs: z.array(tensorSpec).max(64),
  golden: z
    .object({ sha256, size: z.number().int().positive(), tolerance: nonNegative })
    .nullable()
    .optional(),
  /**
   * The concrete shape each input is served at (input name -> dims), for models with symbolic
   * dimensions: the agent benchmarks, probes and describes the model at this shape. Optional
   * (issue 14) so that manifests without it stay valid.
   */
  servingShapes: servingShapesSchema.optional(),
  issuedAt: isoTime,
  expiresAt: isoTime.nullable(),
});
export type Manifest = z.infer<typeof manifestSchema>;

/** The retained target state the cloud publishes for one device; `version` only grows. */
export const targetStateSchema = z.object({
  v,
  deviceId,
  version: z.number().int().nonnegative(),
  model: z.object({ manifest: manifestSchema, signature: z.string().max(512).nullable() }).nullable(),
  issuedAt: isoTime,
});
export type TargetState = z.infer<typeof targetStateSchema>;

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
});
export type StateReport = z.infer<typeof stateReportSchema>;

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

/** Max block indices in one request: bounds the reply burst a device can ask for. */
export const DEFAULT_BLOCK_SIZE = 64 * 1024;
export const MAX_BLOCKS_PER_REQUEST = 256;

export const transferRequestSchema = z.object({
  v,
  sha256,
  blocks: z.array(z.number().int().nonnegative()).min(1).max(MAX_BLOCKS_PER_REQUEST),
  /** Block size the agent splits the artifact by (the manifest's, capped under its broker's limit); default 64 KiB. */
  blockSize: z
    .number()
    .int()
    .min(256)
    .max(1 << 20)
    .optional(),
});
export type TransferRequest = z.infer<typeof transferRequestSchema>;

export const blockHeaderSchema = z.object({
  v,
  sha256,
  index: z.number().int().nonnegative(),
  total: z.number().int().positive(),
  blockSha256: sha256.optional(),
  error: errorInfo.optional(),
});
export type BlockHeader = z.infer<typeof blockHeaderSchema>;
