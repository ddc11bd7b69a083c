import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readNpy, writeNpy } from '../../../../cloud/compression/data/npy.js';
import { splitCompressionData } from '../../../../cloud/compression/pipeline/data-split.js';

// README "Compress models": `--data mnist` is the 10,000 digits split 8,000/2,000; `compress`
// holds out 20 % of a .npy set for evaluation and trains and calibrates on the rest.
describe('compression data split', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleetml-split-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('mnist: 8,000 digits to train and calibrate, 2,000 held out, all labelled', async () => {
    const split = await splitCompressionData('mnist', undefined, join(dir, 'mnist'));
    expect([split.train.count, split.holdout.count]).toEqual([8000, 2000]);
    expect(split.holdout.labels).toHaveLength(2000);
  });

  it('a .npy set: the last 20 % held out, the rest written for the training stage', async () => {
    const x = Float32Array.from({ length: 10 * 3 }, (_, i) => i);
    await writeNpy(join(dir, 'x.npy'), x, [10, 3]);
    await writeNpy(
      join(dir, 'y.npy'),
      Int32Array.from({ length: 10 }, (_, i) => i),
      [10],
    );
    const split = await splitCompressionData(join(dir, 'x.npy'), join(dir, 'y.npy'), join(dir, 'work'));
    expect([split.train.count, split.holdout.count]).toEqual([8, 2]);
    expect(Array.from(split.holdout.labels ?? [])).toEqual([8, 9]);
    expect(Array.from(split.holdout.x)).toEqual(Array.from(x.subarray(24)));
    const written = await readNpy(split.trainSpec);
    expect(written.shape).toEqual([8, 3]);
    expect(Array.from((await readNpy(split.trainLabels!)).data as Int32Array)).toEqual([
      0, 1, 2, 3, 4, 5, 6, 7,
    ]);
  });

  it('refuses a set too small to hold anything out, with INPUT_INVALID', async () => {
    await writeNpy(join(dir, 'one.npy'), Float32Array.from([1, 2, 3]), [1, 3]);
    await expect(
      splitCompressionData(join(dir, 'one.npy'), undefined, join(dir, 'w1')),
    ).rejects.toMatchObject({
      code: 'INPUT_INVALID',
    });
  });
});
