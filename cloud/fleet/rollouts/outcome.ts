import { ERROR_CATALOG, type ErrorCode } from '../../../shared/errors/index.js';
import type { BenchSummary } from '../ingest/telemetry.js';
import type { Device } from '../inventory/devices.js';
import type { Execution, ExecutionStatus } from './types.js';

export interface Outcome {
  status: ExecutionStatus;
  reason: string | null;
  p50Ms: number | null;
  p99Ms: number | null;
}

/**
 * Reads one in-progress device's outcome from what it last reported: succeeded once it runs
 * the model at (or past) the rollout's target version; failed or rejected (manifest refused)
 * on a non-retryable error for that version; timed out after the deadline. Retryable errors
 * keep it in progress: the agent is retrying on its own.
 */
export function evaluateExecution(
  execution: Execution,
  device: Device,
  modelSha256: string,
  bench: BenchSummary | null,
  nowMs: number,
  timeoutS: number,
): Outcome | null {
  // Revoked mid-rollout: it will never report again and must get nothing more.
  if (device.revoked) return { status: 'canceled', reason: 'device revoked', p50Ms: null, p99Ms: null };
  const version = execution.targetVersion ?? Number.POSITIVE_INFINITY;
  const reached = device.appliedVersion !== null && device.appliedVersion >= version;
  const started = execution.startedAt ? Date.parse(execution.startedAt) : nowMs;
  const pastDeadline = nowMs - started > timeoutS * 1000;
  if (reached && device.phase === 'active' && device.activeSha256 === modelSha256) {
    const measured = bench && bench.sha256 === modelSha256 ? bench : null;
    // The benchmark report travels on its own topic and may arrive after the state: wait for it
    // (the canary's latency objective is judged on it) until the deadline, then take the success.
    if (!measured && !pastDeadline) return null;
    return {
      status: 'succeeded',
      reason: null,
      p50Ms: measured?.p50Ms ?? null,
      p99Ms: measured?.p99Ms ?? null,
    };
  }
  const error = device.lastError;
  if (reached && error) {
    const known = ERROR_CATALOG[error.code as ErrorCode];
    if (!known?.retryable) {
      const status: ExecutionStatus = error.code.startsWith('MANIFEST_') ? 'rejected' : 'failed';
      return { status, reason: `${error.code}: ${error.message}`, p50Ms: null, p99Ms: null };
    }
  }
  if (pastDeadline) {
    const last = error ? ` (last error ${error.code})` : '';
    return { status: 'timed_out', reason: `no result within ${timeoutS} s${last}`, p50Ms: null, p99Ms: null };
  }
  return null;
}
