import { readFile, rm } from 'node:fs/promises';
import { FleetError, toFleetError } from '../shared/errors/index.js';
import type { Logger } from '../shared/logger.js';
import {
  checkManifestFreshness,
  decodeGoldenSet,
  type GoldenSet,
  verifyManifest,
} from '../shared/manifest/index.js';
import {
  type AgentPhase,
  decodeJson,
  type Manifest,
  type TargetState,
  targetStateSchema,
} from '../shared/protocol/index.js';
import type { BenchmarkResult } from './bench/benchmark.js';
import type { DeviceIdentity } from './enroll.js';
import type { Installer } from './install/installer.js';
import type { Reporter } from './reporter.js';
import type { StateStore } from './store/agent-state.js';
import type { Downloader } from './transfer/downloader.js';

export interface ReconcilerOptions {
  identity: DeviceIdentity;
  state: StateStore;
  downloader: Downloader;
  installer: Installer;
  reporter: Reporter;
  logger: Logger;
  /** Largest block the agent asks for (already capped under the broker's limit), bytes. */
  maxBlockSize: number;
  backoffInitialMs: number;
  backoffMaxMs: number;
  clockSkewMs: number;
  clockTrustWindowMs: number;
  /** Called after a model was benchmarked and switched active. */
  onActivated?: (manifest: Manifest, bench: BenchmarkResult) => void;
}

/**
 * Converges the device on the retained target state (balena-style): the newest target wins,
 * versions at or below the last handled one are ignored (so repeated and reordered messages
 * change nothing), retryable failures retry with exponential backoff, final failures are
 * recorded so the same target is not tried again, and every step is reported.
 */
export class Reconciler {
  private desired: TargetState | null = null;
  private phase: AgentPhase = 'idle';
  private progress: number | null = null;
  private worker: Promise<void> | null = null;
  private abort: AbortController | null = null;
  private wake: (() => void) | null = null;
  private stopped = false;

  constructor(private readonly o: ReconcilerOptions) {
    this.phase = o.state.active() ? 'active' : 'idle';
  }

  get currentPhase(): AgentPhase {
    return this.phase;
  }

  /** Handles one payload from the device's target topic. Never throws. */
  onTargetMessage(payload: Buffer): void {
    let target: TargetState;
    try {
      target = decodeJson(targetStateSchema, payload);
      if (target.deviceId !== this.o.identity.deviceId) {
        throw new FleetError(
          'MSG_SCHEMA',
          `target state is for device ${target.deviceId}, not ${this.o.identity.deviceId}`,
        );
      }
    } catch (error) {
      this.o.reporter.error(toFleetError(error, 'MSG_SCHEMA'));
      return;
    }
    const applied = this.o.state.state.appliedTargetVersion;
    if (
      (applied !== null && target.version <= applied) ||
      (this.desired && target.version <= this.desired.version)
    ) {
      this.o.logger.debug({ version: target.version, applied }, 'target already handled; ignored');
      return;
    }
    this.desired = target;
    this.abort?.abort();
    this.wake?.();
    this.startWorker();
  }

  private startWorker(): void {
    if (this.worker || this.stopped) return;
    let crashed = false;
    this.worker = this.loop()
      .catch((error) => {
        // e.g. state.json cannot be written (disk full): log, and let the next target retry.
        crashed = true;
        this.o.logger.error({ err: error }, 'reconcile loop failed');
      })
      .finally(() => {
        this.worker = null;
        // A newer target that arrived while the loop was on its way out must not wait for
        // another message.
        const applied = this.o.state.state.appliedTargetVersion;
        if (!crashed && this.desired && (applied === null || this.desired.version > applied)) {
          this.startWorker();
        }
      });
  }

