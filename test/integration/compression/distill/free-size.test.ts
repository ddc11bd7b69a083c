import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeNpy } from '../../../../cloud/compression/data/npy.js';
import { pinSampleShape, runDistill, staticSampleShape } from '../../../../cloud/compression/distill/run.js';
import { ModelRunner } from '../../../../cloud/compression/distill/teacher.js';
import { evaluate } from '../../../../cloud/compression/distill/trainer.js';
import { attr, floatInput, makeModel, makeNode } from '../../../../cloud/compression/onnx/build.js';
import { loadModel, saveModel } from '../../../../cloud/compression/onnx/io.js';
import { floatTensor } from '../../../../cloud/compression/onnx/tensor.js';
import type { ModelProto } from '../../../../cloud/compression/onnx/types.js';
import { createRng } from '../../../../shared/random.js';

// A fully convolutional teacher with free height and width (as PaddleOCR's detector): a student
// of its graph trained on small crops must write checkpoints that run at any size, and training
// on from a checkpoint that declares the crop size must train and validate at the new data's
// size (it used to fail: the checkpoint's declared size does not fit larger validation images).
const random = (n: number, seed: number, scale = 1) => {
  const rng = createRng(seed);
  return Float32Array.from({ length: n }, () => (rng() * 2 - 1) * scale);
};

/** [N, 1, H, W] → conv 3×3 (8 channels), ReLU, conv 1×1 → 1, Sigmoid: a probability map. */
function mapTeacher(): ModelProto {
  return makeModel(
    [
      makeNode('Conv', ['x', 'c1.w', 'c1.b'], ['c1'], [attr.ints('pads', [1, 1, 1, 1])]),
      makeNode('Relu', ['c1'], ['r1']),
      makeNode('Conv', ['r1', 'c2.w', 'c2.b'], ['z']),
      makeNode('Sigmoid', ['z'], ['map']),
    ],
    [floatInput('x', ['N', 1, 'H', 'W'])],
    [floatInput('map', ['N', 1, 'H', 'W'])],
    {
      opset: 17,
      initializers: [
        floatTensor('c1.w', [8, 1, 3, 3], random(72, 1, 1)),
        floatTensor('c1.b', [8], random(8, 2, 0.2)),
        floatTensor('c2.w', [1, 8, 1, 1], random(8, 3, 1.5)),
        floatTensor('c2.b', [1], [-0.5]),
      ],
    },
  );
}

describe('students of a teacher with free height and width', () => {
  let dir: string;
  const path = (name: string) => join(dir, name);
  const options = {
    batch: 8,
    stepsPerRun: 2,
    intraOpThreads: 1,
    optimizer: { kind: 'adam', lr: 0.01 },
  } as const;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleetml-free-size-'));
    await saveModel(mapTeacher(), path('teacher.onnx'));
    await writeNpy(path('crops.npy'), random(32 * 64, 4), [32, 1, 8, 8]);
    await writeNpy(path('crops-val.npy'), random(8 * 64, 5), [8, 1, 8, 8]);
    await writeNpy(path('pages.npy'), random(32 * 144, 6), [32, 1, 12, 12]);
    await writeNpy(path('pages-val.npy'), random(8 * 144, 7), [8, 1, 12, 12]);
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('writes checkpoints that keep the free size, and trains on from a crop-sized one at page size', async () => {
    const crops = await runDistill({
      teacher: path('teacher.onnx'),
      data: path('crops.npy'),
      valData: path('crops-val.npy'),
      student: 'shrink:0.5',
      output: path('crops-student.onnx'),
      progress: false,
      train: { ...options, epochs: 2, checkpointDir: path('ck1') },
    });
    expect(crops.agreement).not.toBeNull();
    expect(staticSampleShape(await loadModel(path('ck1/epoch-002.onnx')))).toBeUndefined();
    expect(staticSampleShape(await loadModel(path('crops-student.onnx')))).toBeUndefined();

    // A checkpoint as earlier versions wrote it: declaring the 8×8 crops it was trained on.
    const pinned = pinSampleShape(await loadModel(path('ck1/epoch-002.onnx')), [1, 8, 8]);
    await saveModel(pinned, path('pinned.onnx'));
    const pages = await runDistill({
      teacher: path('teacher.onnx'),
      data: path('pages.npy'),
      valData: path('pages-val.npy'),
      student: path('pinned.onnx'),
      output: path('pages-student.onnx'),
      progress: false,
      train: { ...options, epochs: 1, checkpointDir: path('ck2') },
    });
    const out = await loadModel(path('pages-student.onnx'));
    expect(staticSampleShape(out)).toBeUndefined();
    expect(staticSampleShape(await loadModel(path('ck2/epoch-001.onnx')))).toBeUndefined();

    // The validation F1 it reports is the output's F1 on the 12×12 pages, computed independently.
    const val = { x: random(8 * 144, 7), count: 8, sampleShape: [1, 12, 12] };
    const runner = await ModelRunner.create(pinSampleShape(mapTeacher(), [1, 12, 12]), 'teacher');
    const [teacherMaps] = await runner.run(val.x, val.count);
    await runner.release();
    const own = await evaluate(pinSampleShape(out, [1, 12, 12]), val, teacherMaps, 1, { task: 'dense' });
    expect(pages.agreement).toBeCloseTo(own.agreement!, 6);
  }, 120_000);
});
