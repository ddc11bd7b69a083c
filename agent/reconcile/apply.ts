import { readFile, rm } from 'node:fs/promises';
import { FleetError } from '../../shared/errors/index.js';
import {
  checkManifestFreshness,
  decodeGoldenSet,
  type GoldenSet,
  verifyManifest,
} from '../../shared/manifest/index.js';
import type { AgentPhase, Manifest, TargetState } from '../../shared/protocol/index.js';
import { checkRelease } from '../target-guard.js';
import type { ArtifactSpec } from '../transfer/transfer-types.js';
import { ActivationReport } from './activation.js';
import type { ReconcilerOptions } from './reconciler.js';

/** How the apply steps tell the reconciler where they are; setPhase reports, setProgress does not. */
export interface PhaseSink {
  setPhase(phase: AgentPhase, progress: number | null): void;
  setProgress(fraction: number): void;
  report(): void;
}

type ModelFields = { model: string; modelId: string; version: number };

/**
 * The steps from a verified target to an active model: verify the manifest, fetch the artifact
 * (or reuse one already verified in the inactive slot) and its golden set, install A/B with the
 * golden check and benchmark, activate, report. Any step throws a FleetError to fail the attempt.
 */
export class TargetApplier {
  private readonly activation: ActivationReport;

  constructor(
    private readonly o: ReconcilerOptions,
    private readonly sink: PhaseSink,
  ) {
    this.activation = new ActivationReport(o.reporter, o.logger);
  }

  async apply(target: TargetState, signal: AbortSignal): Promise<void> {
    const { state } = this.o;
    if (!target.model) {
      this.sink.setPhase(state.active() ? 'active' : 'idle', null);
      return;
    }
    const { manifest, signature } = target.model;
    await this.checkManifest(manifest, signature);
    checkRelease(manifest, target, state.state.releases);
    if (state.active()?.sha256 === manifest.sha256) {
      this.sink.setPhase('active', null);
      return;
    }
    const model = { model: manifest.name, modelId: manifest.modelId, version: manifest.version };
    this.o.logger.info(
      { ...model, variant: manifest.variant },
      'manifest verified (signature, expiry, version)',
    );
    const blockSize = Math.min(manifest.blockSize, this.o.maxBlockSize);
    const path = await this.obtainArtifact(manifest, blockSize, model, signal);
    const golden = manifest.golden ? await this.fetchGolden(manifest, blockSize, signal) : null;
    await this.installAndActivate(manifest, path, golden);
  }

  /** Signature (fail closed: no pinned key, no install), expiry against signed time, and rollback. */
  private async checkManifest(manifest: Manifest, signature: string | null): Promise<void> {
    const key = this.o.identity.fleetPublicKey;
    if (!key) {
      throw new FleetError('MANIFEST_SIGNATURE', 'no fleet key is pinned: refusing to install', {
        reason: 'no-key',
      });
    }
    verifyManifest(manifest, signature, key);
    const { state } = this.o;
    const signedTime = checkManifestFreshness(manifest, {
      latestSignedTimeMs: state.state.latestSignedTimeMs,
      clockSkewMs: this.o.clockSkewMs,
      clockTrustWindowMs: this.o.clockTrustWindowMs,
    });
    const installed = state.active();
    if (installed && installed.modelId === manifest.modelId && manifest.version < installed.version) {
      throw new FleetError(
        'MANIFEST_ROLLBACK',
        `manifest version ${manifest.version} of ${manifest.modelId} is lower than the installed ${installed.version}`,
        { modelId: manifest.modelId, version: manifest.version, installed: installed.version },
      );
    }
    if (signedTime > state.state.latestSignedTimeMs) {
      await state.update((s) => {
        s.latestSignedTimeMs = signedTime;
      });
    }
  }

  /** The path of the verified artifact: the one already in the inactive slot, or a fresh transfer. */
  private async obtainArtifact(
    manifest: Manifest,
    blockSize: number,
    model: ModelFields,
    signal: AbortSignal,
  ): Promise<string> {
    const ready = await this.o.installer.verifiedInSlot(manifest);
    if (ready) {
      this.o.logger.info(
        { ...model, sha256: manifest.sha256 },
        'already verified in the inactive slot: not fetched again',
      );
      return ready;
    }
    const spec = { sha256: manifest.sha256, size: manifest.size, blockSize };
    const path = await this.transfer(manifest, spec, model, signal);
    this.o.logger.info({ ...model, bytes: manifest.size }, 'transfer done, SHA-256 verified');
    return path;
  }

  /** Fetches the artifact (resuming what is held), reporting progress. */
  private async transfer(
    manifest: Manifest,
    spec: ArtifactSpec,
    model: ModelFields,
    signal: AbortSignal,
  ): Promise<string> {
    const held = await this.o.downloader.heldBytes(spec);
    await this.o.installer.ensureSpace(manifest.size - held + (manifest.golden?.size ?? 0), manifest.sha256);
    this.o.logger.info({ ...model, bytes: manifest.size, alreadyHeld: held }, 'transfer started');
    this.sink.setPhase('downloading', 0);
    let lastReported = 0;
    const onProgress = (fraction: number) => {
      this.sink.setProgress(fraction);
      if (fraction - lastReported < 0.1) return;
      // One line per quarter on the terminal; the state report goes out every tenth.
      if (Math.floor(fraction * 4) > Math.floor(lastReported * 4) && fraction < 1)
        this.o.logger.info({ ...model, percent: Math.round(fraction * 100) }, 'transfer progress');
      lastReported = fraction;
      this.sink.report();
    };
    const { path } = await this.o.downloader.download(spec, onProgress, signal);
    return path;
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

  private onInstallPhase(manifest: Manifest, phase: AgentPhase): void {
    this.sink.setPhase(phase, null);
    // Benchmarking starts once the model sits in its slot and passed the isolated load
    // check and the golden check: that is what "installed" means here.
    if (phase !== 'benchmarking') return;
    const model = { model: manifest.name, modelId: manifest.modelId, version: manifest.version };
    this.o.logger.info(model, 'installed: load check and golden check passed, benchmarking');
    this.o.reporter.event(
      'info',
      'MODEL_INSTALLED',
      `${manifest.name} (${manifest.modelId} v${manifest.version}) installed in the inactive slot; load${manifest.golden ? ' and golden' : ''} check passed`,
    );
  }

  /** A/B install (golden check and benchmark inside), then the release recorded, the switch reported. */
  private async installAndActivate(
    manifest: Manifest,
    path: string,
    golden: GoldenSet | null,
  ): Promise<void> {
    const { state } = this.o;
    const previous = state.active();
    const result = await this.o.installer.install(manifest, path, golden, (phase) =>
      this.onInstallPhase(manifest, phase),
    );
    await state.update((s) => {
      s.releases[manifest.name] = Math.max(s.releases[manifest.name] ?? 0, manifest.release ?? 0);
    });
    this.sink.setPhase('active', null);
    this.activation.announce(manifest, result, previous);
    this.activation.reportBench(manifest, result);
    this.o.onActivated?.(manifest, result.bench);
  }
}
