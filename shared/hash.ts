import { createHash } from 'node:crypto';

export function sha256Hex(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Number of blocks an artifact of `size` bytes splits into. */
export function blockCount(size: number, blockSize: number): number {
  return Math.max(1, Math.ceil(size / blockSize));
}

/** Byte range [start, end) of block `index`. */
export function blockRange(index: number, size: number, blockSize: number): { start: number; end: number } {
  const start = index * blockSize;
  return { start, end: Math.min(size, start + blockSize) };
}
