import { blockCount, sha256Hex } from '../../shared/hash.js';
import { decodeBlockFrame, type Manifest, PROTOCOL_VERSION } from '../../shared/protocol/index.js';

export type SimTransferStep =
  | { kind: 'progress' | 'ignored' | 'bad' }
  | { kind: 'done'; data: Buffer }
  | { kind: 'refused'; code: string };

/**
 * Block download of one artifact, as the agent does it: ask for a window of block indices on
 * `transfer/req`, check each FMB1 frame's block hash, ask for the next window, and verify the
 * whole artifact's SHA-256 at the end. Blocks live in memory: simulated devices run no model.
 */
export class SimTransfer {
  readonly total: number;
  private readonly blocks: Array<Buffer | undefined>;
  private received = 0;
  private next = 0;
  private lastProgressAt = Date.now();

  constructor(
    readonly manifest: Manifest,
    private readonly windowSize: number,
    private readonly request: (payload: object) => void,
  ) {
    this.total = blockCount(manifest.size, manifest.blockSize);
    this.blocks = new Array(this.total);
  }

  get progress(): number {
    return this.received / this.total;
  }

  /** Asks for the next window of blocks. */
  start(): void {
    this.askMissing();
  }

  /** Asks again for missing blocks when nothing arrived for `stallMs` (a frame lost or dropped). */
  retryIfStalled(stallMs: number): void {
    if (Date.now() - this.lastProgressAt < stallMs) return;
    this.next = 0;
    this.lastProgressAt = Date.now();
    this.askMissing();
  }

  /**
   * Takes one frame: 'done' with the verified artifact, 'progress', 'ignored' (another
   * artifact's frame, or a block that failed its hash: asked for again when the transfer
   * stalls), 'refused' (the cloud answered with an error code), 'bad' (the whole artifact failed
   * its hash), or throws a FleetError (MSG_SCHEMA) for a corrupt frame.
   */
  accept(frame: Buffer): SimTransferStep {
    const { header, data } = decodeBlockFrame(frame);
    if (header.sha256 !== this.manifest.sha256 || header.index >= this.total) return { kind: 'ignored' };
    if (header.error) return { kind: 'refused', code: header.error.code };
    if (header.blockSha256 && sha256Hex(data) !== header.blockSha256) return { kind: 'ignored' };
    if (!this.blocks[header.index]) {
      this.blocks[header.index] = data;
      this.received++;
      this.lastProgressAt = Date.now();
    }
    if (this.received === this.total) {
      const artifact = Buffer.concat(this.blocks as Buffer[]);
      return sha256Hex(artifact) === this.manifest.sha256
        ? { kind: 'done', data: artifact }
        : { kind: 'bad' };
    }
    if (this.received >= this.next) this.askMissing();
    return { kind: 'progress' };
  }

  private askMissing(): void {
    const wanted: number[] = [];
    for (let i = this.next; i < this.total && wanted.length < this.windowSize; i++) {
      if (!this.blocks[i]) wanted.push(i);
      this.next = i + 1;
    }
    if (wanted.length > 0)
      this.request({
        v: PROTOCOL_VERSION,
        sha256: this.manifest.sha256,
        blocks: wanted,
        blockSize: this.manifest.blockSize,
      });
  }
}
