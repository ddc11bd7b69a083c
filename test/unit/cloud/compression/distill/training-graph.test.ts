import { describe, expect, it } from 'vitest';
import { exportStudent } from '../../../../../cloud/compression/distill/export.js';
import { buildTemplate } from '../../../../../cloud/compression/distill/students/templates.js';
import { trainingForm } from '../../../../../cloud/compression/distill/students/training-form.js';
import { ModelRunner } from '../../../../../cloud/compression/distill/teacher.js';
import { TrainingSession } from '../../../../../cloud/compression/distill/train-session.js';
import { buildTrainingGraph } from '../../../../../cloud/compression/distill/training-graph.js';
import { attr, floatInput, makeModel, makeNode } from '../../../../../cloud/compression/onnx/build.js';
import { decodeModel, encodeModel } from '../../../../../cloud/compression/onnx/proto.js';
import { floatTensor, int64Tensor } from '../../../../../cloud/compression/onnx/tensor.js';
import type { ModelProto } from '../../../../../cloud/compression/onnx/types.js';
import { isFleetError } from '../../../../../shared/errors/index.js';
import { createRng } from '../../../../../shared/random.js';

const B = 8;
const SAMPLE = [1, 12, 12];

function batch(seed: number): Float32Array {
  const rng = createRng(seed);
  return Float32Array.from({ length: B * 144 }, () => rng());
}

/** One training step at learning rate 0 (SGD), returning the training graph's forward logits. */
async function trainingLogits(model: ModelProto, x: Float32Array) {
  const graph = await buildTrainingGraph(trainingForm(model), {
    batch: B,
    classes: 10,
    loss: { mode: 'hard' },
    optimizer: { kind: 'sgd', momentum: 0 },
    emitLogits: true,
  });
  const session = await TrainingSession.create(graph, { intraOpThreads: 1 });
  const labels = new Float32Array(B * 10);
  for (let i = 0; i < B; i++) labels[i * 10 + (i % 10)] = 1;
  const { logits, losses } = await session.run({
    steps: 1,
    x,
    labelsOneHot: labels,
    hyper: new Float32Array(2),
  });
  const values = new Map([...session.values()].map(([k, v]) => [k, v.slice()]));
  await session.release();
  return { logits: logits!, losses, values };
}

async function inferenceLogits(model: ModelProto, x: Float32Array) {
  const runner = await ModelRunner.create(model, 'student', { intraOpThreads: 1 });
  const [out] = await runner.run(x, B);
  await runner.release();
  return out;
}

