import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { FleetError } from '../shared/errors/index.js';
import { type BatchingConfig, parseBatching } from './serve/batch-policy.js';

/**
 * Agent configuration. Sources, later ones winning: AGENT_DEFAULTS < JSON config file
 * (--config / FLEETML_CONFIG) < environment (FLEETML_<SCREAMING_SNAKE_KEY>, e.g.
 * FLEETML_TELEMETRY_INTERVAL_S=5) < command-line flags. Validated once on start.
 */
export const AGENT_DEFAULTS = {
  /** MQTT URL of the cloud's broker (mqtt://host:port, mqtts://...). No default: required. */
  cloudUrl: '',
  /** One-time enrollment token; needed only until the device holds an identity. */
  enrollToken: '',
  /** Directory for identity, state, model slots, transfers and the telemetry outbox. */
  dataDir: '.fleetml/agent',
  /** Seconds between telemetry samples. */
  telemetryIntervalS: 10,
  /** Most records per telemetry batch message. */
  telemetryBatchMax: 100,
  /**
   * When telemetry may leave the outbox: 'cloud' = on the cloud's telemetry/ack (exactly what it
   * stored), 'broker' = on the broker's PUBACK (for a cloud without acks), 'auto' = 'broker' until
   * the first cloud ack is seen, then 'cloud' for good. Default 'cloud': every fleetml cloud
   * acknowledges, and under 'auto' a new device's first records, or any record sent while the
   * cloud is not subscribed (an external broker restarted before the cloud reconnected), are
   * deleted on a PUBACK that proves nothing and are lost.
   */
  telemetryAck: 'cloud' as 'auto' | 'cloud' | 'broker',
  /** Resend telemetry the cloud has not acknowledged after this many ms. */
  telemetryAckTimeoutMs: 10_000,
  /** Most records kept in the on-device outbox; the oldest go first when full. */
  outboxMaxRecords: 10_000,
  /** Largest block the agent asks for, bytes (64 KiB); clamped under brokerMaxPayloadBytes. */
  blockSize: 65_536,
  /** Largest MQTT payload the broker accepts, bytes (256 MiB is MQTT's own limit; mosquitto's default). */
  brokerMaxPayloadBytes: 268_435_455,
  /**
   * Blocks in flight at once during a transfer (64 x 64 KiB = 4 MiB): enough to cover the
   * request round trip at >= 50 MB/s on a busy host (scripts/bench/transfer.ts); a dropped
   * link costs at most this many blocks again.
   */
  windowBlocks: 64,
  /** Re-request a block not received within this many milliseconds. */
  blockTimeoutMs: 3_000,
  /** Give up a transfer attempt after this many ms without any block arriving. */
  transferStallMs: 30_000,
  /** Warm-up runs before timing. */
  benchWarmupRuns: 5,
  /** Timed runs (upper bound). */
  benchRuns: 50,
  /** Time budget for timed runs, ms; the benchmark stops at whichever of runs/budget comes first. */
  benchBudgetMs: 10_000,
  /** Execution provider: 'auto' picks TensorRT -> CUDA -> CPU from what loads. */
  ep: 'auto' as 'auto' | 'cpu' | 'cuda' | 'tensorrt',
  /** onnxruntime intra-op threads; 0 = onnxruntime's choice. */
  intraOpThreads: 0,
  /** onnxruntime graph optimisation level. */
  graphOptimizationLevel: 'all' as 'disabled' | 'basic' | 'extended' | 'all',
  /**
   * Last resort for symbolic input dimensions that the model's serving shape (its manifest's
   * `servingShapes`, set by `models add --shape`) leaves open. Such a benchmark is reported with
   * `unresolvedDims` and a SHAPE_UNRESOLVED warning event: its latency describes a guessed shape.
   */
  dynamicDim: 1,
  /**
   * A new model is first loaded and run once in a child process, killed after this many ms
   * (RUNTIME_TIMEOUT: the model is refused, the old one stays); 0 = load it straight into the
   * agent, where a model that hangs onnxruntime hangs the agent (trusted models only).
   */
  modelCheckTimeoutMs: 120_000,
  /** Inferences the latency probe runs on the active model per telemetry interval; 0 = off. */
  latencyProbeRuns: 10,
  /**
   * Time budget of one latency probe, ms; it stops at whichever of runs/budget comes first.
   * 250 ms per 10 s interval caps the probe at 2.5 % of one core even for a heavy model.
   */
  latencyProbeBudgetMs: 250,
  /** Run the local inference service (Open Inference Protocol v2 over HTTP). */
  serve: true,
  /**
   * Address the inference service listens on. Loopback by default: nothing beyond the device
   * can call it. Any other address needs serveToken.
   */
  serveHost: '127.0.0.1',
  /** TCP port of the inference service (Triton's default HTTP port); 0 = a free one. */
  servePort: 8000,
  /** Unix socket path the inference service also listens on ('' = none). */
  serveSocket: '',
  /** Bearer token required on every inference request ('' = none; required beyond loopback). */
  serveToken: '',
  /** Largest inference request body, bytes (64 MiB). */
  serveMaxBodyBytes: 64 * 1024 * 1024,
  /**
   * Dynamic batching per model name (default {} = off): concurrent requests for one release are
   * merged into one onnxruntime run of at most maxBatch rows, waiting at most maxQueueDelayMs
   * (default 2) for each other; only for models whose inputs' first dimension is symbolic.
   * Config file: {"mnist-mlp": {"maxBatch": 8, "maxQueueDelayMs": 2}}; env and flags:
   * "mnist-mlp=8:2,ocr-rec=4:10"; the name '*' applies to every model not named.
   */
  serveBatching: {} as BatchingConfig,
  /**
   * Shell command run after each model activation ('' = none); it gets FLEETML_MODEL_NAME,
   * FLEETML_MODEL_VERSION, FLEETML_MODEL_ID, FLEETML_MODEL_SHA256 and FLEETML_MODEL_PATH
   * (the stable path <dataDir>/models/<name>/current.onnx).
   */
  activationHook: '',
  /** First retry delay of the reconcile loop, ms. */
  backoffInitialMs: 1_000,
  /** Longest retry delay of the reconcile loop, ms. */
  backoffMaxMs: 60_000,
  /** MQTT keepalive, seconds. */
  keepaliveS: 30,
  /** Delay between reconnect attempts, ms. */
  reconnectPeriodMs: 2_000,
  /** Seconds to wait for an enrollment reply before asking again. */
  enrollTimeoutS: 10,
  /** Free disk to keep beyond a download, bytes (64 MiB); older artifacts go first. */
  minFreeDiskBytes: 64 * 1024 * 1024,
  /** Allowed clock skew for manifest expiry, ms. */
  clockSkewMs: 300_000,
  /** How far the device clock may run past the last signed cloud time, ms (24 h). */
  clockTrustWindowMs: 86_400_000,
  /** PEM file of the fleet CA to pin for mqtts:// (copied into the data dir on first start). */
  caFile: '',
  /**
   * The fleet's manifest-signing public key (base64) or its fingerprint, pinned out of band.
   * Optional when the enrollment token carries the fingerprint (tokens from `fleetml tokens
   * enroll` do); the agent refuses to enroll when neither pins a key.
   */
  fleetKey: '',
  /**
   * Directory read instead of `/` for the board facts (proc/cpuinfo, proc/device-tree/model,
   * etc/nv_tegra_release, ...); '' = the real ones. For tests and emulated devices, whose /proc
   * is the host's.
   */
  factsRoot: '',
  /**
   * A user-supplied onnxruntime: an onnxruntime-node package directory or a libonnxruntime.so
   * (Jetson builds with CUDA/TensorRT); '' = the installed onnxruntime-node.
   */
  onnxruntimePath: '',
  /** pino log level. */
  logLevel: 'info',
  /** Log lines: 'auto' = readable on a terminal, JSON when piped; or always 'pretty' / 'json'. */
  logFormat: 'auto' as 'auto' | 'pretty' | 'json',
  /** Device name sent at enrollment (the fleet shows it; its id starts with it); '' = the hostname. */
  name: '',
};

