import { performance } from 'node:perf_hooks';
import type { Logger } from '../../shared/logger.js';
import type { ExecutionProvider, LatencyStats, ServingShapes } from '../../shared/protocol/index.js';
import { randomFeeds } from '../bench/benchmark.js';
import { latencyStats } from '../bench/stats.js';
import { createSession, type OrtFeeds, type OrtSession, type SessionProfile } from '../runtime/ort.js';

export interface LatencyProbeOptions {
  /** Inferences per probe (one probe per telemetry sample); 0 disables the probe. */
  runs: number;
  /** Stop a probe after this many ms even if fewer runs were done. */
  budgetMs: number;
  /** Last-resort value for symbolic input dimensions the model's serving shapes leave open. */
  dynamicDim: number;
  ep: ExecutionProvider;
  profile: Omit<SessionProfile, 'ep'>;
  /** The active model: its content hash and file, or null when none is active. */
  activeModel: () => { sha256: string; path: string; servingShapes?: ServingShapes } | null;
  logger: Logger;
}

/**
 * A real latency source for telemetry: the agent serves no inference of its own, so each
 * sample times a few runs of the active model (random inputs of its declared shapes) instead
 * of repeating the install-time benchmark. The session stays open between samples and is
 * replaced when the active model changes.
 */
export class LatencyProbe {
  private session: { sha256: string; session: OrtSession; feeds: OrtFeeds } | null = null;
  private failedSha: string | null = null;

  constructor(private readonly o: LatencyProbeOptions) {}

  /** Stats of this probe's runs, or null when nothing ran (disabled, no model, or failure). */
  async measure(): Promise<LatencyStats | null> {
    if (this.o.runs === 0) return null;
    const active = this.o.activeModel();
    if (!active) {
      await this.release();
      return null;
    }
    if (this.session?.sha256 !== active.sha256) {
      await this.release();
      if (this.failedSha === active.sha256) return null;
      try {
        const session = await createSession(active.path, { ...this.o.profile, ep: this.o.ep });
        this.session = {
          sha256: active.sha256,
          session,
          feeds: randomFeeds(session, { dynamicDim: this.o.dynamicDim, servingShapes: active.servingShapes }),
        };
      } catch (error) {
        // The model passed its install checks; if it stops loading, say so once, not every sample.
        this.failedSha = active.sha256;
        this.o.logger.warn({ err: (error as Error).message }, 'latency probe cannot load the active model');
        return null;
      }
    }
    const { session, feeds } = this.session!;
    const samples: number[] = [];
    const start = performance.now();
    try {
      while (samples.length < this.o.runs && performance.now() - start < this.o.budgetMs) {
        const t0 = performance.now();
        await session.run(feeds);
        samples.push(performance.now() - t0);
      }
    } catch (error) {
      this.o.logger.warn({ err: (error as Error).message }, 'latency probe run failed');
    }
    return samples.length > 0 ? latencyStats(samples) : null;
  }

  async release(): Promise<void> {
    const current = this.session;
    this.session = null;
    await current?.session.release().catch(() => {});
  }
}