describe('training graph and export', () => {
  it('the exported MLP reproduces the training forward pass', async () => {
    const model = buildTemplate(
      { kind: 'mlp', hidden: [32, 16] },
      { sampleShape: SAMPLE, classes: 10, seed: 3 },
    );
    const x = batch(1);
    const { logits, values } = await trainingLogits(model, x);
    const exported = exportStudent(model, values);
    const out = await inferenceLogits(exported, x);
    for (let i = 0; i < out.length; i++) expect(out[i]).toBeCloseTo(logits[i], 5);
  });

  it('the exported CNN (BatchNorm in inference form) reproduces the training forward pass', async () => {
    // With momentum 0 the running statistics become this batch's statistics, so inference-form
    // BatchNorm must normalise exactly like the training step did.
    const model = buildTemplate(
      { kind: 'cnn', channels: [4, 6] },
      { sampleShape: SAMPLE, classes: 10, seed: 4 },
    );
    for (const node of model.graph.node) {
      if (node.opType === 'BatchNormalization') {
        node.attribute = [
          ...(node.attribute ?? []).filter((a) => a.name !== 'momentum'),
          attr.float('momentum', 0),
        ];
      }
    }
    const x = batch(2);
    const { logits, values } = await trainingLogits(model, x);
    const exported = exportStudent(model, values);
    expect(exported.graph.node.every((n) => !n.attribute?.some((a) => a.name === 'training_mode'))).toBe(
      true,
    );
    const out = await inferenceLogits(exported, x);
    let worst = 0;
    for (let i = 0; i < out.length; i++) worst = Math.max(worst, Math.abs(out[i] - logits[i]));
    expect(worst).toBeLessThan(2e-3);
  });

  it('export drops Dropout nodes and keeps the model loadable', async () => {
    const model = buildTemplate(
      { kind: 'mlp', hidden: [16] },
      { sampleShape: SAMPLE, classes: 10, dropout: 0.5, inputDropout: 0.2 },
    );
    expect(model.graph.node.some((n) => n.opType === 'Dropout')).toBe(true);
    const exported = exportStudent(model, new Map());
    expect(exported.graph.node.some((n) => n.opType === 'Dropout')).toBe(false);
    const out = await inferenceLogits(exported, batch(3));
    expect(out.length).toBe(B * 10);
  });

  it('trains a user-supplied student in PyTorch export style (decoded from bytes)', async () => {
    const rng = createRng(8);
    const rand = (dims: number[], scale: number) =>
      floatTensor(
        '',
        dims,
        Float32Array.from({ length: dims.reduce((a, b) => a * b, 1) }, () => (rng() * 2 - 1) * scale),
      );
    const t = (name: string, dims: number[], scale = 0.3) => ({ ...rand(dims, scale), name });
    const nodes = [
      makeNode(
        'Conv',
        ['x', 'c.w', 'c.b'],
        ['c'],
        [attr.ints('pads', [1, 1, 1, 1]), attr.ints('strides', [2, 2])],
        '/conv/Conv',
      ),
      makeNode(
        'BatchNormalization',
        ['c', 'bn.s', 'bn.b', 'bn.m', 'bn.v'],
        ['bn'],
        [],
        '/bn/BatchNormalization',
      ),
      makeNode('HardSwish', ['bn'], ['hs'], [], '/act/HardSwish'),
      makeNode('Slice', ['hs', 'st', 'en', 'ax'], ['half'], [], '/Slice'),
      makeNode('Concat', ['hs', 'half'], ['cat'], [attr.int('axis', 1)], '/Concat'),
      makeNode(
        'AveragePool',
        ['cat'],
        ['ap'],
        [attr.ints('kernel_shape', [2, 2]), attr.ints('strides', [2, 2])],
        '/AveragePool',
      ),
      makeNode('Flatten', ['ap'], ['f'], [attr.int('axis', 1)], '/Flatten'),
      makeNode(
        'LayerNormalization',
        ['f', 'ln.s', 'ln.b'],
        ['ln'],
        [attr.int('axis', -1)],
        '/ln/LayerNormalization',
      ),
      makeNode('Gemm', ['ln', 'fc.w', 'fc.b'], ['logits'], [attr.int('transB', 1)], '/fc/Gemm'),
    ];
    const inits = [
      t('c.w', [4, 1, 3, 3]),
      t('c.b', [4]),
      t('bn.s', [4], 1),
      t('bn.b', [4]),
      t('bn.m', [4], 0),
      { ...floatTensor('bn.v', [4], [1, 1, 1, 1]) },
      int64Tensor('st', [1], [0]),
      int64Tensor('en', [1], [2]),
      int64Tensor('ax', [1], [1]),
      t('ln.s', [54], 1),
      t('ln.b', [54]),
      t('fc.w', [10, 54]),
      t('fc.b', [10]),
    ];
    const model = decodeModel(
      encodeModel(
        makeModel(nodes, [floatInput('x', ['N', 1, 12, 12])], [floatInput('logits', ['N', 10])], {
          initializers: inits,
        }),
      ),
    );
    const graph = await buildTrainingGraph(trainingForm(model), {
      batch: B,
      classes: 10,
      loss: { mode: 'hard' },
      optimizer: { kind: 'adam', lr: 0.01 },
    });
    const session = await TrainingSession.create(graph, { intraOpThreads: 1 });
    const K = 30;
    const x = new Float32Array(K * B * 144);
    const labels = new Float32Array(K * B * 10);
    const one = batch(5);
    for (let k = 0; k < K; k++) {
      x.set(one, k * B * 144);
      for (let i = 0; i < B; i++) labels[(k * B + i) * 10 + ((i * 7) % 10)] = 1;
    }
    const hyper = new Float32Array(K * 4);
    for (let k = 0; k < K; k++) hyper.set(graph.optimizer.hyper(k, 0.01), k * 4);
    const { losses } = await session.run({ steps: K, x, labelsOneHot: labels, hyper });
    await session.release();
    expect(losses[K - 1]).toBeLessThan(losses[0] * 0.5);
  });

  it('an op without a gradient rule in the student gives GRAD_UNSUPPORTED_OP naming op and node', () => {
    const model = buildTemplate({ kind: 'mlp', hidden: [16] }, { sampleShape: SAMPLE, classes: 10 });
    const relu = model.graph.node.find((n) => n.opType === 'Relu')!;
    relu.opType = 'Round';
    relu.name = 'strange_activation';
    try {
      trainingForm(model);
      expect.unreachable();
    } catch (error) {
      expect(isFleetError(error, 'GRAD_UNSUPPORTED_OP')).toBe(true);
      expect((error as Error).message).toContain('Round');
      expect((error as Error).message).toContain('strange_activation');
    }
  });

  it('single numbers in element-wise ops stay constants; weights and a one-channel bias train', () => {
    // As paddle2onnx writes a decomposed LayerNorm (Add of an epsilon) and an attention scale.
    const model = makeModel(
      [
        makeNode('Flatten', ['x'], ['flat']),
        makeNode('Gemm', ['flat', 'fc.w', 'fc.b'], ['z']),
        makeNode('Add', ['z', 'eps'], ['shifted']),
        makeNode('Mul', ['shifted', 'scale'], ['logits']),
      ],
      [floatInput('x', ['N', 1, 12, 12])],
      [floatInput('logits', ['N', 1])],
      {
        initializers: [
          floatTensor('fc.w', [144, 1], new Float32Array(144).fill(0.01)),
          floatTensor('fc.b', [1], [0.5]),
          floatTensor('eps', [], [1e-5]),
          floatTensor('scale', [1], [0.125]),
        ],
      },
    );
    const form = trainingForm(model);
    expect(form.params.map((p) => p.name).sort()).toEqual(['fc.b', 'fc.w']);
    expect(form.constants.map((c) => c.name).sort()).toEqual(['eps', 'scale']);
  });

  it('a teacher op onnxruntime cannot run gives a coded error naming the op', async () => {
    const teacher = buildTemplate({ kind: 'mlp', hidden: [16] }, { sampleShape: SAMPLE, classes: 10 });
    teacher.graph.node.push(makeNode('NoSuchOp', ['logits'], ['weird'], [], 'bad_node'));
    teacher.graph.output = [{ name: 'weird' }];
    await expect(ModelRunner.create(teacher, 'teacher')).rejects.toMatchObject({
      code: 'RUNTIME_LOAD',
      message: expect.stringContaining('NoSuchOp'),
    });
  });
});
