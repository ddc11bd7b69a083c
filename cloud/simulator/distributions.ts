import type { LatencyStats } from '../../shared/protocol/index.js';
import { createRng, gaussian } from '../../shared/random.js';

/**
 * Random draws that make a simulated fleet look like a real one: per-device speed differences,
 * log-normal inference latency (long right tail), jittered report intervals and a spread of
 * CPU load and temperature. Seeded, so a run can be repeated.
 */
export class Draws {
  private readonly rng: () => number;

  constructor(seed: number) {
    this.rng = createRng(seed);
  }

  uniform(min = 0, max = 1): number {
    return min + (max - min) * this.rng();
  }

  /** exp(N(ln median, sigma)): always positive, median `median`. */
  logNormal(median: number, sigma: number): number {
    return median * Math.exp(sigma * gaussian(this.rng));
  }

  /** An interval of `meanS` seconds with ±20 % jitter, in ms (devices drift apart as real ones do). */
  jitteredMs(meanS: number): number {
    return meanS * 1000 * this.uniform(0.8, 1.2);
  }

  /**
   * A window of `count` inferences on a device whose median latency is `medianMs`: percentiles
   * of the log-normal itself, and a max a little above p99.
   */
  latencyWindow(count: number, medianMs: number, sigma: number): LatencyStats {
    const drift = this.logNormal(1, 0.05);
    const at = (z: number) => medianMs * drift * Math.exp(sigma * z);
    const p50Ms = at(0);
    const p90Ms = at(1.2816);
    const p99Ms = at(2.3263);
    const maxMs = p99Ms * this.uniform(1.02, 1.5);
    const meanMs = medianMs * drift * Math.exp((sigma * sigma) / 2);
    return { count, p50Ms, p90Ms, p99Ms, maxMs, meanMs };
  }
}
