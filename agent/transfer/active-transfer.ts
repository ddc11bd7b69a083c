import type { FileHandle } from 'node:fs/promises';
import { FleetError, toFleetError } from '../../shared/errors/index.js';
import { blockRange, sha256Hex } from '../../shared/hash.js';
import {
  decodeBlockFrame,
  deviceTopic,
  encodeJson,
  MAX_BLOCKS_PER_REQUEST,
  PROTOCOL_VERSION,
} from '../../shared/protocol/index.js';
import { BlockBitmap as Bitmap, type BlockBitmap } from './bitmap.js';
import { toDiskError } from './disk-io.js';
import { saveResumeState } from './resume-state.js';
import type { ArtifactSpec, ResolvedDownloaderOptions, TransferStats } from './transfer-types.js';

/**
 * One transfer attempt: keeps a bounded window of block requests in flight, re-asks for
 * blocks that time out or were lost with a connection, checks and writes each block, and
 * persists the bitmap of held blocks (only after the data is flushed).
 */
export class ActiveTransfer {
  readonly stats: TransferStats;
  private readonly inFlight = new Map<number, number>();
  private readonly pendingWrites = new Set<Promise<void>>();
  private readonly writing = new Set<number>();
  private cursor: Generator<number>;
  private readonly retry: number[] = [];
  private lastProgressAt = Date.now();
  // 0, not now: the first block is persisted at once (a kill in the first 250 ms keeps it).
  private lastFlushAt = 0;
  private unflushed = 0;
  private flushing: Promise<void> | null = null;
  private timer: NodeJS.Timeout | undefined;
  private settle!: { resolve: () => void; reject: (e: Error) => void };
  private done = false;

  constructor(
    private readonly o: ResolvedDownloaderOptions,
    private readonly spec: ArtifactSpec,
    private readonly bitmap: BlockBitmap,
    private readonly handle: FileHandle,
    private readonly resumePath: string,
    private readonly onProgress?: (fraction: number) => void,
  ) {
    this.cursor = bitmap.missing();
    this.stats = {
      total: bitmap.total,
      resumedBlocks: bitmap.count,
      requestedBlocks: 0,
      receivedBlocks: 0,
      duplicateBlocks: 0,
      rerequestedBlocks: 0,
      badBlocks: 0,
      bytes: 0,
    };
  }

