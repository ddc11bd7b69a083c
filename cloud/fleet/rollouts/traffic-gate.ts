import type { ServingFilter, ServingSummary } from '../monitoring/serving.js';
import type { Execution, RolloutPolicy } from './types.js';

/** What the gate reads: merged real-traffic figures of some devices and release over a window. */
export type ServingSummaryQuery = (
  fromMs: number,
  toMs: number,
  filter: ServingFilter,
) => Promise<ServingSummary | undefined>;

/** How long the old release's traffic before the switch is looked at, at least. */
const MIN_BASELINE_MS = 10 * 60_000;

/**
 * Judges a finished wave on what users felt: the new release's real-traffic p99 and error rate
 * since the wave's devices switched, against the old release's on the same devices before they
 * switched. Returns the abort reason, or null (also when either side has no traffic: nothing
 * to judge).
 */
export async function trafficVerdict(
  policy: RolloutPolicy,
  newModelId: string,
  wave: readonly Execution[],
  nowMs: number,
  query: ServingSummaryQuery,
): Promise<string | null> {
  const maxP99 = policy.maxP99IncreasePercent ?? null;
  const maxErr = policy.maxErrorRateIncreasePoints ?? null;
  if (maxP99 === null && maxErr === null) return null;
  const switched = wave.filter(
    (e) => e.status === 'succeeded' && e.startedAt && e.finishedAt && e.previousModelId,
  );
  if (switched.length === 0) return null;
  const deviceIds = switched.map((e) => e.deviceId);
  const firstStart = Math.min(...switched.map((e) => Date.parse(e.startedAt!)));
  const lastFinish = Math.max(...switched.map((e) => Date.parse(e.finishedAt!)));
  const baselineMs = Math.max(MIN_BASELINE_MS, (policy.soakS ?? 0) * 1000);
  const previous = [...new Set(switched.map((e) => e.previousModelId!))];
  const after = await query(lastFinish, nowMs, { deviceIds, modelId: newModelId });
  if (!after || after.requests === 0) return null;
  for (const oldId of previous) {
    const before = await query(firstStart - baselineMs, firstStart, { deviceIds, modelId: oldId });
    if (!before || before.requests === 0) continue;
    if (maxP99 !== null && before.p99Ms !== null && after.p99Ms !== null) {
      const increase = ((after.p99Ms - before.p99Ms) / before.p99Ms) * 100;
      if (increase > maxP99) {
        return `real-traffic p99 ${after.p99Ms.toFixed(3)} ms on the new release vs ${before.p99Ms.toFixed(3)} ms on ${oldId} (+${increase.toFixed(0)} % > ${maxP99} %)`;
      }
    }
    if (maxErr !== null) {
      const points = (after.errorRate - before.errorRate) * 100;
      if (points > maxErr) {
        return `real-traffic error rate ${(after.errorRate * 100).toFixed(2)} % on the new release vs ${(before.errorRate * 100).toFixed(2)} % on ${oldId} (+${points.toFixed(2)} points > ${maxErr})`;
      }
    }
  }
  return null;
}

/** Milliseconds until a finished wave has soaked (0 when done or no soak). */
export function soakRemainingMs(policy: RolloutPolicy, wave: readonly Execution[], nowMs: number): number {
  const soakMs = (policy.soakS ?? 0) * 1000;
  if (soakMs === 0) return 0;
  const finished = wave.filter((e) => e.finishedAt).map((e) => Date.parse(e.finishedAt!));
  if (finished.length === 0) return 0;
  return Math.max(0, Math.max(...finished) + soakMs - nowMs);
}
