import type { Logger } from '../../shared/logger.js';
import type { MqttTransport } from '../transport/mqtt.js';

export interface DownloaderOptions {
  transport: MqttTransport;
  deviceId: string;
  /** Directory for <sha>.part and <sha>.resume.json. */
  dir: string;
  logger: Logger;
  /** Blocks in flight at once. Default 16 (the agent's config raises it to 64). */
  windowBlocks?: number;
  /** Re-request a block after this many ms without it. Default 3000. */
  blockTimeoutMs?: number;
  /** Fail (TRANSFER_TIMEOUT, retryable) after this many ms without any block. Default 30 000. */
  stallMs?: number;
  /** Persist the bitmap at most this often, ms. Default 250. */
  flushIntervalMs?: number;
}

export const DOWNLOADER_DEFAULTS = {
  windowBlocks: 16,
  blockTimeoutMs: 3000,
  stallMs: 30_000,
  flushIntervalMs: 250,
};

export interface ArtifactSpec {
  sha256: string;
  size: number;
  blockSize: number;
}

export interface TransferStats {
  total: number;
  /** Blocks already on disk when this attempt started (resumed). */
  resumedBlocks: number;
  /** Block indices asked for, counting repeats. */
  requestedBlocks: number;
  receivedBlocks: number;
  duplicateBlocks: number;
  /** Blocks asked for again after a timeout or reconnect. */
  rerequestedBlocks: number;
  badBlocks: number;
  bytes: number;
}

/** Options with every default filled in. */
export type ResolvedDownloaderOptions = Required<
  Omit<DownloaderOptions, 'transport' | 'logger' | 'deviceId' | 'dir'>
> &
  DownloaderOptions;
