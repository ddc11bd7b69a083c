import { FleetError, toFleetError } from '../../../shared/errors/index.js';
import { blockCount, blockRange, sha256Hex } from '../../../shared/hash.js';
import type { Logger } from '../../../shared/logger.js';
import {
  type BlockHeader,
  DEFAULT_BLOCK_SIZE,
  decodeJson,
  deviceTopic,
  encodeBlockFrame,
  PROTOCOL_VERSION,
  transferRequestSchema,
} from '../../../shared/protocol/index.js';
import { codedStoreError } from '../store/unavailable.js';
import type { ArtifactStore } from './artifacts.js';

/**
 * Serving side of block transfer: a device asks for block indices of an artifact on
 * `.../transfer/req`; each block goes back as one FMB1 frame on `.../transfer/blk` carrying its
 * index and SHA-256. Stateless about the device's progress (resume state lives on the device);
 * per device, at most `maxInFlightPerDevice` blocks are being read/published at once and at most
 * `maxQueuedPerDevice` wait, so one greedy device cannot starve the others or the heap.
 */
export interface TransferServerOptions {
  store: Pick<ArtifactStore, 'get' | 'stat'>;
  publish: (topic: string, payload: Buffer) => Promise<void>;
  logger: Logger;
  /** Blocks read+published concurrently per device. Default 8. */
  maxInFlightPerDevice?: number;
  /** Blocks waiting per device beyond those in flight; extra requests are dropped (the device re-asks). Default 1024. */
  maxQueuedPerDevice?: number;
  /** Largest block served, bytes; keep it under the broker's payload limit. Default 1 MiB. */
  maxBlockSize?: number;
  /**
   * May this device fetch this artifact? The cloud allows the artifacts its own current or
   * pending target names (delivery/artifact-access.ts). Default (tests only): any artifact.
   */
  authorize?: (deviceId: string, sha256: string) => boolean | Promise<boolean>;
}

export const TRANSFER_SERVER_DEFAULTS = {
  maxInFlightPerDevice: 8,
  maxQueuedPerDevice: 1024,
  maxBlockSize: 1 << 20,
};

/** Artifacts whose per-block hashes are kept (64 hex chars per block). */
const HASH_CACHE_ARTIFACTS = 16;

export interface TransferServerStats {
  requests: number;
  blocksServed: number;
  bytesServed: number;
  rejected: number;
  dropped: number;
}

export interface TransferServer {
  /** Handles one payload from `fleetml/v1/d/<deviceId>/transfer/req`. Never throws. */
  handleRequest(deviceId: string, payload: Buffer): Promise<void>;
  stats(): TransferServerStats;
  /** Resolves when no block is queued or in flight (tests, shutdown). */
  idle(): Promise<void>;
}

interface Job {
  sha256: string;
  index: number;
  blockSize: number;
  size: number;
}

interface DeviceQueue {
  pending: Job[];
  keys: Set<string>;
  inFlight: number;
}

