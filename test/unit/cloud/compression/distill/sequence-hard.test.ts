import { describe, expect, it } from 'vitest';
import { buildLoss, type LossOptions } from '../../../../../cloud/compression/distill/losses.js';
import { trainingForm } from '../../../../../cloud/compression/distill/students/training-form.js';
import { toTargets } from '../../../../../cloud/compression/distill/task.js';
import { ModelRunner } from '../../../../../cloud/compression/distill/teacher.js';
import { TrainingSession } from '../../../../../cloud/compression/distill/train-session.js';
import { buildTrainingGraph } from '../../../../../cloud/compression/distill/training-graph.js';
import { attr, floatInput, makeModel, makeNode } from '../../../../../cloud/compression/onnx/build.js';
import { floatTensor } from '../../../../../cloud/compression/onnx/tensor.js';
import type { ModelProto } from '../../../../../cloud/compression/onnx/types.js';
import { createRng } from '../../../../../shared/random.js';
import { expectLossGradient } from '../../../../support/loss-gradcheck.js';

const random = (n: number, seed: number, scale = 1) => {
  const rng = createRng(seed);
  return Float32Array.from({ length: n }, () => (rng() * 2 - 1) * scale);
};

/** [N, 5, 6] → MatMul [6, 4] (+ a bias towards class 0, the blank) → Softmax per timestep. */
function sequenceModel(seed: number): ModelProto {
  return makeModel(
    [
      makeNode('MatMul', ['x', 'w'], ['m']),
      makeNode('Add', ['m', 'b'], ['z']),
      makeNode('Softmax', ['z'], ['p'], [attr.int('axis', -1)]),
    ],
    [floatInput('x', ['N', 5, 6])],
    [floatInput('p', ['N', 5, 4])],
    {
      opset: 17,
      initializers: [floatTensor('w', [6, 4], random(24, seed, 2)), floatTensor('b', [4], [1, 0, 0, 0])],
    },
  );
}

async function outputs(model: ModelProto, x: Float32Array, n: number) {
  const runner = await ModelRunner.create(model, 'm', { intraOpThreads: 1 });
  const [out] = await runner.run(x, n);
  await runner.release();
  return out;
}

async function firstLoss(
  student: ModelProto,
  x: Float32Array,
  targets: Float32Array,
  B: number,
  extra: LossOptions,
) {
  const graph = await buildTrainingGraph(trainingForm(student), {
    batch: B,
    classes: 4,
    targetShape: [5, 4],
    loss: { mode: 'soft', temperature: 1, task: 'sequence', ...extra },
    optimizer: { kind: 'sgd', momentum: 0 },
  });
  const session = await TrainingSession.create(graph, { intraOpThreads: 1 });
  const { losses } = await session.run({ steps: 1, x, teacherLogits: targets, hyper: new Float32Array(2) });
  await session.release();
  return losses[0];
}

describe('sequence loss: hard labels (teacher argmax per timestep)', () => {
  it('adds hardWeight · Σ w · CE(argmax) / Σ w, w = blankWeight on blank timesteps and 1 on characters', async () => {
    const B = 3;
    const blankWeight = 0.25;
    const hardWeight = 0.7;
    const x = random(B * 30, 5);
    const teacherP = await outputs(sequenceModel(1), x, B);
    const studentModel = sequenceModel(2);
    const q = await outputs(studentModel, x, B);
    let kl = 0;
    let klWeights = 0;
    let ce = 0;
    let ceWeights = 0;
    let blanks = 0;
    for (let r = 0; r < B * 5; r++) {
      const p = teacherP.subarray(r * 4, r * 4 + 4);
      const s = q.subarray(r * 4, r * 4 + 4);
      let row = 0;
      for (let c = 0; c < 4; c++) row += p[c] * Math.log(p[c] / s[c]);
      const w = 1 - (1 - blankWeight) * p[0];
      kl += w * row;
      klWeights += w;
      const top = p.indexOf(Math.max(...p));
      const hw = top === 0 ? blankWeight : 1;
      if (top === 0) blanks++;
      ce -= hw * Math.log(s[top]);
      ceWeights += hw;
    }
    // Both kinds of timestep occur, so the weighting is exercised.
    expect(blanks).toBeGreaterThan(0);
    expect(blanks).toBeLessThan(B * 5);
    const targets = toTargets(teacherP.slice(), 'softmax', 'sequence', 5);
    const soft = await firstLoss(studentModel, x, targets, B, { blankWeight });
    expect(soft).toBeCloseTo(kl / klWeights, 4);
    const both = await firstLoss(studentModel, x, targets, B, { blankWeight, hardWeight });
    expect(both).toBeCloseTo(kl / klWeights + (hardWeight * ce) / ceWeights, 4);
  });

  it('has the gradient finite differences give', async () => {
    const teacher = Array.from(random(2 * 3 * 5, 9, 3));
    await expectLossGradient(
      { mode: 'soft', task: 'sequence', temperature: 1, blankWeight: 0.5, hardWeight: 2 },
      [2, 3, 5],
      teacher,
      Array.from(random(30, 8, 2)),
    );
  });

  it('refuses a negative weight and class or map outputs with a coded error', () => {
    expect(() => buildLoss('z', { mode: 'soft', task: 'sequence', hardWeight: -1 })).toThrow(
      expect.objectContaining({ code: 'INPUT_INVALID' }),
    );
    expect(() => buildLoss('z', { mode: 'soft', task: 'classes', hardWeight: 1 })).toThrow(
      expect.objectContaining({ code: 'INPUT_INVALID' }),
    );
    // Weight 0 is the default (soft targets alone) for every task.
    expect(buildLoss('z', { mode: 'soft', task: 'classes', hardWeight: 0 }).nodes.length).toBeGreaterThan(0);
  });
});