const positiveInt = z.coerce.number().int().positive();
const nonNegativeInt = z.coerce.number().int().nonnegative();

export const agentConfigSchema = z.object({
  cloudUrl: z
    .string()
    .min(1, 'cloudUrl is required (--cloud or FLEETML_CLOUD_URL)')
    .regex(/^(mqtts?|wss?|tcp):\/\//, 'cloudUrl must be an mqtt://, mqtts://, ws:// or wss:// URL'),
  enrollToken: z.string(),
  dataDir: z.string().min(1),
  telemetryIntervalS: z.coerce.number().positive().max(86_400),
  telemetryBatchMax: positiveInt.max(1000),
  telemetryAck: z.enum(['auto', 'cloud', 'broker']),
  telemetryAckTimeoutMs: positiveInt,
  outboxMaxRecords: positiveInt,
  blockSize: positiveInt.min(256).max(1 << 20),
  brokerMaxPayloadBytes: positiveInt.min(4096),
  windowBlocks: positiveInt.max(256),
  blockTimeoutMs: positiveInt,
  transferStallMs: positiveInt,
  benchWarmupRuns: nonNegativeInt,
  benchRuns: positiveInt,
  benchBudgetMs: positiveInt,
  ep: z.enum(['auto', 'cpu', 'cuda', 'tensorrt']),
  intraOpThreads: nonNegativeInt,
  graphOptimizationLevel: z.enum(['disabled', 'basic', 'extended', 'all']),
  dynamicDim: positiveInt,
  modelCheckTimeoutMs: nonNegativeInt,
  latencyProbeRuns: nonNegativeInt.max(100_000),
  latencyProbeBudgetMs: positiveInt,
  serve: z.union([z.boolean(), z.enum(['true', 'false']).transform((v) => v === 'true')]),
  serveHost: z.string().min(1),
  servePort: nonNegativeInt.max(65_535),
  serveSocket: z.string(),
  serveToken: z.string(),
  serveMaxBodyBytes: positiveInt,
  serveBatching: z.unknown().transform((value, ctx) => {
    try {
      return parseBatching(value);
    } catch (error) {
      ctx.addIssue({ code: 'custom', message: (error as Error).message });
      return z.NEVER;
    }
  }),
  activationHook: z.string(),
  backoffInitialMs: positiveInt,
  backoffMaxMs: positiveInt,
  keepaliveS: positiveInt,
  reconnectPeriodMs: positiveInt,
  enrollTimeoutS: z.coerce.number().positive(),
  minFreeDiskBytes: nonNegativeInt,
  clockSkewMs: nonNegativeInt,
  clockTrustWindowMs: nonNegativeInt,
  caFile: z.string(),
  fleetKey: z.string().max(64),
  factsRoot: z.string(),
  onnxruntimePath: z.string(),
  logLevel: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']),
  logFormat: z.enum(['auto', 'pretty', 'json']),
  name: z.string().max(255),
});
export type AgentConfig = z.infer<typeof agentConfigSchema>;
export type AgentConfigInput = Partial<{ [K in keyof AgentConfig]: unknown }>;

export const CONFIG_KEYS = Object.keys(AGENT_DEFAULTS) as (keyof AgentConfig)[];

/** FLEETML_TELEMETRY_INTERVAL_S for telemetryIntervalS. */
export function envNameOf(key: string): string {
  return `FLEETML_${key.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()}`;
}

export function configFromEnv(env: NodeJS.ProcessEnv): AgentConfigInput {
  const out: Record<string, unknown> = {};
  for (const key of CONFIG_KEYS) {
    const value = env[envNameOf(key)];
    if (value !== undefined && value !== '') out[key] = value;
  }
  return out;
}

export async function readConfigFile(path: string): Promise<AgentConfigInput> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new FleetError('CONFIG_INVALID', `cannot read config file ${path}: ${(error as Error).message}`, {
      path,
    });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new FleetError('CONFIG_INVALID', `config file ${path} is not JSON: ${(error as Error).message}`, {
      path,
    });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new FleetError('CONFIG_INVALID', `config file ${path} must hold a JSON object`, { path });
  }
  const unknownKeys = Object.keys(value).filter((k) => !CONFIG_KEYS.includes(k as keyof AgentConfig));
  if (unknownKeys.length > 0) {
    throw new FleetError(
      'CONFIG_INVALID',
      `config file ${path} has unknown keys: ${unknownKeys.join(', ')}`,
      {
        path,
        unknownKeys,
      },
    );
  }
  return value as AgentConfigInput;
}

