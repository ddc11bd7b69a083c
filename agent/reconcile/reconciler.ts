import { type FleetError, toFleetError } from '../../shared/errors/index.js';
import type { Logger } from '../../shared/logger.js';
import {
  type AgentPhase,
  decodeJson,
  type Manifest,
  type TargetState,
  targetStateSchema,
} from '../../shared/protocol/index.js';
import type { BenchmarkResult } from '../bench/benchmark.js';
import type { DeviceIdentity } from '../enroll.js';
import type { Installer } from '../install/installer.js';
import type { Reporter } from '../reporter.js';
import type { AgentState, StateStore } from '../store/agent-state.js';
import { checkTargetSignature, isNewer, isReannounced } from '../target-guard.js';
import type { Downloader } from '../transfer/downloader.js';
import { TargetApplier } from './apply.js';
import { type AttemptOutcome, RetryWorker } from './worker.js';

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
 * recorded so the same target is not tried again, and every step is reported. The worker loop
 * lives in worker.ts, the steps of one attempt in apply.ts.
 */
export class Reconciler {
  private desired: TargetState | null = null;
  private phase: AgentPhase = 'idle';
  private progress: number | null = null;
  private readonly worker: RetryWorker<TargetState>;
  private readonly applier: TargetApplier;

  constructor(private readonly o: ReconcilerOptions) {
    this.phase = o.state.active() ? 'active' : 'idle';
    this.worker = new RetryWorker({
      // A target that arrives during an attempt is picked up after it, without a restart.
      pending: () => this.pending(),
      attempt: (target, first, signal) => this.attempt(target, first, signal),
      backoffInitialMs: o.backoffInitialMs,
      backoffMaxMs: o.backoffMaxMs,
      logger: o.logger,
    });
    this.applier = new TargetApplier(o, {
      setPhase: (phase, progress) => this.setPhase(phase, progress),
      setProgress: (fraction) => {
        this.progress = fraction;
      },
      report: () => this.report(),
    });
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
        'target already handled; state reported again',
      );
      // The cloud publishes its targets again after it (re)connects to the broker: answering with
      // the current state tells it what the device reported while it was not subscribed (a broker
      // restart loses those reports, and a rollout would wait for a device that already answered).
      this.report();
      const active = this.o.state.active();
      if (active) this.o.reporter.resendBench(active.sha256);
      return;
    }
    this.desired = target;
    this.worker.kick();
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
    await this.worker.stop();
  }

  /** Resolves when no target is pending (tests). */
  async settled(): Promise<void> {
    await this.worker.settled();
  }

  /** The desired target when it is newer than the last one handled; null when there is nothing to do. */
  private pending(): TargetState | null {
    const target = this.desired;
    const { targetEpoch, appliedTargetVersion } = this.o.state.state;
    if (!target || !isNewer(target, targetEpoch, appliedTargetVersion)) return null;
    return target;
  }

  /**
   * One attempt at a target. 'done': applied, or failed for good (recorded so it is not tried
   * again); 'retry': a retryable failure; 'superseded': a newer target or stop() cut it short.
   */
  private async attempt(target: TargetState, first: boolean, signal: AbortSignal): Promise<AttemptOutcome> {
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
      await this.applier.apply(target, signal);
      await this.o.state.update((s) => {
        markHandled(s, target);
        s.lastError = null;
      });
      this.report();
      return 'done';
    } catch (error) {
      if (this.worker.stopped || this.desired !== target) return 'superseded';
      return this.recordFailure(target, toFleetError(error));
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
