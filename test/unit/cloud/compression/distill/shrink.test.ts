import { describe, expect, it } from 'vitest';
import { inferShapes } from '../../../../../cloud/compression/distill/autodiff/shapes.js';
import { channelGroups } from '../../../../../cloud/compression/distill/students/channel-groups.js';
import {
  parseShrink,
  shrinkModel,
  topChannels,
} from '../../../../../cloud/compression/distill/students/shrink.js';
import { buildTemplate } from '../../../../../cloud/compression/distill/students/templates.js';
import { trainingForm } from '../../../../../cloud/compression/distill/students/training-form.js';
import { ModelRunner } from '../../../../../cloud/compression/distill/teacher.js';
import { buildTrainingGraph } from '../../../../../cloud/compression/distill/training-graph.js';
import { attr, floatInput, makeModel, makeNode } from '../../../../../cloud/compression/onnx/build.js';
import { floatTensor, tensorFloats } from '../../../../../cloud/compression/onnx/tensor.js';
import type { ModelProto, TensorProto } from '../../../../../cloud/compression/onnx/types.js';
import { ort } from '../../../../../cloud/compression/runtime/ort.js';
import { isFleetError } from '../../../../../shared/errors/index.js';
import { createRng } from '../../../../../shared/random.js';

const SAMPLE = [3, 6, 6];

/**
 * conv 3→8, BN (γ = channel index + 1), ReLU; depthwise 3×3 + BN; residual Add with the ReLU
 * output; squeeze-excitation (GAP, conv 8→4, ReLU, conv 4→8, HardSigmoid, Mul); Flatten; Gemm → 5.
 */
function mobileBlock(): ModelProto {
  const rng = createRng(7);
  const t = (name: string, dims: number[], fill?: (i: number) => number): TensorProto =>
    floatTensor(
      name,
      dims,
      Float32Array.from({ length: dims.reduce((a, b) => a * b, 1) }, (_, i) =>
        fill ? fill(i) : rng() - 0.5,
      ),
    );
  const bn = (p: string, c: number, gamma: (i: number) => number) => [
    t(`${p}.g`, [c], gamma),
    t(`${p}.b`, [c]),
    t(`${p}.m`, [c]),
    t(`${p}.v`, [c], () => 1 + rng()),
  ];
  const inits = [
    t('c1.w', [8, 3, 3, 3]),
    ...bn('bn1', 8, (i) => i + 1),
    t('dw.w', [8, 1, 3, 3]),
    ...bn('bn2', 8, () => 1),
    t('se1.w', [4, 8, 1, 1]),
    t('se1.b', [4]),
    t('se2.w', [8, 4, 1, 1]),
    t('se2.b', [8]),
    t('fc.w', [8 * 36, 5]),
    t('fc.b', [5]),
  ];
  const bnNode = (p: string, x: string, y: string) =>
    makeNode('BatchNormalization', [x, `${p}.g`, `${p}.b`, `${p}.m`, `${p}.v`], [y]);
  const pads = attr.ints('pads', [1, 1, 1, 1]);
  const nodes = [
    makeNode('Conv', ['x', 'c1.w'], ['c1'], [pads]),
    bnNode('bn1', 'c1', 'b1'),
    makeNode('Relu', ['b1'], ['r1']),
    makeNode('Conv', ['r1', 'dw.w'], ['dw'], [pads, attr.int('group', 8)]),
    bnNode('bn2', 'dw', 'b2'),
    makeNode('Add', ['b2', 'r1'], ['res']),
    makeNode('GlobalAveragePool', ['res'], ['gap']),
    makeNode('Conv', ['gap', 'se1.w', 'se1.b'], ['s1']),
    makeNode('Relu', ['s1'], ['s1r']),
    makeNode('Conv', ['s1r', 'se2.w', 'se2.b'], ['s2']),
    makeNode('HardSigmoid', ['s2'], ['s2h']),
    makeNode('Mul', ['res', 's2h'], ['se']),
    makeNode('Flatten', ['se'], ['flat']),
    makeNode('Gemm', ['flat', 'fc.w', 'fc.b'], ['logits']),
  ];
  return makeModel(nodes, [floatInput('x', ['N', ...SAMPLE])], [floatInput('logits', ['N', 5])], {
    opset: 17,
    initializers: inits,
  });
}

