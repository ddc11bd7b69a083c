import { describe, expect, it } from 'vitest';
import { binaryF1, ctcGreedy, DENSE_THRESHOLD } from '../../../../../cloud/compression/distill/agreement.js';
import type { LossOptions } from '../../../../../cloud/compression/distill/losses.js';
import { shrinkModel } from '../../../../../cloud/compression/distill/students/shrink.js';
import { trainingForm } from '../../../../../cloud/compression/distill/students/training-form.js';
import {
  detectTask,
  outputActivation,
  studentLogitsTensor,
  toTargets,
} from '../../../../../cloud/compression/distill/task.js';
import { ModelRunner } from '../../../../../cloud/compression/distill/teacher.js';
import { TrainingSession } from '../../../../../cloud/compression/distill/train-session.js';
import { trainStudent } from '../../../../../cloud/compression/distill/trainer.js';
import { buildTrainingGraph } from '../../../../../cloud/compression/distill/training-graph.js';
import { attr, floatInput, makeModel, makeNode } from '../../../../../cloud/compression/onnx/build.js';
import { upgradeOpset } from '../../../../../cloud/compression/onnx/opset.js';
import { floatTensor } from '../../../../../cloud/compression/onnx/tensor.js';
import type { ModelProto } from '../../../../../cloud/compression/onnx/types.js';
import { createRng } from '../../../../../shared/random.js';
import { expectLossGradient } from '../../../../support/loss-gradcheck.js';

const random = (n: number, seed: number, scale = 1) => {
  const rng = createRng(seed);
  return Float32Array.from({ length: n }, () => (rng() * 2 - 1) * scale);
};

/** [N, 1, 8, 8] → conv 3×3 (8 channels), ReLU, conv 1×1 → 1, Sigmoid: a probability map. */
function mapModel(seed: number): ModelProto {
  return makeModel(
    [
      makeNode('Conv', ['x', 'c1.w', 'c1.b'], ['c1'], [attr.ints('pads', [1, 1, 1, 1])]),
      makeNode('Relu', ['c1'], ['r1']),
      makeNode('Conv', ['r1', 'c2.w', 'c2.b'], ['z']),
      makeNode('Sigmoid', ['z'], ['map']),
    ],
    [floatInput('x', ['N', 1, 8, 8])],
    [floatInput('map', ['N', 1, 8, 8])],
    {
      opset: 17,
      initializers: [
        floatTensor('c1.w', [8, 1, 3, 3], random(72, seed, 1)),
        floatTensor('c1.b', [8], random(8, seed + 1, 0.2)),
        floatTensor('c2.w', [1, 8, 1, 1], random(8, seed + 2, 1.5)),
        floatTensor('c2.b', [1], [-0.5]),
      ],
    },
  );
}

/** [N, 5, 6] → MatMul [6, 4] → Softmax over the last axis: a per-timestep distribution. */
function sequenceModel(seed: number): ModelProto {
  return makeModel(
    [makeNode('MatMul', ['x', 'w'], ['z']), makeNode('Softmax', ['z'], ['p'], [attr.int('axis', -1)])],
    [floatInput('x', ['N', 5, 6])],
    [floatInput('p', ['N', 5, 4])],
    { opset: 17, initializers: [floatTensor('w', [6, 4], random(24, seed, 2))] },
  );
}

async function outputs(model: ModelProto, x: Float32Array, n: number) {
  const runner = await ModelRunner.create(model, 'm', { intraOpThreads: 1 });
  const [out] = await runner.run(x, n);
  await runner.release();
  return out;
}

/** The training graph's loss at step 0 (learning rate 0) for `student` against `targets`. */
async function firstLoss(
  student: ModelProto,
  x: Float32Array,
  targets: Float32Array,
  targetShape: number[],
  task: 'dense' | 'sequence',
  B: number,
  extra: LossOptions = {},
) {
  const graph = await buildTrainingGraph(trainingForm(student), {
    batch: B,
    classes: targetShape[targetShape.length - 1],
    targetShape,
    loss: { mode: 'soft', temperature: 2, task, ...extra },
    optimizer: { kind: 'sgd', momentum: 0 },
  });
  const session = await TrainingSession.create(graph, { intraOpThreads: 1 });
  const { losses } = await session.run({ steps: 1, x, teacherLogits: targets, hyper: new Float32Array(2) });
  await session.release();
  return losses[0];
}

