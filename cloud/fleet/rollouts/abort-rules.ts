import { type ServingSummaryQuery, soakRemainingMs, trafficVerdict } from './traffic-gate.js';
import { type Execution, FAILURES, type Rollout, TERMINAL } from './types.js';

/**
 * Why a rollout must stop now, or null: too many failed devices, a canary slower than the
 * latency objective, or (with `serving`) a soaked wave serving worse than the old release.
 */
export async function abortReason(
  rollout: Rollout,
  executions: Execution[],
  nowMs: number,
  serving?: ServingSummaryQuery,
): Promise<string | null> {
  const p = rollout.policy;
  const finished = executions.filter((e) => TERMINAL.has(e.status) && e.status !== 'canceled');
  const failed = finished.filter((e) => FAILURES.has(e.status));
  if (finished.length >= p.abortMinDevices && failed.length > 0) {
    const percent = (100 * failed.length) / finished.length;
    if (percent > p.abortFailurePercent) {
      return `${failed.length} of ${finished.length} devices failed (${percent.toFixed(0)} % > ${p.abortFailurePercent} %)`;
    }
  }
  if (p.latencyObjectiveMs !== null && p.canaryPercent > 0) {
    const slow = executions.find(
      (e) => e.wave === 0 && e.status === 'succeeded' && e.p99Ms !== null && e.p99Ms > p.latencyObjectiveMs!,
    );
    if (slow)
      return `canary ${slow.deviceId} p99 ${slow.p99Ms!.toFixed(2)} ms exceeds the objective ${p.latencyObjectiveMs} ms`;
  }
  return serving ? trafficReason(rollout, executions, nowMs, serving) : null;
}

/** The soak rules: every finished, soaked wave against the old release on its own devices. */
async function trafficReason(
  rollout: Rollout,
  executions: Execution[],
  nowMs: number,
  serving: ServingSummaryQuery,
): Promise<string | null> {
  const waves = [...new Set(executions.map((e) => e.wave))].sort((a, b) => a - b);
  for (const w of waves) {
    const wave = executions.filter((e) => e.wave === w);
    if (!wave.every((e) => TERMINAL.has(e.status))) continue;
    if (soakRemainingMs(rollout.policy, wave, nowMs) > 0) continue;
    const reason = await trafficVerdict(rollout.policy, rollout.modelId, wave, nowMs, serving);
    if (reason) return `wave ${w}: ${reason}`;
  }
  return null;
}
