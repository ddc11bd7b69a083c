import { z } from 'zod';

/** Which devices a rollout covers: explicit ids, every device with a tag, or of a profile. */
export const selectorSchema = z
  .object({
    devices: z.array(z.string().min(1).max(64)).max(100_000).optional(),
    tag: z.string().min(1).max(64).optional(),
    profile: z.string().min(1).max(64).optional(),
  })
  .refine((s) => Boolean(s.devices?.length || s.tag || s.profile), 'name devices, a tag or a profile');
export type Selector = z.infer<typeof selectorSchema>;

/** How a rollout proceeds and when it stops. Every field has a default in DEFAULT_POLICY. */
export const policySchema = z.object({
  /** Share of the devices in the first (canary) wave, percent; 0 = no canary wave. */
  canaryPercent: z.number().min(0).max(100),
  /** Devices per wave after the canary; 0 = all remaining devices in one wave. */
  waveSize: z.number().int().min(0),
  /** Most devices started per minute; 0 = no limit. */
  maxPerMinute: z.number().int().min(0),
  /** Abort when more than this percentage of finished devices failed... */
  abortFailurePercent: z.number().min(0).max(100),
  /** ...once at least this many devices have finished. */
  abortMinDevices: z.number().int().min(1),
  /** Abort when a canary device's benchmark p99 exceeds this, ms; null = no latency rule. */
  latencyObjectiveMs: z.number().positive().nullable(),
  /** A device that has not finished within this many seconds is timed out. */
  deviceTimeoutS: z.number().int().min(5),
  /** Put the devices already updated back on their previous model when the rollout aborts. */
  rollbackOnAbort: z.boolean(),
  /**
   * Seconds a finished wave serves real traffic before the next wave starts; 0 = no soak. The
   * two rules below compare the new release with the old one on the same devices then.
   */
  soakS: z
    .number()
    .int()
    .min(0)
    .max(7 * 86_400)
    .optional(),
  /** Abort when the new release's real-traffic p99 exceeds the old one's by more than this, percent; null = off. */
  maxP99IncreasePercent: z.number().positive().nullable().optional(),
  /** Abort when the new release's error rate exceeds the old one's by more than this many percentage points; null = off. */
  maxErrorRateIncreasePoints: z.number().min(0).max(100).nullable().optional(),
});
export type RolloutPolicy = z.infer<typeof policySchema>;

export const DEFAULT_POLICY: RolloutPolicy = {
  canaryPercent: 0,
  waveSize: 0,
  maxPerMinute: 0,
  abortFailurePercent: 20,
  abortMinDevices: 1,
  latencyObjectiveMs: null,
  deviceTimeoutS: 600,
  rollbackOnAbort: true,
  soakS: 0,
  maxP99IncreasePercent: null,
  maxErrorRateIncreasePoints: null,
};

export type RolloutStatus = 'running' | 'paused' | 'succeeded' | 'aborted' | 'canceled';

/** Per-device execution states, in the AWS IoT Jobs vocabulary. */
export type ExecutionStatus =
  | 'queued'
  | 'in_progress'
  | 'succeeded'
  | 'failed'
  | 'timed_out'
  | 'rejected'
  | 'canceled';
export const TERMINAL: ReadonlySet<ExecutionStatus> = new Set([
  'succeeded',
  'failed',
  'timed_out',
  'rejected',
  'canceled',
]);
export const FAILURES: ReadonlySet<ExecutionStatus> = new Set(['failed', 'timed_out', 'rejected']);

export interface Rollout {
  id: string;
  modelId: string;
  selector: Selector;
  policy: RolloutPolicy;
  status: RolloutStatus;
  reason: string | null;
  currentWave: number;
  createdBy: string;
  createdAt: string;
  updatedAt: string;
}

export interface Execution {
  rolloutId: string;
  deviceId: string;
  wave: number;
  status: ExecutionStatus;
  targetVersion: number | null;
  previousModelId: string | null;
  startedAt: string | null;
  finishedAt: string | null;
  reason: string | null;
  p50Ms: number | null;
  p99Ms: number | null;
  rolledBack: boolean;
}
