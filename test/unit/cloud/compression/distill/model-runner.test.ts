import { describe, expect, it } from 'vitest';
import { ModelRunner } from '../../../../../cloud/compression/distill/teacher.js';
import { floatInput, makeModel, makeNode } from '../../../../../cloud/compression/onnx/build.js';

const relu = (sample: number[]) =>
  makeModel(
    [makeNode('Relu', ['x'], ['y'])],
    [floatInput('x', ['N', ...sample])],
    [floatInput('y', ['N', ...sample])],
    {
      opset: 17,
    },
  );

describe('ModelRunner chunks', () => {
  it('runs small samples 512 at a time', async () => {
    const runner = await ModelRunner.create(relu([784]), 'm', { intraOpThreads: 1 });
    expect(runner.chunk).toBe(512);
    await runner.release();
  });

  // A detector's activations are many times its input: the teacher labelling a few hundred
  // 3×256×256 crops in one run needed tens of GB. Runs are bounded by input floats instead.
  it('runs large samples in chunks of at most 2^22 input floats, with the same results', async () => {
    const runner = await ModelRunner.create(relu([3, 256, 256]), 'm', { intraOpThreads: 1 });
    expect(runner.chunk).toBe(Math.floor(2 ** 22 / (3 * 256 * 256)));
    const count = runner.chunk + 4;
    const x = Float32Array.from({ length: count * 3 * 256 * 256 }, (_, i) => (i % 7) - 3);
    const [y] = await runner.run(x, count);
    expect(y.length).toBe(x.length);
    let mismatches = 0;
    for (let i = 0; i < x.length; i++) if (y[i] !== Math.max(0, x[i])) mismatches++;
    expect(mismatches).toBe(0);
    await runner.release();
  });

  it('refuses data of another sample size with ONNX_SHAPE instead of cutting it into wrong samples', async () => {
    const runner = await ModelRunner.create(relu([3, 4, 4]), 'm', { intraOpThreads: 1 });
    await expect(runner.run(new Float32Array(2 * 3 * 8 * 8), 2)).rejects.toMatchObject({
      code: 'ONNX_SHAPE',
    });
    const [y] = await runner.run(new Float32Array(2 * 3 * 4 * 4).fill(-1), 2);
    expect(y.every((v) => v === 0)).toBe(true);
    await runner.release();
  });

  it('takes a smaller bound when asked', async () => {
    const runner = await ModelRunner.create(relu([3, 64, 64]), 'm', { maxChunkFloats: 3 * 64 * 64 * 5 });
    expect(runner.chunk).toBe(5);
    await runner.release();
  });
});
