import { describe, expect, it } from 'vitest';
import { countParameters } from '../../../../../cloud/compression/distill/export.js';
import { createOptimizer } from '../../../../../cloud/compression/distill/optim/optimizers.js';
import { learningRate } from '../../../../../cloud/compression/distill/optim/schedule.js';
import { buildTemplate, parseTemplate } from '../../../../../cloud/compression/distill/students/templates.js';

describe('student templates', () => {
  it('parses mlp and cnn templates and rejects anything else', () => {
    expect(parseTemplate('mlp:800,800')).toEqual({ kind: 'mlp', hidden: [800, 800] });
    expect(parseTemplate('cnn:16,32')).toEqual({ kind: 'cnn', channels: [16, 32] });
    expect(parseTemplate('rnn:3')).toBeUndefined();
    expect(parseTemplate('student.onnx')).toBeUndefined();
  });

  it('sizes an MLP to a parameter budget', () => {
    const template = parseTemplate('mlp@50k', 784, 10)!;
    const params = countParameters(buildTemplate(template, { sampleShape: [1, 28, 28], classes: 10 }));
    expect(params).toBeLessThanOrEqual(50_000);
    expect(params).toBeGreaterThan(45_000);
  });

  it('builds conv-BN-ReLU-pool blocks with a linear head', () => {
    const model = buildTemplate(
      { kind: 'cnn', channels: [8, 16] },
      { sampleShape: [1, 28, 28], classes: 10 },
    );
    const ops = model.graph.node.map((n) => n.opType);
    expect(ops.filter((o) => o === 'Conv').length).toBe(2);
    expect(ops.filter((o) => o === 'BatchNormalization').length).toBe(2);
    expect(ops.filter((o) => o === 'MaxPool').length).toBe(2);
    expect(ops.at(-1)).toBe('Gemm');
    expect(model.graph.initializer!.find((t) => t.name === 'head.weight')!.dims).toEqual([16 * 7 * 7, 10]);
  });
});

describe('learning-rate schedules', () => {
  it('warms up linearly, then follows cosine to the floor', () => {
    const o = { kind: 'cosine' as const, warmupSteps: 10, minFraction: 0.1 };
    expect(learningRate(1, 0, 110, o)).toBeCloseTo(0.1);
    expect(learningRate(1, 9, 110, o)).toBeCloseTo(1);
    expect(learningRate(1, 60, 110, o)).toBeCloseTo(0.55);
    expect(learningRate(1, 110, 110, o)).toBeCloseTo(0.1);
  });

  it('decays by gamma every stepSize steps', () => {
    const o = { kind: 'step' as const, stepSize: 100, gamma: 0.5 };
    expect(learningRate(0.2, 99, 1000, o)).toBeCloseTo(0.2);
    expect(learningRate(0.2, 250, 1000, o)).toBeCloseTo(0.05);
  });
});

describe('optimizer hyper-parameters', () => {
  it('Adam folds bias corrections into the step size and epsilon exactly like PyTorch', () => {
    const adam = createOptimizer({ kind: 'adam', beta1: 0.9, beta2: 0.999, epsilon: 1e-8 });
    const [seed, a, eps] = adam.hyper(4, 0.01);
    const c1 = 1 - 0.9 ** 5;
    const c2 = 1 - 0.999 ** 5;
    expect(seed).toBeCloseTo(0.1);
    expect(a).toBeCloseTo((0.01 * Math.sqrt(c2)) / c1, 12);
    expect(eps).toBeCloseTo(1e-8 * Math.sqrt(c2), 20);
  });

  it('SGD seeds the backward pass with the learning rate and can fold momentum into a Gemm', () => {
    const sgd = createOptimizer({ kind: 'sgd', momentum: 0.9, weightDecay: 5e-4 });
    expect(sgd.hyper(0, 0.1)).toEqual([0.1, 0.1 * 5e-4]);
    expect(sgd.seedIndex).toBe(0);
    expect(sgd.accumulateBeta).toBe(0.9);
    expect(createOptimizer({ kind: 'sgd', momentum: 0 }).accumulateBeta).toBeUndefined();
  });
});
