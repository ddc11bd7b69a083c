import type { Logger } from '../../shared/logger.js';
import type { Manifest } from '../../shared/protocol/index.js';
import type { InstallResult } from '../install/installer.js';
import type { Reporter } from '../reporter.js';

/**
 * What the agent says once a model is active: log lines, the MODEL_ACTIVATED or
 * MODEL_ROLLED_BACK event, the bench report, and warnings about how it was measured.
 */
export class ActivationReport {
  /** Model ids this agent has run (a rollout's rollback sends the previous model again). */
  private readonly activated = new Set<string>();

  constructor(
    private readonly reporter: Reporter,
    private readonly logger: Logger,
  ) {}

  /** One log line and one device event per activation (a return to the previous model says so). */
  announce(
    manifest: Manifest,
    result: InstallResult,
    previous: { modelId: string; version: number } | null,
  ): void {
    const b = result.bench;
    if (result.golden) {
      this.logger.info(
        { model: manifest.name, cases: result.golden.cases, maxAbsDiff: result.golden.maxAbsDiff },
        'golden check passed',
      );
    }
    this.logger.info(
      { model: manifest.name, p50Ms: b.p50Ms, p99Ms: b.p99Ms, ep: b.ep, shapes: b.inputShapes },
      'benchmark done',
    );
    const rollback = previous !== null && this.wasInstalledBefore(manifest, previous);
    const text = `${manifest.name} (${manifest.modelId} v${manifest.version}) active in slot ${result.slot}: p50 ${b.p50Ms.toFixed(3)} ms on ${b.ep}${previous ? `, replacing ${previous.modelId} v${previous.version}` : ''}`;
    this.logger.info(
      { model: manifest.name, slot: result.slot, rollback },
      rollback ? `rolled back: ${text}` : `activated: ${text}`,
    );
    this.reporter.event('info', rollback ? 'MODEL_ROLLED_BACK' : 'MODEL_ACTIVATED', text);
  }

  /** The bench report, a warning when symbolic dimensions were guessed, and the golden check's outcome. */
  reportBench(manifest: Manifest, result: InstallResult): void {
    const b = result.bench;
    this.reporter.bench({
      modelId: manifest.modelId,
      sha256: manifest.sha256,
      ep: b.ep,
      runs: b.runs,
      warmupRuns: b.warmupRuns,
      p50Ms: b.p50Ms,
      p90Ms: b.p90Ms,
      p99Ms: b.p99Ms,
      maxMs: b.maxMs,
      meanMs: b.meanMs,
      throughput: b.throughput,
      loadMs: b.loadMs,
      peakRssBytes: b.peakRssBytes,
      tempBeforeC: b.tempBeforeC,
      tempAfterC: b.tempAfterC,
      throttled: b.throttled,
      inputShapes: b.inputShapes,
      unresolvedDims: b.unresolvedDims,
      golden: result.golden,
    });
    if (b.unresolvedDims.length > 0) {
      this.reporter.event(
        'warn',
        'SHAPE_UNRESOLVED',
        `${manifest.name} has symbolic dimensions without a serving shape (${b.unresolvedDims.join(', ')}): ` +
          `benchmarked at ${JSON.stringify(b.inputShapes)}; upload it with --shape`,
      );
    }
    const golden = result.golden;
    if (golden) {
      this.reporter.event(
        'info',
        'GOLDEN_OK',
        `golden check passed: ${golden.cases} cases, cosine ${golden.cosine}, max |diff| ${golden.maxAbsDiff}` +
          (golden.accuracy !== null ? `, accuracy ${golden.accuracy}` : ''),
      );
    }
  }

  private wasInstalledBefore(manifest: Manifest, previous: { modelId: string }): boolean {
    const before = this.activated.has(manifest.modelId);
    this.activated.add(previous.modelId);
    this.activated.add(manifest.modelId);
    return before;
  }
}
