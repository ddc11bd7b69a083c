import { describe, expect, it } from 'vitest';
import { attr, floatInput, makeModel, makeNode } from '../../../../../cloud/compression/onnx/build.js';
import { encodeModel } from '../../../../../cloud/compression/onnx/proto.js';
import { floatTensor } from '../../../../../cloud/compression/onnx/tensor.js';
import { calibrateModel } from '../../../../../cloud/compression/quantize/static.js';
import {
  comparePaired,
  depthwiseConvs,
  floatChain,
  judgePairs,
  narrowInputConvs,
  tuneForLatency,
} from '../../../../../cloud/compression/quantize/tune.js';
import { ort } from '../../../../../cloud/compression/runtime/ort.js';
import { createRng, gaussian } from '../../../../../shared/random.js';

const rng = createRng(3);
const randn = (n: number, s = 1) => Float32Array.from({ length: n }, () => gaussian(rng) * s);

function convs(repeat: number) {
  const nodes = [makeNode('Conv', ['x', 'w'], ['c0'], [attr.ints('pads', [1, 1, 1, 1])], 'pointwise')];
  for (let i = 0; i < repeat; i++)
    nodes.push(
      makeNode(
        'Conv',
        [`c${i}`, 'dw'],
        [`c${i + 1}`],
        [attr.int('group', 16), attr.ints('pads', [1, 1, 1, 1])],
        `depthwise${i}`,
      ),
    );
  return makeModel(nodes, [floatInput('x', [1, 8, 32, 32])], [floatInput(`c${repeat}`, [])], {
    opset: 13,
    initializers: [
      floatTensor('w', [16, 8, 3, 3], randn(16 * 72)),
      floatTensor('dw', [16, 1, 3, 3], randn(144)),
    ],
  });
}

/** An image stem (3 → 8 channels, then Relu) before a pointwise and a depthwise conv. */
function stemmed() {
  const nodes = [
    makeNode('Conv', ['x', 'stem_w'], ['s'], [attr.ints('pads', [1, 1, 1, 1])], 'stem'),
    makeNode('Relu', ['s'], ['r'], [], 'stem_relu'),
    makeNode('Conv', ['r', 'w'], ['p'], [attr.ints('pads', [1, 1, 1, 1])], 'pointwise'),
    makeNode(
      'Conv',
      ['p', 'dw'],
      ['y'],
      [attr.int('group', 16), attr.ints('pads', [1, 1, 1, 1])],
      'depthwise',
    ),
  ];
  return makeModel(nodes, [floatInput('x', [1, 3, 32, 32])], [floatInput('y', [])], {
    opset: 13,
    initializers: [
      floatTensor('stem_w', [8, 3, 3, 3], randn(8 * 27)),
      floatTensor('w', [16, 8, 3, 3], randn(16 * 72)),
      floatTensor('dw', [16, 1, 3, 3], randn(144)),
    ],
  });
}

describe('latency tuner', () => {
  it('finds the convolutions that read at most 4 channels, with the activation only they feed', () => {
    expect(narrowInputConvs(stemmed())).toEqual(['stem']);
    expect(narrowInputConvs(convs(2))).toEqual([]);
    expect(floatChain(stemmed(), 'stem')).toEqual(['stem', 'stem_relu']);
  });

  it('tries the narrow-input convs first, before the budget can run out', async () => {
    const data = { x: randn(4 * 3 * 32 * 32), count: 4, sampleShape: [3, 32, 32] };
    const calibrated = await calibrateModel(stemmed(), data, { samples: 4 });
    const tuned = await tuneForLatency(calibrated, {}, data, { budgetSeconds: 0 });
    expect(tuned.notMeasured).toEqual(['narrow-input Conv ×1', 'depthwise Conv ×1']);
    const off = await tuneForLatency(calibrated, {}, data, { budgetSeconds: 0, narrowInput: false });
    expect(off.notMeasured).toEqual(['depthwise Conv ×1']);
  });

  it('finds depthwise convolutions', () => {
    expect(depthwiseConvs(convs(2))).toEqual(['depthwise0', 'depthwise1']);
  });

  it('pairs interleaved runs of two models, round by round', async () => {
    // Which model is faster is a timing question for the benchmarks (scripts/bench/quantize.ts);
    // here only the structure: every timed run of one model is paired with one of the other.
    const feeds = { x: new ort.Tensor('float32', randn(8 * 32 * 32), [1, 8, 32, 32]) };
    const small = encodeModel(convs(1));
    const result = await comparePaired(small, small, feeds, { runs: 10, rounds: 2, earlyStop: false });
    expect(result.pairs).toBe(20);
    expect(result.wins).toBeGreaterThanOrEqual(0);
    expect(result.wins).toBeLessThanOrEqual(20);
    expect(Number.isFinite(result.ratio) && result.ratio > 0).toBe(true);
    expect(Number.isFinite(result.minRatio) && result.minRatio > 0).toBe(true);
  });

  it('judges pairs with a sign test: ties are no gain, consistent wins are', () => {
    const even = judgePairs([0.9, 1.1, 0.95, 1.05, 0.99, 1.01, 0.98, 1.02], 1);
    expect(even.wins).toBe(4);
    expect(even.z).toBe(0);
    expect(even.ratio).toBeCloseTo(1, 6);
    const faster = judgePairs(
      Array.from({ length: 40 }, (_, i) => (i < 36 ? 0.5 : 1.2)),
      0.5,
    );
    expect(faster.wins).toBe(36);
    expect(faster.z).toBeGreaterThan(2.33);
    expect(faster.ratio).toBe(0.5);
    const slower = judgePairs(
      Array.from({ length: 40 }, () => 1.3),
      1.3,
    );
    expect(slower.z).toBeLessThan(-2.33);
    expect(judgePairs([], 1).z).toBe(0);
  });

  it('stops measuring when its time budget is spent and leaves the rest int8', async () => {
    const data = { x: randn(4 * 8 * 32 * 32), count: 4, sampleShape: [8, 32, 32] };
    const calibrated = await calibrateModel(convs(2), data, { samples: 4 });
    const tuned = await tuneForLatency(calibrated, {}, data, { budgetSeconds: 0 });
    expect(tuned.notMeasured).toEqual(['depthwise Conv ×2']);
    expect(tuned.floatByMeasurement).toEqual([]);
    // Every conv stayed int8: in QDQ form it reads a DequantizeLinear.
    const dq = new Set(
      tuned.model.graph.node.filter((n) => n.opType === 'DequantizeLinear').map((n) => n.output[0]),
    );
    const conv = tuned.model.graph.node.filter((n) => n.opType === 'Conv');
    expect(conv).toHaveLength(3);
    for (const c of conv) expect(dq.has(c.input[0])).toBe(true);
  });
});
