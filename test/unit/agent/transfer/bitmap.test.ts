import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BlockBitmap } from '../../../../agent/transfer/bitmap.js';
import { loadResumeState, saveResumeState } from '../../../../agent/transfer/resume-state.js';

describe('block bitmap', () => {
  it('tracks held blocks and lists the missing ones', () => {
    const b = new BlockBitmap(11);
    expect(b.set(0)).toBe(true);
    expect(b.set(0)).toBe(false);
    b.set(10);
    b.set(7);
    expect(b.count).toBe(3);
    expect([...b.missing()]).toEqual([1, 2, 3, 4, 5, 6, 8, 9]);
    const copy = BlockBitmap.fromBase64(11, b.toBase64());
    expect([...copy.missing()]).toEqual([...b.missing()]);
    expect(copy.count).toBe(3);
  });

  it('persists resume state and ignores state for another artifact or block size', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fleetml-bm-'));
    const key = { sha256: 'a'.repeat(64), size: 1000, blockSize: 256 };
    const b = new BlockBitmap(4);
    b.set(2);
    await saveResumeState(join(dir, 'r.json'), key, b);
    expect((await loadResumeState(join(dir, 'r.json'), key, 4))?.has(2)).toBe(true);
    expect(await loadResumeState(join(dir, 'r.json'), { ...key, blockSize: 512 }, 2)).toBeNull();
    expect(await loadResumeState(join(dir, 'missing.json'), key, 4)).toBeNull();
    await rm(dir, { recursive: true, force: true });
  });
});