  /** Publishes the current state (on connect, after each step). */
  report(error: FleetError | null = null): void {
    const active = this.o.state.active();
    this.o.reporter.state({
      targetVersion: this.desired?.version ?? this.o.state.state.appliedTargetVersion,
      phase: this.phase,
      activeModel: active
        ? { modelId: active.modelId, sha256: active.sha256, version: active.version }
        : null,
      progress: this.progress,
      error: error
        ? { code: error.code, message: error.message.slice(0, 2000) }
        : this.o.state.state.lastError,
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.abort?.abort();
    this.wake?.();
    await this.worker;
  }

  /** Resolves when no target is pending (tests). */
  async settled(): Promise<void> {
    while (this.worker) await this.worker;
  }

  private async loop(): Promise<void> {
    let attempt = 0;
    while (!this.stopped && this.desired) {
      const target = this.desired;
      const applied = this.o.state.state.appliedTargetVersion;
      if (applied !== null && target.version <= applied) return;
      this.abort = new AbortController();
      try {
        // A new target starts clean: reporting the previous target's final error next to the
        // new version would read as this target's outcome.
        if (this.o.state.state.lastError && attempt === 0) {
          await this.o.state.update((s) => {
            s.lastError = null;
          });
        }
        await this.apply(target, this.abort.signal);
        await this.o.state.update((s) => {
          s.appliedTargetVersion = Math.max(s.appliedTargetVersion ?? 0, target.version);
          s.lastError = null;
        });
        attempt = 0;
        this.report();
      } catch (error) {
        if (this.stopped) return;
        if (this.desired !== target) continue; // superseded by a newer target
        const e = toFleetError(error);
        this.phase = 'failed';
        this.progress = null;
        this.o.reporter.error(e);
        this.report(e);
        if (!e.retryable) {
          await this.o.state.update((s) => {
            s.appliedTargetVersion = Math.max(s.appliedTargetVersion ?? 0, target.version);
            s.lastError = { code: e.code, message: e.message.slice(0, 2000) };
          });
          // Stay on the old model; the failed target is done with. Say so: the device serves
          // its old model again (the error stays in the report until the next target).
          this.phase = this.o.state.active() ? 'active' : 'failed';
          if (this.phase === 'active') this.report();
          if (this.desired !== target) continue;
          return;
        }
        const delay = backoff(attempt++, this.o.backoffInitialMs, this.o.backoffMaxMs);
        this.o.logger.info({ code: e.code, delayMs: delay }, 'will retry target');
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, delay);
          this.wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        this.wake = null;
      } finally {
        this.abort = null;
      }
    }
  }

  private async apply(target: TargetState, signal: AbortSignal): Promise<void> {
    if (!target.model) {
      this.setPhase(this.o.state.active() ? 'active' : 'idle', null);
      return;
    }
    const { manifest, signature } = target.model;
    await this.checkManifest(manifest, signature);
    const active = this.o.state.active();
    if (active && active.sha256 === manifest.sha256) {
      this.setPhase('active', null);
      return;
    }
    const blockSize = Math.min(manifest.blockSize, this.o.maxBlockSize);
    const spec = { sha256: manifest.sha256, size: manifest.size, blockSize };
    const held = await this.o.downloader.heldBytes(spec);
    await this.o.installer.ensureSpace(manifest.size - held + (manifest.golden?.size ?? 0), manifest.sha256);

    this.setPhase('downloading', 0);
    let lastReported = 0;
    const { path } = await this.o.downloader.download(
      spec,
      (fraction) => {
        this.progress = fraction;
        if (fraction - lastReported >= 0.1) {
          lastReported = fraction;
          this.report();
        }
      },
      signal,
    );
    const golden = manifest.golden ? await this.fetchGolden(manifest, blockSize, signal) : null;
    const result = await this.o.installer.install(manifest, path, golden, (phase) =>
      this.setPhase(phase, null),
    );
    this.setPhase('active', null);
    this.o.reporter.bench({
      modelId: manifest.modelId,
      sha256: manifest.sha256,
      ep: result.bench.ep,
      runs: result.bench.runs,
      warmupRuns: result.bench.warmupRuns,
      p50Ms: result.bench.p50Ms,
      p90Ms: result.bench.p90Ms,
      p99Ms: result.bench.p99Ms,
      maxMs: result.bench.maxMs,
      meanMs: result.bench.meanMs,
      throughput: result.bench.throughput,
      loadMs: result.bench.loadMs,
      peakRssBytes: result.bench.peakRssBytes,
      tempBeforeC: result.bench.tempBeforeC,
      tempAfterC: result.bench.tempAfterC,
      throttled: result.bench.throttled,
      inputShapes: result.bench.inputShapes,
      unresolvedDims: result.bench.unresolvedDims,
      golden: result.golden,
    });
    if (result.bench.unresolvedDims.length > 0) {
      this.o.reporter.event(
        'warn',
        'SHAPE_UNRESOLVED',
        `${manifest.name} has symbolic dimensions without a serving shape (${result.bench.unresolvedDims.join(', ')}): ` +
          `benchmarked at ${JSON.stringify(result.bench.inputShapes)}; upload it with --shape`,
      );
    }
    if (result.golden) {
      this.o.reporter.event(
        'info',
        'GOLDEN_OK',
        `golden check passed: ${result.golden.cases} cases, max |diff| ${result.golden.maxAbsDiff}` +
          (result.golden.accuracy !== null ? `, accuracy ${result.golden.accuracy}` : ''),
      );
    }
    this.o.onActivated?.(manifest, result.bench);
  }

  /** Signature (when a fleet key is pinned), expiry against signed time, and rollback. */
  private async checkManifest(manifest: Manifest, signature: string | null): Promise<void> {
    const key = this.o.identity.fleetPublicKey;
    if (key) {
      verifyManifest(manifest, signature, key);
    } else {
      this.o.logger.warn('no fleet key pinned at enrollment: manifest signatures are not checked');
    }
    const signedTime = checkManifestFreshness(manifest, {
      latestSignedTimeMs: this.o.state.state.latestSignedTimeMs,
      clockSkewMs: this.o.clockSkewMs,
      clockTrustWindowMs: this.o.clockTrustWindowMs,
    });
    const installed = this.o.state.active();
    if (installed && installed.modelId === manifest.modelId && manifest.version < installed.version) {
      throw new FleetError(
        'MANIFEST_ROLLBACK',
        `manifest version ${manifest.version} of ${manifest.modelId} is lower than the installed ${installed.version}`,
        { modelId: manifest.modelId, version: manifest.version, installed: installed.version },
      );
    }
    if (key && signedTime > this.o.state.state.latestSignedTimeMs) {
      await this.o.state.update((s) => {
        s.latestSignedTimeMs = signedTime;
      });
    }
  }

  private async fetchGolden(manifest: Manifest, blockSize: number, signal: AbortSignal): Promise<GoldenSet> {
    const g = manifest.golden!;
    const { path } = await this.o.downloader.download(
      { sha256: g.sha256, size: g.size, blockSize },
      undefined,
      signal,
    );
    try {
      return decodeGoldenSet(await readFile(path));
    } finally {
      await rm(path, { force: true });
    }
  }

  private setPhase(phase: AgentPhase, progress: number | null): void {
    this.phase = phase;
    this.progress = progress;
    this.report();
  }
}

/** Exponential backoff with ±20 % jitter so a fleet does not retry in lockstep. */
export function backoff(attempt: number, initialMs: number, maxMs: number): number {
  const base = Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 30));
  return Math.round(base * (0.8 + Math.random() * 0.4));
}
