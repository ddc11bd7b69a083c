import type { RolloutPolicy } from './types.js';

/**
 * Splits devices into waves: wave 0 is the canary (at least one device when canaryPercent > 0),
 * then waves of `waveSize` (all the rest when 0). The order is kept, so callers decide who
 * goes first (e.g. shuffled, or online devices first).
 */
export function planWaves(
  deviceIds: readonly string[],
  policy: Pick<RolloutPolicy, 'canaryPercent' | 'waveSize'>,
): string[][] {
  const waves: string[][] = [];
  let rest = [...deviceIds];
  if (policy.canaryPercent > 0 && rest.length > 0) {
    const canary = Math.max(1, Math.ceil((rest.length * policy.canaryPercent) / 100));
    waves.push(rest.slice(0, canary));
    rest = rest.slice(canary);
  }
  const size = policy.waveSize > 0 ? policy.waveSize : rest.length;
  for (let i = 0; i < rest.length; i += size) waves.push(rest.slice(i, i + size));
  return waves;
}
