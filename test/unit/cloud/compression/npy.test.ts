import { describe, expect, it } from 'vitest';
import { formatNpy, parseNpy, toLabels } from '../../../../cloud/compression/data/npy.js';
import { FleetError } from '../../../../shared/errors/index.js';

describe('.npy reader', () => {
  it('round-trips float32 inputs and int64 labels', () => {
    const x = Float32Array.from({ length: 24 }, (_, i) => i / 3);
    const parsed = parseNpy(formatNpy(x, [2, 3, 4]));
    expect(parsed.shape).toEqual([2, 3, 4]);
    expect([...parsed.data]).toEqual([...x]);
    const y = BigInt64Array.from([3n, 1n, 4n]);
    expect([...toLabels(parseNpy(formatNpy(y, [3])))]).toEqual([3, 1, 4]);
  });

  it('aligns the data on 64 bytes as numpy does', () => {
    const bytes = formatNpy(new Uint8Array([1, 2, 3]), [3]);
    expect((bytes.length - 3) % 64).toBe(0);
  });

  it('reports truncated and foreign files with NPY_INVALID', () => {
    const bytes = formatNpy(new Float32Array(100), [100]);
    for (const bad of [
      bytes.subarray(0, bytes.length - 4),
      Buffer.from('hello world'),
      bytes.subarray(0, 20),
    ]) {
      expect(() => parseNpy(bad)).toThrow(FleetError);
      try {
        parseNpy(bad);
      } catch (error) {
        expect((error as FleetError).code).toBe('NPY_INVALID');
      }
    }
  });

  it('reports unknown format versions and short version-2 headers with NPY_INVALID (found by the fuzz test)', () => {
    for (const bad of [
      Buffer.from([147, 78, 85, 77, 80, 89, 0, 0, 0, 1]),
      Buffer.from([147, 78, 85, 77, 80, 89, 2, 0, 0, 1]),
    ]) {
      expect(() => parseNpy(bad)).toThrow(/NPY|not supported|truncated/);
      try {
        parseNpy(bad);
      } catch (error) {
        expect((error as FleetError).code).toBe('NPY_INVALID');
      }
    }
  });

  it('refuses float labels', () => {
    expect(() => toLabels(parseNpy(formatNpy(new Float32Array([1, 2]), [2])))).toThrow(/integers/);
  });
});
