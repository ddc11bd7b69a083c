import { describe, expect, it } from 'vitest';
import { blockCount, blockRange, sha256Hex } from '../../../shared/hash.js';

describe('hashing and chunking', () => {
  it('hashes like the SHA-256 test vector', () => {
    expect(sha256Hex(Buffer.from('abc'))).toBe(
      'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad',
    );
  });

  it('splits sizes into blocks that cover every byte exactly once', () => {
    for (const [size, blockSize] of [
      [1, 64],
      [64, 64],
      [65, 64],
      [1_000_003, 65_536],
    ]) {
      const n = blockCount(size, blockSize);
      let covered = 0;
      for (let i = 0; i < n; i++) {
        const { start, end } = blockRange(i, size, blockSize);
        expect(start).toBe(covered);
        expect(end).toBeGreaterThan(start);
        covered = end;
      }
      expect(covered).toBe(size);
    }
  });
});
