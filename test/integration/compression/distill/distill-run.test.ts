import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { mnistSplit, sliceDataset } from '../../../../cloud/compression/data/mnist.js';
import { buildTemplate } from '../../../../cloud/compression/distill/students/templates.js';
import { trainStudent } from '../../../../cloud/compression/distill/trainer.js';

// A full distillation on a 2,000-digit subset: a teacher trained here, then a small student
// distilled from it. Floors are well below what the run reaches, above what chance or a
// broken gradient could give (10 % chance, ~80 % for a linear model after this little data).
describe('distillation on real digits', () => {
  const { train: all, test } = mnistSplit();
  const train = sliceDataset(all, 0, 2000);
  const val = sliceDataset(test, 0, 500);
  const shape = { sampleShape: [1, 28, 28], classes: 10 };

  it('distils a 2x64 student above 85 % accuracy and 85 % agreement, deterministically', async () => {
    const teacher = await trainStudent(
      buildTemplate({ kind: 'mlp', hidden: [256, 256] }, { ...shape, seed: 1 }),
      undefined,
      train,
      val,
      {
        epochs: 10,
        loss: { mode: 'hard' },
        optimizer: { kind: 'sgd', lr: 0.1 },
        intraOpThreads: 1,
      },
    );
    expect(teacher.accuracy!).toBeGreaterThan(0.85);
    const options = {
      epochs: 10,
      loss: { mode: 'distill' as const, temperature: 4, alpha: 0.9 },
      optimizer: { kind: 'adam' as const, lr: 5e-3 },
      schedule: { kind: 'cosine' as const, warmupSteps: 5 },
      intraOpThreads: 1,
      seed: 5,
    };
    const student = buildTemplate({ kind: 'mlp', hidden: [64, 64] }, { ...shape, seed: 2 });
    const first = await trainStudent(student, teacher.model, train, val, options);
    expect(first.accuracy!).toBeGreaterThan(0.85);
    expect(first.agreement!).toBeGreaterThan(0.85);
    expect(first.history[first.history.length - 1].loss).toBeLessThan(first.history[0].loss);
    expect(first.samplesPerSecond).toBeGreaterThan(0);
    const again = await trainStudent(student, teacher.model, sliceDataset(train, 0, 1024), val, {
      ...options,
      epochs: 1,
    });
    const twice = await trainStudent(student, teacher.model, sliceDataset(train, 0, 1024), val, {
      ...options,
      epochs: 1,
    });
    expect(twice.history[0].loss).toBe(again.history[0].loss);
  });

  it('trains a CNN student with shift augmentation (teacher on the fly) and a hint-free soft loss', async () => {
    const teacher = buildTemplate({ kind: 'mlp', hidden: [64] }, { ...shape, seed: 3 });
    const hard = await trainStudent(teacher, undefined, train, val, {
      epochs: 2,
      loss: { mode: 'hard' },
      intraOpThreads: 1,
    });
    const result = await trainStudent(
      buildTemplate({ kind: 'cnn', channels: [4, 8] }, { ...shape, seed: 4 }),
      hard.model,
      sliceDataset(train, 0, 1024),
      val,
      {
        epochs: 2,
        shift: 2,
        loss: { mode: 'soft', temperature: 2 },
        optimizer: { kind: 'adam', lr: 3e-3 },
        intraOpThreads: 1,
      },
    );
    expect(result.agreement!).toBeGreaterThan(0.6);
    expect(result.model.graph.node.some((n) => n.opType === 'Conv')).toBe(true);
  });

  it('adds a hint (feature) loss through a learnt projection between teacher and student hidden layers', async () => {
    const teacher = await trainStudent(
      buildTemplate({ kind: 'mlp', hidden: [96] }, { ...shape, seed: 6 }),
      undefined,
      train,
      val,
      {
        epochs: 3,
        loss: { mode: 'hard' },
        optimizer: { kind: 'sgd', lr: 0.1 },
        intraOpThreads: 1,
      },
    );
    const result = await trainStudent(
      buildTemplate({ kind: 'mlp', hidden: [24] }, { ...shape, seed: 7 }),
      teacher.model,
      train,
      val,
      {
        epochs: 3,
        loss: {
          mode: 'distill',
          temperature: 4,
          alpha: 0.7,
          hint: { student: 'relu0', teacher: 'relu0', weight: 0.5 },
        },
        optimizer: { kind: 'adam', lr: 5e-3 },
        intraOpThreads: 1,
      },
    );
    expect(result.accuracy!).toBeGreaterThan(0.8);
    // The projection is a training-only parameter: the exported student does not carry it.
    expect(result.model.graph.initializer!.some((t) => t.name!.includes('hint'))).toBe(false);
  });

  it('stops early when validation stops improving and writes a checkpoint per epoch', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fleetml-ckpt-'));
    try {
      // A learning rate of 0 never improves on the first epoch: patience 1 stops after epoch 2.
      const result = await trainStudent(
        buildTemplate({ kind: 'mlp', hidden: [16] }, shape),
        undefined,
        sliceDataset(train, 0, 512),
        val,
        {
          epochs: 10,
          loss: { mode: 'hard' },
          optimizer: { kind: 'sgd', lr: 0 },
          patience: 1,
          checkpointDir: dir,
          intraOpThreads: 1,
        },
      );
      expect(result.history.length).toBe(2);
      expect(result.bestEpoch).toBe(1);
      expect((await readdir(dir)).sort()).toEqual(['epoch-001.onnx', 'epoch-002.onnx']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('writes a checkpoint every N steps across epochs, at the end of the run that reaches each multiple', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fleetml-ckpt-steps-'));
    try {
      // 256 samples at batch 32: 8 steps per epoch, 16 in all, runs of 3 steps (3, 6, 8 | 11, 14, 16).
      await trainStudent(
        buildTemplate({ kind: 'mlp', hidden: [16] }, shape),
        undefined,
        sliceDataset(train, 0, 256),
        undefined,
        {
          epochs: 2,
          batch: 32,
          stepsPerRun: 3,
          loss: { mode: 'hard' },
          optimizer: { kind: 'sgd', lr: 0.01 },
          checkpointDir: dir,
          checkpointEverySteps: 5,
          intraOpThreads: 1,
        },
      );
      expect((await readdir(dir)).sort()).toEqual([
        'epoch-001.onnx',
        'epoch-002.onnx',
        'step-000006.onnx',
        'step-000011.onnx',
        'step-000016.onnx',
      ]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
