import { z } from 'zod';
import { FleetError } from '../../shared/errors/index.js';

/** Dynamic batching of one model: concurrent requests merged into one onnxruntime run. */
export interface BatchPolicy {
  /** Most rows (sum of the requests' first dimensions) in one merged run. */
  maxBatch: number;
  /** Longest a request waits for others before its batch runs anyway, ms. */
  maxQueueDelayMs: number;
}

/** Model name -> policy; the name '*' applies to every model not named. Empty = batching off. */
export type BatchingConfig = Record<string, BatchPolicy>;

/** Queue delay when a policy names only the batch size, ms. */
export const DEFAULT_MAX_QUEUE_DELAY_MS = 2;

const policySchema = z.object({
  maxBatch: z.coerce.number().int().min(1).max(4096),
  maxQueueDelayMs: z.coerce.number().min(0).max(10_000).default(DEFAULT_MAX_QUEUE_DELAY_MS),
});

const SPEC_FORMAT = 'model=maxBatch[:maxQueueDelayMs] (e.g. mnist-mlp=8:2, or *=8 for every model)';

/** One `model=maxBatch[:maxQueueDelayMs]` (the CLI / env form). */
function parseSpec(spec: string): [string, BatchPolicy] {
  const eq = spec.lastIndexOf('=');
  const name = spec.slice(0, eq).trim();
  const [batch, delay, extra] = spec.slice(eq + 1).split(':');
  const parsed = policySchema.safeParse({
    maxBatch: batch?.trim() || Number.NaN,
    maxQueueDelayMs: delay === undefined || delay.trim() === '' ? undefined : delay.trim(),
  });
  if (eq <= 0 || !name || extra !== undefined || !parsed.success) {
    throw new FleetError('CONFIG_INVALID', `serveBatching: '${spec}' is not ${SPEC_FORMAT}`);
  }
  return [name, parsed.data];
}

/**
 * Reads the batching setting in any of its forms: an object `{model: {maxBatch,
 * maxQueueDelayMs}}` (config file), a comma-separated string of specs (env
 * FLEETML_SERVE_BATCHING) or a list of specs (repeated --serve-batch flags).
 */
export function parseBatching(value: unknown): BatchingConfig {
  if (value === undefined || value === null || value === '') return {};
  const specs = typeof value === 'string' ? value.split(',') : Array.isArray(value) ? value : null;
  const out: BatchingConfig = {};
  if (specs) {
    for (const spec of specs) {
      if (typeof spec !== 'string') throw new FleetError('CONFIG_INVALID', `serveBatching: ${SPEC_FORMAT}`);
      if (spec.trim() === '') continue;
      const [name, policy] = parseSpec(spec.trim());
      if (name in out) throw new FleetError('CONFIG_INVALID', `serveBatching names ${name} twice`);
      out[name] = policy;
    }
    return out;
  }
  if (typeof value !== 'object') throw new FleetError('CONFIG_INVALID', `serveBatching: ${SPEC_FORMAT}`);
  for (const [name, raw] of Object.entries(value as Record<string, unknown>)) {
    const parsed = policySchema.safeParse(raw);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new FleetError(
        'CONFIG_INVALID',
        `serveBatching.${name}.${issue.path.join('.')}: ${issue.message} (expected {maxBatch, maxQueueDelayMs})`,
      );
    }
    out[name] = parsed.data;
  }
  return out;
}

/** The policy for one model: its own entry, else '*', else null (batching off). */
export function policyFor(config: BatchingConfig, model: string): BatchPolicy | null {
  return config[model] ?? config['*'] ?? null;
}
