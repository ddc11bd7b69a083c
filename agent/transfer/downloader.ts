import { mkdir, open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { FleetError } from '../../shared/errors/index.js';
import { blockCount } from '../../shared/hash.js';
import { deviceTopic } from '../../shared/protocol/index.js';
import { ActiveTransfer } from './active-transfer.js';
import { BlockBitmap as Bitmap } from './bitmap.js';
import { hashFile, toDiskError } from './disk-io.js';
import { clearResumeState, loadResumeState } from './resume-state.js';
import {
  type ArtifactSpec,
  DOWNLOADER_DEFAULTS,
  type DownloaderOptions,
  type ResolvedDownloaderOptions,
  type TransferStats,
} from './transfer-types.js';

export {
  type ArtifactSpec,
  DOWNLOADER_DEFAULTS,
  type DownloaderOptions,
  type TransferStats,
} from './transfer-types.js';

/** Fetches one artifact at a time over MQTT blocks into `dir`; resumable across restarts. */
export class Downloader {
  private readonly o: ResolvedDownloaderOptions;
  private active: ActiveTransfer | null = null;
  private subscribed = false;
  /** Statistics of the most recent transfer attempt (finished or not). */
  lastStats: TransferStats | null = null;

  constructor(options: DownloaderOptions) {
    this.o = { ...DOWNLOADER_DEFAULTS, ...options };
  }

  partPath(sha256: string): string {
    return join(this.o.dir, `${sha256}.part`);
  }

  resumePath(sha256: string): string {
    return join(this.o.dir, `${sha256}.resume.json`);
  }

  /** Bytes already held for this artifact (to size the disk check). */
  async heldBytes(spec: ArtifactSpec): Promise<number> {
    const bitmap = await loadResumeState(
      this.resumePath(spec.sha256),
      spec,
      blockCount(spec.size, spec.blockSize),
    );
    return bitmap ? Math.min(spec.size, bitmap.count * spec.blockSize) : 0;
  }

  /** Resolves with the path of the complete, verified temporary file. */
  async download(
    spec: ArtifactSpec,
    onProgress?: (fraction: number) => void,
    signal?: AbortSignal,
  ): Promise<{ path: string; stats: TransferStats }> {
    if (this.active) throw new FleetError('CONFLICT', 'a transfer is already running');
    await mkdir(this.o.dir, { recursive: true });
    if (!this.subscribed) {
      await this.o.transport.subscribe(
        deviceTopic(this.o.deviceId, 'transfer/blk'),
        (payload) => this.active?.onFrame(payload),
        0,
      );
      this.subscribed = true;
    }
    const total = blockCount(spec.size, spec.blockSize);
    const resume = this.resumePath(spec.sha256);
    const part = this.partPath(spec.sha256);
    let bitmap = await loadResumeState(resume, spec, total);
    const handle = await open(part, bitmap ? 'r+' : 'w+').catch(async () => {
      bitmap = null;
      return open(part, 'w+');
    });
    bitmap ??= new Bitmap(total);
    const transfer = new ActiveTransfer(this.o, spec, bitmap, handle, resume, onProgress);
    this.active = transfer;
    this.lastStats = transfer.stats;
    const offConnect = this.o.transport.onConnect(() => transfer.onReconnect());
    const onAbort = () => transfer.fail(new FleetError('TRANSFER_TIMEOUT', 'transfer stopped'));
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      await transfer.run();
      await handle.sync();
      await handle.close();
      const actual = await hashFile(part);
      if (actual !== spec.sha256) {
        await clearResumeState(resume, part);
        throw new FleetError(
          'TRANSFER_HASH',
          `artifact hash ${actual} does not match the manifest's ${spec.sha256}`,
          {
            sha256: spec.sha256,
          },
        );
      }
      await clearResumeState(resume);
      return { path: part, stats: transfer.stats };
    } catch (error) {
      await handle.close().catch(() => {});
      const e = toDiskError(error, spec.sha256);
      if (e.code === 'TRANSFER_NO_SPACE') {
        // A full disk hurts everything else on the device (the running model, logs, the
        // outbox): give the partial file's space back rather than keep it for a resume.
        await clearResumeState(resume, part);
        this.o.logger.warn({ sha256: spec.sha256, err: e.message }, 'disk full: download stopped');
      }
      throw e;
    } finally {
      offConnect();
      signal?.removeEventListener('abort', onAbort);
      this.active = null;
    }
  }

  /** Removes partial downloads other than `keep` (a new target replaced them). */
  async discard(sha256: string): Promise<void> {
    await rm(this.partPath(sha256), { force: true });
    await rm(this.resumePath(sha256), { force: true });
  }
}
