import { describe, expect, it } from 'vitest';
import { createRng } from '../../../../../shared/random.js';
import { tinyTrainingSession as session, TINY } from './tiny-session.js';

const B = TINY.batch;

describe('training session', () => {
  const steps = 6;
  const rng = createRng(7);
  const x = Float32Array.from({ length: steps * B * 16 }, () => rng());
  const teacherLogits = Float32Array.from({ length: steps * B * 3 }, () => rng() * 4 - 2);
  const labelsOneHot = new Float32Array(steps * B * 3);
  for (let i = 0; i < steps * B; i++) labelsOneHot[i * 3 + (i % 3)] = 1;
  const hyper = new Float32Array(steps * 2);
  for (let k = 0; k < steps; k++) hyper.set([0.1, 0], k * 2);
  const slice = (from: number, to: number) => ({
    steps: to - from,
    x: x.subarray(from * B * 16, to * B * 16),
    teacherLogits: teacherLogits.subarray(from * B * 3, to * B * 3),
    labelsOneHot: labelsOneHot.subarray(from * B * 3, to * B * 3),
    hyper: hyper.subarray(from * 2, to * 2),
  });

  it('carries parameters and momentum between runs in two buffers that swap, as one long run would', async () => {
    const long = await session();
    const whole = await long.run(slice(0, steps));
    const split = await session();
    const losses: number[] = [];
    const buffers = new Set<ArrayBufferLike>();
    for (let k = 0; k < steps; k += 2) {
      losses.push(...(await split.run(slice(k, k + 2))).losses);
      buffers.add(split.values().get('fc0.weight')!.buffer);
    }
    // Momentum lives in the carried state: a run that read a stale or half-written buffer
    // would lose it and drift from the single run.
    expect(losses).toEqual([...whole.losses]);
    expect([...split.values().get('fc0.weight')!]).toEqual([...long.values().get('fc0.weight')!]);
    // Three runs, two buffers: onnxruntime wrote into the preallocated ones, nothing new.
    expect(buffers.size).toBe(2);
    await long.release();
    await split.release();
  });
});