const dims = (m: ModelProto, name: string) =>
  m.graph.initializer!.find((t) => t.name === name)!.dims!.map(Number);
const values = (m: ModelProto, name: string) =>
  tensorFloats(m.graph.initializer!.find((t) => t.name === name)!);

async function run(m: ModelProto, x: Float32Array, n: number) {
  const runner = await ModelRunner.create(m, 'm', { intraOpThreads: 1 });
  const [out] = await runner.run(x, n);
  await runner.release();
  return out;
}

describe('shrink: students derived from the teacher', () => {
  it('parses shrink:<width> and rejects widths outside (0, 1]', () => {
    expect(parseShrink('shrink:0.5')).toBe(0.5);
    expect(parseShrink('mlp:800')).toBeUndefined();
    for (const bad of ['shrink:0', 'shrink:1.5', 'shrink:x']) {
      let error: unknown;
      try {
        parseShrink(bad);
      } catch (e) {
        error = e;
      }
      expect(isFleetError(error) && error.code === 'INPUT_INVALID').toBe(true);
    }
  });

  it('couples the residual, depthwise and squeeze-excitation channels and keeps the output width', async () => {
    const { model, report } = await shrinkModel(mobileBlock(), 0.5, SAMPLE);
    // Main group (conv1, dw, residual, SE excite, fc rows) 8 → 4; SE squeeze 4 → 2; logits fixed.
    expect(dims(model, 'c1.w')).toEqual([4, 3, 3, 3]);
    expect(dims(model, 'dw.w')).toEqual([4, 1, 3, 3]);
    expect(dims(model, 'bn2.v')).toEqual([4]);
    expect(dims(model, 'se1.w')).toEqual([2, 4, 1, 1]);
    expect(dims(model, 'se2.w')).toEqual([4, 2, 1, 1]);
    expect(dims(model, 'se2.b')).toEqual([4]);
    expect(dims(model, 'fc.w')).toEqual([4 * 36, 5]);
    expect(report.groups.filter((g) => g.fixed).map((g) => g.size)).toEqual([5]);
    expect(report.parametersAfter).toBeLessThan(report.parametersBefore * 0.6);
    // BN1's γ grows with the channel index: channels 4..7 are the important ones.
    const teacher = mobileBlock();
    expect([...values(model, 'c1.w').subarray(0, 27)]).toEqual([
      ...values(teacher, 'c1.w').subarray(4 * 27, 5 * 27),
    ]);
    expect([...values(model, 'fc.w').subarray(0, 36 * 5)]).toEqual([
      ...values(teacher, 'fc.w').subarray(4 * 36 * 5, 5 * 36 * 5),
    ]);
    const rng = createRng(1);
    const x = Float32Array.from({ length: 2 * 108 }, () => rng());
    expect((await run(model, x, 2)).length).toBe(10);
  });

  it('width 1 leaves the function unchanged', async () => {
    const { model } = await shrinkModel(mobileBlock(), 1, SAMPLE);
    const x = Float32Array.from({ length: 108 }, (_, i) => Math.sin(i));
    expect([...(await run(model, x, 1))]).toEqual([...(await run(mobileBlock(), x, 1))]);
  });

  it('narrows a BN CNN (the MNIST teacher template) into a student the training graph accepts', async () => {
    const teacher = buildTemplate(
      { kind: 'cnn', channels: [8, 16] },
      { sampleShape: [1, 28, 28], classes: 10, seed: 1 },
    );
    const { model } = await shrinkModel(teacher, 0.5, [1, 28, 28]);
    expect(dims(model, 'block0.conv.weight')).toEqual([4, 1, 3, 3]);
    expect(dims(model, 'block1.conv.weight')).toEqual([8, 4, 3, 3]);
    expect(dims(model, 'head.weight')).toEqual([8 * 49, 10]);
    const graph = await buildTrainingGraph(trainingForm(model), { batch: 4, classes: 10 });
    expect(graph.carried.length).toBeGreaterThan(0);
  });

  it('narrows the branches of a channel Concat and the convolution that reads them at their offsets', async () => {
    // Branch filters 0 and 2 of a and 1 and 3 of b have the larger norms; the channels they drop
    // have zero weight in c, so the narrowed model computes the same function.
    const a = [3, 0.1, 2, 0.1].flatMap((v) => [v, -v, v]);
    const b = [0.1, 3, 0.1, 2].flatMap((v) => [v, v, -v]);
    const dropped = new Set([1, 3, 4, 6]);
    const cw = Float32Array.from({ length: 16 }, (_, i) => (dropped.has(i % 8) ? 0 : i + 1));
    const teacher = concatModel(1, a, b, cw);
    const { model, report } = await shrinkModel(teacher, 0.5, [3, 4, 4]);
    expect(dims(model, 'a.w')).toEqual([2, 3, 1, 1]);
    expect(dims(model, 'b.w')).toEqual([2, 3, 1, 1]);
    expect(dims(model, 'c.w')).toEqual([2, 4, 1, 1]);
    // c's input columns: a's channels 0 and 2, then b's 1 and 3 (at offset 4: 5 and 7).
    const kept = [0, 2, 5, 7];
    expect([...values(model, 'c.w')]).toEqual([0, 1].flatMap((o) => kept.map((k) => cw[o * 8 + k])));
    expect(report.groups.filter((g) => g.fixed).map((g) => g.size)).toEqual([2]);
    const x = Float32Array.from({ length: 2 * 48 }, (_, i) => Math.cos(i));
    const [want, got] = [await run(teacher, x, 2), await run(model, x, 2)];
    got.forEach((v, i) => {
      expect(v).toBeCloseTo(want[i], 4);
    });
  });

  it('leaves the branches of a Concat it cannot follow at full width', async () => {
    const ones = new Array(12).fill(1);
    for (const [axis, after] of [
      [2, 'Relu'],
      [1, 'Sigmoid+Add'],
    ] as const) {
      const m = concatModel(axis, ones, ones, new Float32Array(axis === 1 ? 16 : 8).fill(1), after);
      const shapes = await inferShapes(m, {
        x: new ort.Tensor('float32', new Float32Array(48), [1, 3, 4, 4]),
      });
      expect(channelGroups(m.graph, shapes).every((g) => g.fixed)).toBe(true);
    }
    expect(topChannels([0.1, 3, 2, 3], 2)).toEqual([1, 3]);
  });
});

