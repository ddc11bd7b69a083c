import { describe, expect, it } from 'vitest';
import { ResidentBatches, ShiftedBatches } from '../../../../../cloud/compression/distill/batch-source.js';
import { BestEpochKeeper, epochScore } from '../../../../../cloud/compression/distill/early-stopping.js';
import { createRng, permutation } from '../../../../../shared/random.js';
import { TINY, tinyTrainingSession } from './tiny-session.js';

const B = TINY.batch;
const K = 3;
const N = 20;
const SAMPLE = [...TINY.sample];
const session = tinyTrainingSession;

describe('batch sources', () => {
  const rng = createRng(4);
  const train = {
    x: Float32Array.from({ length: N * 16 }, () => rng()),
    y: Int32Array.from({ length: N }, (_, i) => i % 3),
    count: N,
    sampleShape: SAMPLE,
  };
  const targets = Float32Array.from({ length: N * 3 }, () => rng() * 4 - 2);
  const needs = { teacherTargets: true, labels: true, hint: false, classes: 3 };
  const hyper = new Float32Array(K * 2);
  for (let k = 0; k < K; k++) hyper.set([0.1, 1], k * 2);

  it('resident samples named by index train exactly like the same rows copied into the run', async () => {
    const order = permutation(N, createRng(9));
    const resident = await session();
    const rows = await new ResidentBatches(resident, train, { targets }, needs).rows(order, 2, K * B);
    const a = await resident.run({ ...rows, steps: K, hyper });
    const copied = await session();
    const picked = order.subarray(2, 2 + K * B);
    const x = new Float32Array(K * B * 16);
    const t = new Float32Array(K * B * 3);
    const y = new Float32Array(K * B * 3);
    picked.forEach((row, i) => {
      x.set(train.x.subarray(row * 16, row * 16 + 16), i * 16);
      t.set(targets.subarray(row * 3, row * 3 + 3), i * 3);
      y[i * 3 + train.y[row]] = 1;
    });
    const b = await copied.run({ steps: K, x, teacherLogits: t, labelsOneHot: y, hyper });
    expect([...a.losses]).toEqual([...b.losses]);
    expect(a.losses[K - 1]).not.toBe(a.losses[0]);
    await resident.release();
    await copied.release();
  });

  it('shifted batches move every sample by at most the shift and leave unshifted rows intact', async () => {
    const order = permutation(N, createRng(3));
    const none = new ShiftedBatches(
      train,
      undefined,
      { ...needs, teacherTargets: false },
      0,
      createRng(1),
      8,
    );
    const plain = await none.rows(order, 0, 8);
    expect([...plain.x!.subarray(0, 16)]).toEqual([...train.x.subarray(order[0] * 16, order[0] * 16 + 16)]);
    expect(plain.labelsOneHot![train.y[order[0]]]).toBe(1);
    const shifted = await new ShiftedBatches(
      train,
      undefined,
      { ...needs, teacherTargets: false },
      1,
      createRng(1),
      8,
    ).rows(order, 0, 8);
    expect([...shifted.x!]).not.toEqual([...plain.x!]);
  });
});

describe('early stopping', () => {
  it('keeps a copy of the best epoch and stops after `patience` epochs without improvement', () => {
    const keeper = new BestEpochKeeper(2);
    const live = new Float32Array([1]);
    const values = new Map([['w', live]]);
    expect(keeper.observe(1, 0.5, values)).toBe(false);
    live[0] = 2;
    expect(keeper.observe(2, 0.7, values)).toBe(false);
    live[0] = 3;
    expect(keeper.observe(3, 0.6, values)).toBe(false);
    expect(keeper.observe(4, 0.7, values)).toBe(true);
    expect(keeper.epoch).toBe(2);
    expect(keeper.values.get('w')![0]).toBe(2);
    expect(new BestEpochKeeper(0).observe(1, 1, values)).toBe(false);
  });

  it('scores by accuracy, then agreement, then negative loss', () => {
    expect(epochScore({ loss: 1, accuracy: 0.9, agreement: 0.5 })).toBe(0.9);
    expect(epochScore({ loss: 1, agreement: 0.5 })).toBe(0.5);
    expect(epochScore({ loss: 1 })).toBe(-1);
  });
});