describe('task-aware distillation losses', () => {
  it('detects the task from the output shape and turns softmax outputs into log-probabilities', () => {
    expect(detectTask([10])).toBe('classes');
    expect(detectTask([40, 6625])).toBe('sequence');
    expect(detectTask([1, 640, 640])).toBe('dense');
    expect(outputActivation(sequenceModel(1).graph)).toBe('softmax');
    expect(outputActivation(mapModel(1).graph)).toBe('sigmoid');
    expect(
      [...toTargets(Float32Array.from([0.5, 0.25]), 'softmax', 'sequence', 5)].map((v) => v.toFixed(4)),
    ).toEqual([Math.log(0.5).toFixed(4), Math.log(0.25).toFixed(4)]);
    expect([...toTargets(Float32Array.from([0]), 'none', 'dense', 1)]).toEqual([0.5]);
  });

  it('greedy CTC merges repeats and drops blanks; F1 compares binarised maps', () => {
    expect(ctcGreedy([0, 3, 3, 0, 3, 5, 5, 0])).toEqual([3, 3, 5]);
    expect(
      binaryF1(Float32Array.from([0.9, 0.9, 0.1, 0.1]), Float32Array.from([0.9, 0.1, 0.9, 0.1]), 0.3),
    ).toBeCloseTo(0.5);
    expect(binaryF1(new Float32Array(3), new Float32Array(3), 0.3)).toBe(1);
  });

  it('dense sigmoid maps: the loss is the mean per-pixel BCE against the teacher probabilities', async () => {
    const B = 2;
    const x = random(B * 64, 3);
    const teacherP = await outputs(mapModel(1), x, B);
    const studentModel = mapModel(7);
    const s = await outputs(studentModel, x, B);
    let bce = 0;
    for (let i = 0; i < s.length; i++)
      bce -= teacherP[i] * Math.log(s[i]) + (1 - teacherP[i]) * Math.log(1 - s[i]);
    bce /= s.length;
    const loss = await firstLoss(studentModel, x, teacherP, [1, 8, 8], 'dense', B);
    expect(loss).toBeCloseTo(bce, 4);
  });

  it('dense sigmoid maps with a Dice term: BCE + weight · (1 − (2Σsp + 1) / (Σs + Σp + 1))', async () => {
    const B = 2;
    const x = random(B * 64, 4);
    const teacherP = await outputs(mapModel(1), x, B);
    const studentModel = mapModel(5);
    const s = await outputs(studentModel, x, B);
    let bce = 0;
    let overlap = 0;
    let sums = 0;
    for (let i = 0; i < s.length; i++) {
      bce -= teacherP[i] * Math.log(s[i]) + (1 - teacherP[i]) * Math.log(1 - s[i]);
      overlap += s[i] * teacherP[i];
      sums += s[i] + teacherP[i];
    }
    const dice = 1 - (2 * overlap + 1) / (sums + 1);
    expect(dice).toBeGreaterThan(0.05);
    const loss = await firstLoss(studentModel, x, teacherP, [1, 8, 8], 'dense', B, { dice: 0.5 });
    expect(loss).toBeCloseTo(bce / s.length + 0.5 * dice, 4);
  });

  it('the sigmoid-map loss with Dice has the gradient finite differences give', async () => {
    const teacher = Array.from(random(32, 9), (v) => (v + 1) / 2);
    await expectLossGradient(
      { mode: 'soft', task: 'dense', dice: 2, denseChannels: 1 },
      [2, 1, 4, 4],
      teacher,
      [...random(32, 8, 3)],
    );
  });

  it('dense sigmoid maps with hard labels: BCE + weight · BCE against the teacher map binarised at 0.3', async () => {
    const B = 2;
    const x = random(B * 64, 6);
    const teacherP = await outputs(mapModel(1), x, B);
    const studentModel = mapModel(11);
    const s = await outputs(studentModel, x, B);
    let bce = 0;
    let hard = 0;
    let foreground = 0;
    for (let i = 0; i < s.length; i++) {
      bce -= teacherP[i] * Math.log(s[i]) + (1 - teacherP[i]) * Math.log(1 - s[i]);
      const y = teacherP[i] > DENSE_THRESHOLD ? 1 : 0;
      foreground += y;
      hard -= y * Math.log(s[i]) + (1 - y) * Math.log(1 - s[i]);
    }
    // Both classes present, and the binarised target really differs from the soft one.
    expect(foreground).toBeGreaterThan(0);
    expect(foreground).toBeLessThan(s.length);
    expect(Math.abs(hard - bce) / s.length).toBeGreaterThan(0.01);
    const loss = await firstLoss(studentModel, x, teacherP, [1, 8, 8], 'dense', B, { hardWeight: 0.7 });
    expect(loss).toBeCloseTo(bce / s.length + (0.7 * hard) / s.length, 4);
  });

  it('the sigmoid-map hard-label term has the gradient finite differences give', async () => {
    const teacher = Array.from(random(32, 12), (v) => (v + 1) / 2);
    await expectLossGradient(
      { mode: 'soft', task: 'dense', hardWeight: 1.5, denseChannels: 1 },
      [2, 1, 4, 4],
      teacher,
      [...random(32, 13, 3)],
    );
  });

  it('sequences: the loss is T² · KL per timestep, averaged over samples and timesteps', async () => {
    const B = 3;
    const T = 2;
    const x = random(B * 30, 5);
    const teacherP = await outputs(sequenceModel(1), x, B);
    const studentModel = sequenceModel(2);
    const s = await outputs(studentModel, x, B);
    const soft = (row: Float32Array) => {
      const e = Array.from(row, (v) => Math.exp(Math.log(v) / T));
      const z = e.reduce((a, b) => a + b, 0);
      return e.map((v) => v / z);
    };
    let kl = 0;
    for (let r = 0; r < B * 5; r++) {
      const p = soft(teacherP.subarray(r * 4, r * 4 + 4));
      const q = soft(s.subarray(r * 4, r * 4 + 4));
      for (let c = 0; c < 4; c++) kl += p[c] * Math.log(p[c] / q[c]);
    }
    const expected = (T * T * kl) / (B * 5);
    const targets = toTargets(teacherP.slice(), 'softmax', 'sequence', 5);
    const loss = await firstLoss(studentModel, x, targets, [5, 4], 'sequence', B);
    expect(loss).toBeCloseTo(expected, 4);
  });

  it('an opset-9 Softmax (axis 2, flattened when upgraded to 13) still gives the loss its logits', async () => {
    // PaddleOCR's recogniser ends in such a Softmax: upgraded, it is Reshape(Softmax(Flatten(z)),
    // Shape(z)), and the loss once read its probabilities as logits (and could not train).
    const old = sequenceModel(2);
    old.opsetImport = [{ domain: '', version: 9 }];
    old.graph.node[1].attribute = [attr.int('axis', 2)];
    upgradeOpset(old, 13);
    expect(old.graph.node.map((n) => n.opType)).toContain('Flatten');
    expect(outputActivation(old.graph)).toBe('softmax');
    expect(studentLogitsTensor(old.graph)).toBe('z');
    const B = 3;
    const x = random(B * 30, 5);
    const targets = toTargets(await outputs(sequenceModel(1), x, B), 'softmax', 'sequence', 5);
    const upgraded = await firstLoss(old, x, targets, [5, 4], 'sequence', B);
    expect(upgraded).toBeCloseTo(await firstLoss(sequenceModel(2), x, targets, [5, 4], 'sequence', B), 4);
  });

  it('sequences with a blank weight: Σ w · KL / Σ w, w = 1 − (1 − weight) · p_teacher(blank)', async () => {
    const B = 3;
    const T = 2;
    const blankWeight = 0.25;
    const x = random(B * 30, 5);
    const teacherP = await outputs(sequenceModel(1), x, B);
    const studentModel = sequenceModel(2);
    const s = await outputs(studentModel, x, B);
    const soft = (row: Float32Array) => {
      const e = Array.from(row, (v) => Math.exp(Math.log(v) / T));
      const z = e.reduce((a, b) => a + b, 0);
      return e.map((v) => v / z);
    };
    let weighted = 0;
    let weights = 0;
    let plain = 0;
    for (let r = 0; r < B * 5; r++) {
      const p = soft(teacherP.subarray(r * 4, r * 4 + 4));
      const q = soft(s.subarray(r * 4, r * 4 + 4));
      let kl = 0;
      for (let c = 0; c < 4; c++) kl += p[c] * Math.log(p[c] / q[c]);
      const w = 1 - (1 - blankWeight) * p[0];
      weighted += w * kl;
      weights += w;
      plain += kl / (B * 5);
    }
    const expected = (T * T * weighted) / weights;
    // The weighting must matter on these rows, or the comparison below proves nothing.
    expect(Math.abs(expected - T * T * plain)).toBeGreaterThan(0.01 * expected);
    const targets = toTargets(teacherP.slice(), 'softmax', 'sequence', 5);
    const loss = await firstLoss(studentModel, x, targets, [5, 4], 'sequence', B, { blankWeight });
    expect(loss).toBeCloseTo(expected, 4);
    await expect(
      firstLoss(studentModel, x, targets, [5, 4], 'sequence', B, { blankWeight: -1 }),
    ).rejects.toMatchObject({ code: 'INPUT_INVALID' });
  });

  it('a shrunk map model distilled on unlabelled inputs follows the teacher map (F1 up)', async () => {
    const teacher = mapModel(1);
    const n = 256;
    const train = { x: random(n * 64, 11), count: n, sampleShape: [1, 8, 8] };
    const val = { x: random(64 * 64, 12), count: 64, sampleShape: [1, 8, 8] };
    const { model: student } = await shrinkModel(teacher, 0.5, [1, 8, 8]);
    const before = await trainStudent(student, teacher, train, val, {
      epochs: 1,
      batch: 32,
      loss: { mode: 'soft' },
      optimizer: { kind: 'adam', lr: 1e-9 },
      intraOpThreads: 1,
    });
    const after = await trainStudent(student, teacher, train, val, {
      epochs: 30,
      batch: 32,
      loss: { mode: 'soft' },
      optimizer: { kind: 'adam', lr: 0.01 },
      intraOpThreads: 1,
    });
    expect(after.history[after.history.length - 1].loss).toBeLessThan(after.history[0].loss);
    expect(after.agreement!).toBeGreaterThan(before.agreement! + 0.05);
    expect(after.agreement!).toBeGreaterThan(0.85);
  });

  it("holds the teacher's session through training only when shifted batches need it", async () => {
    const teacher = mapModel(1);
    const train = { x: random(64 * 64, 13), count: 64, sampleShape: [1, 8, 8] };
    const { model: student } = await shrinkModel(teacher, 0.5, [1, 8, 8]);
    const openDuringTraining = async (shift: number) => {
      const seen: number[] = [];
      await trainStudent(student, teacher, train, undefined, {
        epochs: 1,
        batch: 16,
        shift,
        loss: { mode: 'soft' },
        intraOpThreads: 1,
        onProgress: () => seen.push(ModelRunner.open),
      });
      expect(seen.length).toBeGreaterThan(0);
      return Math.max(...seen);
    };
    const before = ModelRunner.open;
    // Resident: the teacher's outputs are cached before the first step, its session released.
    expect(await openDuringTraining(0)).toBe(before);
    // Shifted: every batch is labelled by the teacher on the fly.
    expect(await openDuringTraining(1)).toBe(before + 1);
    expect(ModelRunner.open).toBe(before);
  });
});