/** Two 1×1 convolutions 3→4 of x, concatenated along `axis`, ReLU, then a 1×1 conv to 2 channels. */
function concatModel(
  axis: number,
  a: number[],
  b: number[],
  c: Float32Array,
  after: 'Relu' | 'Sigmoid+Add' = 'Relu',
): ModelProto {
  const tail =
    after === 'Relu'
      ? [makeNode('Relu', ['cat'], ['act'])]
      : [makeNode('Sigmoid', ['cat'], ['sig']), makeNode('Add', ['sig', 'cat'], ['act'])];
  const cin = axis === 1 ? 8 : 4;
  return makeModel(
    [
      makeNode('Conv', ['x', 'a.w'], ['a']),
      makeNode('Conv', ['x', 'b.w'], ['b']),
      makeNode('Concat', ['a', 'b'], ['cat'], [attr.int('axis', axis)]),
      ...tail,
      makeNode('Conv', ['act', 'c.w'], ['y']),
    ],
    [floatInput('x', ['N', 3, 4, 4])],
    [floatInput('y', ['N', 2, axis === 1 ? 4 : 8, 4])],
    {
      opset: 17,
      initializers: [
        floatTensor('a.w', [4, 3, 1, 1], Float32Array.from(a)),
        floatTensor('b.w', [4, 3, 1, 1], Float32Array.from(b)),
        floatTensor('c.w', [2, cin, 1, 1], c),
      ],
    },
  );
}
