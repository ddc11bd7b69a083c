import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readdir, rename, rm, stat, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { FleetError } from '../../shared/errors/index.js';
import type { Logger } from '../../shared/logger.js';
import type { GoldenSet } from '../../shared/manifest/index.js';
import type { ExecutionProvider, Manifest } from '../../shared/protocol/index.js';
import { type BenchmarkOptions, type BenchmarkResult, runBenchmark } from '../bench/benchmark.js';
import { createSession, DEFAULT_SESSION_PROFILE, type SessionProfile } from '../runtime/ort.js';
import { precisionOfVariant } from '../runtime/tensorrt.js';
import type { SlotName, StateStore } from '../store/agent-state.js';
import { fsyncDir, readJsonFile, writeFileAtomic } from '../store/files.js';
import { checkGolden, type GoldenResult } from './golden-check.js';
import { checkModelIsolated } from './model-check.js';

export interface InstallerOptions {
  dataDir: string;
  state: StateStore;
  ep: ExecutionProvider;
  profile: Omit<SessionProfile, 'ep'>;
  bench: BenchmarkOptions;
  logger: Logger;
  /** Free disk to keep beyond a download, bytes. */
  minFreeDiskBytes: number;
  /**
   * Load and run the new model once in a child process first, killed after this many ms
   * (RUNTIME_TIMEOUT); 0 loads it straight into the agent (trusted models only). Default 120 000.
   */
  modelCheckTimeoutMs?: number;
}

export const INSTALLER_DEFAULTS = { modelCheckTimeoutMs: 120_000 };

export interface InstallResult {
  slot: SlotName;
  bench: BenchmarkResult;
  golden: GoldenResult | null;
}

/**
 * A/B install: the new artifact goes into the inactive slot, is loaded, checked against its
 * golden outputs and benchmarked there; only then does state.json (written atomically) name it
 * active. Any failure before that leaves the old slot active and untouched.
 */
export class Installer {
  constructor(private readonly o: InstallerOptions) {}

  modelPath(slot: SlotName): string {
    return join(this.o.dataDir, 'slots', slot, 'model.onnx');
  }

  transfersDir(): string {
    return join(this.o.dataDir, 'transfers');
  }

  inactiveSlot(): SlotName {
    return this.o.state.state.activeSlot === 'a' ? 'b' : 'a';
  }

  /**
   * The inactive slot's file when it already holds this artifact, whole and with the right
   * SHA-256 (a restart during install): it need not be fetched again. Null otherwise.
   */
  async verifiedInSlot(manifest: Manifest): Promise<string | null> {
    const slot = this.inactiveSlot();
    const path = this.modelPath(slot);
    const held = (await readJsonFile(join(this.o.dataDir, 'slots', slot, 'manifest.json')).catch(
      () => undefined,
    )) as { sha256?: string } | undefined;
    if (held?.sha256 !== manifest.sha256) return null;
    const info = await stat(path).catch(() => null);
    if (!info || info.size !== manifest.size) return null;
    const hash = createHash('sha256');
    for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
    return hash.digest('hex') === manifest.sha256 ? path : null;
  }

  async install(
    manifest: Manifest,
    artifactPath: string,
    golden: GoldenSet | null,
    onPhase: (phase: 'installing' | 'benchmarking') => void,
  ): Promise<InstallResult> {
    const slot = this.inactiveSlot();
    const dir = join(this.o.dataDir, 'slots', slot);
    onPhase('installing');
    await mkdir(dir, { recursive: true });
    // The slot is about to hold other bytes: forget what it held before the rename.
    await this.o.state.update((s) => {
      s.slots[slot] = null;
    });
    await rename(artifactPath, this.modelPath(slot));
    await fsyncDir(dir);
    await writeFileAtomic(join(dir, 'manifest.json'), JSON.stringify(manifest, null, 2));

    const checkTimeoutMs = this.o.modelCheckTimeoutMs ?? INSTALLER_DEFAULTS.modelCheckTimeoutMs;
    if (checkTimeoutMs > 0) {
      const check = await checkModelIsolated(this.modelPath(slot), {
        timeoutMs: checkTimeoutMs,
        dynamicDim: this.o.bench.dynamicDim ?? 1,
        servingShapes: manifest.servingShapes,
        profile: {
          ...DEFAULT_SESSION_PROFILE,
          ...this.o.profile,
          ep: this.o.ep,
          precision: precisionOfVariant(manifest.variant),
        },
      });
      this.o.logger.debug(
        { slot, loadMs: check.loadMs, runMs: check.runMs },
        'model passed the isolated check',
      );
    }
    const t0 = performance.now();
    const session = await createSession(this.modelPath(slot), {
      ...this.o.profile,
      ep: this.o.ep,
      precision: precisionOfVariant(manifest.variant),
    });
    const loadMs = performance.now() - t0;
    try {
      const goldenResult = golden
        ? await checkGolden(session, golden, manifest.golden?.tolerance ?? 1e-4)
        : null;
      onPhase('benchmarking');
      const bench = await runBenchmark(session, this.o.ep, {
        ...this.o.bench,
        servingShapes: manifest.servingShapes,
      });
      if (bench.unresolvedDims.length > 0) {
        this.o.logger.warn(
          { modelId: manifest.modelId, unresolved: bench.unresolvedDims, shapes: bench.inputShapes },
          'model has symbolic dimensions and no serving shape: benchmarked at a guessed shape (upload it with --shape)',
        );
      }
      bench.loadMs = Math.round(loadMs * 100) / 100;
      await this.o.state.update((s) => {
        s.slots[slot] = {
          modelId: manifest.modelId,
          version: manifest.version,
          sha256: manifest.sha256,
          size: manifest.size,
          installedAt: new Date().toISOString(),
          ...(manifest.servingShapes ? { servingShapes: manifest.servingShapes } : {}),
        };
        s.activeSlot = slot;
      });
      return { slot, bench, golden: goldenResult };
    } finally {
      await session.release().catch(() => {});
    }
  }

  /**
   * Makes room for `needed` more bytes plus the reserve: first stale partial downloads, then the
   * inactive slot (the previous model). Refuses (TRANSFER_NO_SPACE) when that is not enough.
   */
  async ensureSpace(needed: number, keepSha: string): Promise<void> {
    const enough = async () => {
      const fs = await statfs(this.o.dataDir);
      return fs.bavail * fs.bsize >= needed + this.o.minFreeDiskBytes;
    };
    if (await enough()) return;
    const stale = (await readdir(this.transfersDir()).catch(() => [] as string[])).filter(
      (n) => !n.startsWith(keepSha),
    );
    for (const name of stale) await rm(join(this.transfersDir(), name), { force: true });
    if (await enough()) return;
    for (const slot of ['a', 'b'] as const) {
      if (slot === this.o.state.state.activeSlot) continue;
      this.o.logger.warn({ slot }, 'disk low: removing the previous model from the inactive slot');
      await rm(join(this.o.dataDir, 'slots', slot), { recursive: true, force: true });
      if (this.o.state.state.slots[slot]) {
        await this.o.state.update((s) => {
          s.slots[slot] = null;
        });
      }
    }
    if (await enough()) return;
    const fs = await statfs(this.o.dataDir);
    throw new FleetError(
      'TRANSFER_NO_SPACE',
      `artifact needs ${needed} bytes plus a ${this.o.minFreeDiskBytes}-byte reserve; ${fs.bavail * fs.bsize} free`,
      { needed, free: fs.bavail * fs.bsize },
    );
  }
}
