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
import type { AgentState, StateStore } from './store/agent-state.js';
import { checkRelease, checkTargetSignature, isNewer, isReannounced } from './target-guard.js';
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
      checkTargetSignature(target, this.o.identity.fleetPublicKey, this.o.identity.deviceId);
    } catch (error) {
      // Refused before anything else: a forged target cannot move the sequence or the epoch.
      this.o.reporter.error(toFleetError(error, 'MSG_SCHEMA'));
      return;
    }
    const { targetEpoch, appliedTargetVersion } = this.o.state.state;
    const desired = this.desired;
    if (
      !isNewer(target, targetEpoch, appliedTargetVersion) ||
      (desired && !isNewer(target, desired.epoch ?? 0, desired.version))
    ) {
      this.o.logger.debug(
        { version: target.version, epoch: target.epoch, applied: appliedTargetVersion },
        'target already handled; ignored',
      );
      return;
    }
    this.desired = target;
    this.abort?.abort();
    this.wake?.();
    this.startWorker();
  }

  /**
   * Starts the worker unless one runs. The worker drains pending targets and ends; it re-reads
   * the desired target after every await, so a target that arrives while it runs is picked up
   * without a restart. A crash (e.g. state.json cannot be written: disk full) is logged, and
   * the next target message starts a new worker.
   */
  private startWorker(): void {
    if (this.worker || this.stopped) return;
    this.worker = this.run()
      .catch((error) => {
        this.o.logger.error({ err: error }, 'reconcile loop failed');
      })
      .finally(() => {
        this.worker = null;
      });
  }

  /** Publishes the current state (on connect, after each step). */
  report(error: FleetError | null = null): void {
    const active = this.o.state.active();
    this.o.reporter.state({
      targetVersion: this.desired?.version ?? this.o.state.state.appliedTargetVersion,
      epoch: this.desired?.epoch ?? this.o.state.state.targetEpoch,
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

  /** The desired target when it is newer than the last one handled; null when there is nothing to do. */
  private pending(): TargetState | null {
    const target = this.desired;
    const { targetEpoch, appliedTargetVersion } = this.o.state.state;
    if (!target || this.stopped || !isNewer(target, targetEpoch, appliedTargetVersion)) return null;
    return target;
  }

  /** Works through pending targets: one attempt at a time, backing off between retries of one target. */
  private async run(): Promise<void> {
    let attempts = 0;
    let previous: TargetState | null = null;
    for (let target = this.pending(); target; target = this.pending()) {
      if (target !== previous) attempts = 0;
      previous = target;
      const outcome = await this.attempt(target, attempts === 0);
      if (outcome === 'retry')
        await this.sleep(backoff(attempts++, this.o.backoffInitialMs, this.o.backoffMaxMs));
    }
  }

  /**
   * One attempt at a target. 'done': applied, or failed for good (recorded so it is not tried
   * again); 'retry': a retryable failure; 'superseded': a newer target or stop() cut it short.
   */
  private async attempt(target: TargetState, first: boolean): Promise<'done' | 'retry' | 'superseded'> {
    this.abort = new AbortController();
    try {
      // A new target starts clean: reporting the previous target's final error next to the
      // new version would read as this target's outcome.
      if (first && this.o.state.state.lastError) {
        await this.o.state.update((s) => {
          s.lastError = null;
        });
      }
      if (isReannounced(target, this.o.state.state)) {
        // A restarted cloud (new epoch) announces the target this device already handled.
        await this.o.state.update((s) => markHandled(s, target));
        this.report();
        return 'done';
      }
      await this.apply(target, this.abort.signal);
      await this.o.state.update((s) => {
        markHandled(s, target);
        s.lastError = null;
      });
      this.report();
      return 'done';
    } catch (error) {
      if (this.stopped || this.desired !== target) return 'superseded';
      return this.recordFailure(target, toFleetError(error));
    } finally {
      this.abort = null;
    }
  }

  /** Reports a failed attempt; a final failure is stored so that the same target is not tried again. */
  private async recordFailure(target: TargetState, e: FleetError): Promise<'done' | 'retry'> {
    this.phase = 'failed';
    this.progress = null;
    this.o.reporter.error(e);
    this.report(e);
    if (e.retryable) {
      this.o.logger.info({ code: e.code }, 'will retry target');
      return 'retry';
    }
    await this.o.state.update((s) => {
      markHandled(s, target);
      s.lastError = { code: e.code, message: e.message.slice(0, 2000) };
    });
    // Stay on the old model; the failed target is done with. Say so: the device serves its old
    // model again (the error stays in the report until the next target).
    this.phase = this.o.state.active() ? 'active' : 'failed';
    if (this.phase === 'active') this.report();
    return 'done';
  }

  /** Waits `delayMs`, or less when a newer target or stop() wakes the worker. */
  private async sleep(delayMs: number): Promise<void> {
    this.o.logger.debug({ delayMs }, 'backing off');
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, delayMs);
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    this.wake = null;
  }

  private async apply(target: TargetState, signal: AbortSignal): Promise<void> {
    if (!target.model) {
      this.setPhase(this.o.state.active() ? 'active' : 'idle', null);
      return;
    }
    const { manifest, signature } = target.model;
    await this.checkManifest(manifest, signature);
    checkRelease(manifest, target, this.o.state.state.releases);
    const active = this.o.state.active();
    if (active && active.sha256 === manifest.sha256) {
      this.setPhase('active', null);
      return;
    }
    const model = { model: manifest.name, modelId: manifest.modelId, version: manifest.version };
    this.o.logger.info(
      { ...model, variant: manifest.variant },
      'manifest verified (signature, expiry, version)',
    );
    const blockSize = Math.min(manifest.blockSize, this.o.maxBlockSize);
    const spec = { sha256: manifest.sha256, size: manifest.size, blockSize };
    const ready = await this.o.installer.verifiedInSlot(manifest);
    const path = ready ?? (await this.transfer(manifest, spec, model, signal));
    if (ready) {
      this.o.logger.info(
        { ...model, sha256: manifest.sha256 },
        'already verified in the inactive slot: not fetched again',
      );
    } else this.o.logger.info({ ...model, bytes: manifest.size }, 'transfer done, SHA-256 verified');
    const golden = manifest.golden ? await this.fetchGolden(manifest, blockSize, signal) : null;
    const previous = this.o.state.active();
    const result = await this.o.installer.install(manifest, path, golden, (phase) => {
      this.setPhase(phase, null);
      // Benchmarking starts once the model sits in its slot and passed the isolated load
      // check and the golden check: that is what "installed" means here.
      if (phase === 'benchmarking') {
        this.o.logger.info(model, 'installed: load check and golden check passed, benchmarking');
        this.o.reporter.event(
          'info',
          'MODEL_INSTALLED',
          `${manifest.name} (${manifest.modelId} v${manifest.version}) installed in the inactive slot; load${manifest.golden ? ' and golden' : ''} check passed`,
        );
      }
    });
    await this.o.state.update((s) => {
      s.releases[manifest.name] = Math.max(s.releases[manifest.name] ?? 0, manifest.release ?? 0);
    });
    this.setPhase('active', null);
    this.announceActivation(manifest, result, previous);
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
        `golden check passed: ${result.golden.cases} cases, cosine ${result.golden.cosine}, max |diff| ${result.golden.maxAbsDiff}` +
          (result.golden.accuracy !== null ? `, accuracy ${result.golden.accuracy}` : ''),
      );
    }
    this.o.onActivated?.(manifest, result.bench);
  }

  /** Fetches the artifact (resuming what is held), reporting progress. */
  private async transfer(
    manifest: Manifest,
    spec: { sha256: string; size: number; blockSize: number },
    model: Record<string, unknown>,
    signal: AbortSignal,
  ): Promise<string> {
    const held = await this.o.downloader.heldBytes(spec);
    await this.o.installer.ensureSpace(manifest.size - held + (manifest.golden?.size ?? 0), manifest.sha256);
    this.o.logger.info({ ...model, bytes: manifest.size, alreadyHeld: held }, 'transfer started');
    this.setPhase('downloading', 0);
    let lastReported = 0;
    const { path } = await this.o.downloader.download(
      spec,
      (fraction) => {
        this.progress = fraction;
        if (fraction - lastReported >= 0.1) {
          // One line per quarter on the terminal; the state report goes out every tenth.
          if (Math.floor(fraction * 4) > Math.floor(lastReported * 4) && fraction < 1)
            this.o.logger.info({ ...model, percent: Math.round(fraction * 100) }, 'transfer progress');
          lastReported = fraction;
          this.report();
        }
      },
      signal,
    );
    return path;
  }

  /** One log line and one device event per activation (a return to the previous model says so). */
  private announceActivation(
    manifest: Manifest,
    result: { slot: string; bench: BenchmarkResult; golden: { cases: number; maxAbsDiff: number } | null },
    previous: { modelId: string; version: number } | null,
  ): void {
    const b = result.bench;
    if (result.golden) {
      this.o.logger.info(
        { model: manifest.name, cases: result.golden.cases, maxAbsDiff: result.golden.maxAbsDiff },
        'golden check passed',
      );
    }
    this.o.logger.info(
      { model: manifest.name, p50Ms: b.p50Ms, p99Ms: b.p99Ms, ep: b.ep, shapes: b.inputShapes },
      'benchmark done',
    );
    const rollback = previous !== null && this.wasInstalledBefore(manifest, previous);
    const text = `${manifest.name} (${manifest.modelId} v${manifest.version}) active in slot ${result.slot}: p50 ${b.p50Ms.toFixed(3)} ms on ${b.ep}${previous ? `, replacing ${previous.modelId} v${previous.version}` : ''}`;
    this.o.logger.info(
      { model: manifest.name, slot: result.slot, rollback },
      rollback ? `rolled back: ${text}` : `activated: ${text}`,
    );
    this.o.reporter.event('info', rollback ? 'MODEL_ROLLED_BACK' : 'MODEL_ACTIVATED', text);
  }

  /** A model this agent ran before (a rollout's rollback sends the previous model again). */
  private wasInstalledBefore(manifest: Manifest, previous: { modelId: string }): boolean {
    const seen = this.activated;
    const before = seen.has(manifest.modelId);
    seen.add(previous.modelId);
    seen.add(manifest.modelId);
    return before;
  }

  private readonly activated = new Set<string>();

  /** Signature (fail closed: no pinned key, no install), expiry against signed time, and rollback. */
  private async checkManifest(manifest: Manifest, signature: string | null): Promise<void> {
    const key = this.o.identity.fleetPublicKey;
    if (!key) {
      throw new FleetError('MANIFEST_SIGNATURE', 'no fleet key is pinned: refusing to install', {
        reason: 'no-key',
      });
    }
    verifyManifest(manifest, signature, key);
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
    if (signedTime > this.o.state.state.latestSignedTimeMs) {
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

/** Records `target` as handled (applied or failed for good): its epoch and sequence, and its model. */
function markHandled(s: AgentState, target: TargetState): void {
  const epoch = target.epoch ?? 0;
  s.appliedTargetVersion =
    epoch > s.targetEpoch ? target.version : Math.max(s.appliedTargetVersion ?? 0, target.version);
  s.targetEpoch = Math.max(s.targetEpoch, epoch);
  s.handledSha256 = target.model?.manifest.sha256 ?? null;
}

/** Exponential backoff with ±20 % jitter so a fleet does not retry in lockstep. */
export function backoff(attempt: number, initialMs: number, maxMs: number): number {
  const base = Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 30));
  return Math.round(base * (0.8 + Math.random() * 0.4));
}