export function createTransferServer(options: TransferServerOptions): TransferServer {
  const o = { ...TRANSFER_SERVER_DEFAULTS, ...options };
  const queues = new Map<string, DeviceQueue>();
  const stats: TransferServerStats = {
    requests: 0,
    blocksServed: 0,
    bytesServed: 0,
    rejected: 0,
    dropped: 0,
  };
  let idleWaiters: Array<() => void> = [];

  const sendError = async (deviceId: string, header: Omit<BlockHeader, 'v'>) => {
    await o.publish(
      deviceTopic(deviceId, 'transfer/blk'),
      encodeBlockFrame({ v: PROTOCOL_VERSION, ...header }),
    );
  };

  // A fleet fetches the same artifact many times: hash each block once (bounded LRU by artifact).
  const hashes = new Map<string, (string | undefined)[]>();
  const blockHash = (job: Job, data: Buffer): string => {
    const key = `${job.sha256}:${job.blockSize}`;
    let list = hashes.get(key);
    if (list) {
      hashes.delete(key);
    } else {
      list = new Array(blockCount(job.size, job.blockSize));
      if (hashes.size >= HASH_CACHE_ARTIFACTS) hashes.delete(hashes.keys().next().value!);
    }
    hashes.set(key, list);
    list[job.index] ??= sha256Hex(data);
    return list[job.index]!;
  };

  const serve = async (deviceId: string, job: Job) => {
    const { start, end } = blockRange(job.index, job.size, job.blockSize);
    const data = await o.store.get(job.sha256, { start, end });
    if (data.length !== end - start) {
      throw new FleetError('TRANSFER_TRUNCATED', `artifact ${job.sha256} ended at block ${job.index}`);
    }
    const header: BlockHeader = {
      v: PROTOCOL_VERSION,
      sha256: job.sha256,
      index: job.index,
      total: blockCount(job.size, job.blockSize),
      blockSha256: blockHash(job, data),
    };
    await o.publish(deviceTopic(deviceId, 'transfer/blk'), encodeBlockFrame(header, data));
    stats.blocksServed++;
    stats.bytesServed += data.length;
  };

  const pump = (deviceId: string) => {
    const queue = queues.get(deviceId);
    if (!queue) return;
    while (queue.inFlight < o.maxInFlightPerDevice && queue.pending.length > 0) {
      const job = queue.pending.shift()!;
      queue.keys.delete(keyOf(job));
      queue.inFlight++;
      serve(deviceId, job)
        .catch((error) => {
          const e = toFleetError(error);
          o.logger.warn(
            { deviceId, sha256: job.sha256, index: job.index, code: e.code, err: e.message },
            'block not served',
          );
        })
        .finally(() => {
          queue.inFlight--;
          if (queue.inFlight === 0 && queue.pending.length === 0) {
            queues.delete(deviceId);
            if (queues.size === 0) {
              const waiters = idleWaiters;
              idleWaiters = [];
              for (const w of waiters) w();
            }
          } else {
            pump(deviceId);
          }
        });
    }
  };

  // Forbidden and unknown artifacts get the same answer, so that a device cannot probe which
  // artifacts exist (the log line still tells the operator which one it was).
  const availableSize = async (deviceId: string, sha256: string): Promise<number> => {
    const unavailable = (reason: string) =>
      new FleetError('ARTIFACT_NOT_FOUND', `artifact ${sha256} is not available to this device`, { reason });
    if (o.authorize && !(await o.authorize(deviceId, sha256))) throw unavailable('not named by its target');
    const stat = await o.store.stat(sha256).catch(() => null);
    if (!stat) throw unavailable('not in the store');
    return stat.size;
  };

  const handleRequest = async (deviceId: string, payload: Buffer): Promise<void> => {
    stats.requests++;
    let request: ReturnType<typeof transferRequestSchema.parse>;
    try {
      request = decodeJson(transferRequestSchema, payload);
    } catch (error) {
      stats.rejected++;
      const e = toFleetError(error);
      o.logger.warn({ deviceId, code: e.code, err: e.message }, 'rejected transfer request');
      return;
    }
    const blockSize = request.blockSize ?? DEFAULT_BLOCK_SIZE;
    try {
      if (blockSize > o.maxBlockSize) {
        throw new FleetError(
          'INPUT_INVALID',
          `block size ${blockSize} exceeds the server limit ${o.maxBlockSize}`,
        );
      }
      const size = await availableSize(deviceId, request.sha256);
      const total = blockCount(size, blockSize);
      const queue = queues.get(deviceId) ?? { pending: [], keys: new Set<string>(), inFlight: 0 };
      queues.set(deviceId, queue);
      for (const index of request.blocks) {
        if (index >= total) {
          await sendError(deviceId, {
            sha256: request.sha256,
            index,
            total,
            error: { code: 'INPUT_INVALID', message: `block ${index} is beyond the last block ${total - 1}` },
          });
          continue;
        }
        const job = { sha256: request.sha256, index, blockSize, size };
        const key = keyOf(job);
        if (queue.keys.has(key)) continue;
        if (queue.pending.length >= o.maxQueuedPerDevice) {
          stats.dropped++;
          continue;
        }
        queue.keys.add(key);
        queue.pending.push(job);
      }
      if (queue.pending.length === 0 && queue.inFlight === 0) queues.delete(deviceId);
      pump(deviceId);
    } catch (error) {
      stats.rejected++;
      // A store that cannot answer (authorize reads targets and devices) is STORE_UNAVAILABLE,
      // which the device retries, not INTERNAL.
      const e = toFleetError(codedStoreError(error));
      o.logger.warn(
        { deviceId, sha256: request.sha256, code: e.code, err: e.message, reason: e.details?.reason },
        'refused transfer request',
      );
      await sendError(deviceId, {
        sha256: request.sha256,
        index: request.blocks[0],
        total: 1,
        error: { code: e.code, message: e.message.slice(0, 2000) },
      }).catch(() => {});
    }
  };

  return {
    handleRequest,
    stats: () => ({ ...stats }),
    idle: () =>
      queues.size === 0 ? Promise.resolve() : new Promise<void>((resolve) => idleWaiters.push(resolve)),
  };
}

function keyOf(job: Job): string {
  return `${job.sha256}:${job.blockSize}:${job.index}`;
}