/** Merges the layers and validates; CONFIG_INVALID names the key, its env variable and the problem. */
export function resolveConfig(...layers: AgentConfigInput[]): AgentConfig {
  const merged: Record<string, unknown> = { ...AGENT_DEFAULTS };
  for (const layer of layers) {
    for (const [k, v] of Object.entries(layer)) if (v !== undefined) merged[k] = v;
  }
  const result = agentConfigSchema.safeParse(merged);
  if (!result.success) {
    const problems = result.error.issues.map((i) => {
      const key = String(i.path[0] ?? '');
      return `${key} (${envNameOf(key)}): ${i.message}`;
    });
    throw new FleetError('CONFIG_INVALID', `invalid agent configuration: ${problems.join('; ')}`, {
      problems,
    });
  }
  const config = result.data;
  if (config.backoffMaxMs < config.backoffInitialMs) {
    throw new FleetError('CONFIG_INVALID', 'backoffMaxMs must be >= backoffInitialMs');
  }
  return config;
}

/** File (if named by flags or env) + env + flags, validated. */
export async function loadConfig(
  flags: AgentConfigInput & { config?: string },
  env: NodeJS.ProcessEnv = process.env,
): Promise<AgentConfig> {
  const { config: file, ...rest } = flags;
  const path = file ?? env.FLEETML_CONFIG;
  const fromFile = path ? await readConfigFile(path) : {};
  return resolveConfig(fromFile, configFromEnv(env), rest);
}