  run(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.settle = { resolve, reject };
      if (this.bitmap.complete) {
        this.finish();
        return;
      }
      this.o.logger.info(
        { sha256: this.spec.sha256, total: this.bitmap.total, held: this.bitmap.count },
        this.bitmap.count > 0 ? 'resuming transfer' : 'starting transfer',
      );
      this.timer = setInterval(() => this.tick(), Math.max(50, Math.floor(this.o.blockTimeoutMs / 4)));
      this.refill(true);
    });
  }

  fail(error: Error): void {
    if (this.done) return;
    this.done = true;
    clearInterval(this.timer);
    // Keep what is on disk: the next attempt resumes from the persisted bitmap.
    this.flush()
      .catch(() => {})
      .finally(() => this.settle.reject(error));
  }

  onReconnect(): void {
    if (this.done) return;
    // Blocks (QoS 0) and requests in flight when the link dropped are gone: ask for them again.
    // With nothing in flight (a transfer that started while offline) this is its first request.
    for (const index of this.inFlight.keys()) this.retry.push(index);
    this.stats.rerequestedBlocks += this.inFlight.size;
    this.inFlight.clear();
    this.refill(true);
  }

  onFrame(payload: Buffer): void {
    if (this.done) return;
    let frame: ReturnType<typeof decodeBlockFrame>;
    try {
      frame = decodeBlockFrame(payload);
    } catch (error) {
      this.stats.badBlocks++;
      const e = toFleetError(error);
      this.o.logger.warn({ code: e.code, err: e.message }, 'rejected block frame');
      return;
    }
    const { header, data } = frame;
    if (header.sha256 !== this.spec.sha256) return;
    if (header.error) {
      const code = header.error.code === 'ARTIFACT_NOT_FOUND' ? 'ARTIFACT_NOT_FOUND' : 'TRANSFER_TRUNCATED';
      this.fail(
        new FleetError(
          code,
          `cloud refused block ${header.index}: ${header.error.code}: ${header.error.message}`,
        ),
      );
      return;
    }
    const { start, end } = blockRange(header.index, this.spec.size, this.spec.blockSize);
    const valid =
      header.total === this.bitmap.total &&
      header.index < this.bitmap.total &&
      data.length === end - start &&
      (header.blockSha256 === undefined || sha256Hex(data) === header.blockSha256);
    if (!valid) {
      this.stats.badBlocks++;
      this.o.logger.warn({ index: header.index }, 'block failed its size or hash check; asking again');
      if (this.inFlight.delete(header.index)) this.retry.push(header.index);
      this.refill(false);
      return;
    }
    this.lastProgressAt = Date.now();
    if (this.bitmap.has(header.index) || this.writing.has(header.index)) {
      // Late copy of a block we re-requested or already hold: the bitmap decides, not the wire.
      this.stats.duplicateBlocks++;
      return;
    }
    this.inFlight.delete(header.index);
    this.writing.add(header.index);
    this.stats.receivedBlocks++;
    this.stats.bytes += data.length;
    const write = this.handle
      .write(data, 0, data.length, start)
      .then(() => {
        this.writing.delete(header.index);
        if (this.bitmap.set(header.index)) this.unflushed++;
        this.onProgress?.(this.bitmap.count / this.bitmap.total);
        if (this.bitmap.complete) this.finish();
        else this.maybeFlush();
      })
      .catch((error) => this.fail(toDiskError(error, this.spec.sha256)))
      .finally(() => this.pendingWrites.delete(write));
    this.pendingWrites.add(write);
    this.refill(false);
  }

  private finish(): void {
    if (this.done) return;
    this.done = true;
    clearInterval(this.timer);
    Promise.all(this.pendingWrites).then(
      () => this.settle.resolve(),
      (e) => this.settle.reject(e),
    );
  }

  private tick(): void {
    if (this.done) return;
    const now = Date.now();
    if (now - this.lastProgressAt > this.o.stallMs) {
      this.fail(new FleetError('TRANSFER_TIMEOUT', `no block arrived for ${this.o.stallMs} ms`));
      return;
    }
    if (!this.o.transport.connected) return;
    let expired = 0;
    for (const [index, sentAt] of this.inFlight) {
      if (now - sentAt > this.o.blockTimeoutMs) {
        this.inFlight.delete(index);
        this.retry.push(index);
        expired++;
      }
    }
    if (expired > 0) {
      this.stats.rerequestedBlocks += expired;
      this.refill(true);
    } else if (this.inFlight.size === 0) {
      // Nothing asked for although blocks are missing (every earlier request was refused by
      // a dead link): ask now rather than stall until stallMs.
      this.refill(true);
    }
  }

  /** Asks for more blocks when a quarter of the window is free (or at once when `force`). */
  private refill(force: boolean): void {
    if (this.done || !this.o.transport.connected) return;
    const free = this.o.windowBlocks - this.inFlight.size;
    if (free <= 0 || (!force && free < Math.ceil(this.o.windowBlocks / 4))) return;
    const blocks: number[] = [];
    const now = Date.now();
    while (blocks.length < Math.min(free, MAX_BLOCKS_PER_REQUEST)) {
      const index = this.retry.length > 0 ? this.retry.shift()! : this.nextMissing();
      if (index === undefined) break;
      if (this.bitmap.has(index) || this.inFlight.has(index) || this.writing.has(index)) continue;
      this.inFlight.set(index, now);
      blocks.push(index);
    }
    if (blocks.length === 0) return;
    this.stats.requestedBlocks += blocks.length;
    const request = { v: PROTOCOL_VERSION, sha256: this.spec.sha256, blocks, blockSize: this.spec.blockSize };
    this.o.transport
      .publish(deviceTopic(this.o.deviceId, 'transfer/req'), encodeJson(request), { qos: 0 })
      .catch(() => {
        // Lost with the connection; the reconnect handler asks again.
      });
  }

  private nextMissing(): number | undefined {
    for (;;) {
      const next = this.cursor.next();
      if (next.done) return undefined;
      if (!this.bitmap.has(next.value) && !this.inFlight.has(next.value) && !this.writing.has(next.value)) {
        return next.value;
      }
    }
  }

  private maybeFlush(): void {
    if (this.flushing || this.unflushed === 0) return;
    if (Date.now() - this.lastFlushAt < this.o.flushIntervalMs) return;
    this.flushing = this.flush()
      .catch((error) => this.fail(toDiskError(error, this.spec.sha256)))
      .finally(() => (this.flushing = null));
  }

  private async flush(): Promise<void> {
    if (this.unflushed === 0) return;
    // Snapshot first: only blocks written before the fsync may be claimed.
    const snapshot = new Bitmap(this.bitmap.total, this.bitmap.bits.slice());
    this.unflushed = 0;
    this.lastFlushAt = Date.now();
    await this.handle.sync();
    await saveResumeState(this.resumePath, this.spec, snapshot);
  }
}
