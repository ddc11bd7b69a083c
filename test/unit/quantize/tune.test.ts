import { describe, expect, it } from 'vitest';
import { attr, floatInput, makeModel, makeNode } from '../../../cloud/onnx/build.js';
import { encodeModel } from '../../../cloud/onnx/proto.js';
import { floatTensor } from '../../../cloud/onnx/tensor.js';
import { calibrateModel } from '../../../cloud/quantize/static.js';
import { comparePaired, depthwiseConvs, tuneForLatency } from '../../../cloud/quantize/tune.js';
import { ort } from '../../../cloud/runtime/ort.js';
import { createRng, gaussian } from '../../../shared/random.js';

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

describe('latency tuner', () => {
  it('finds depthwise convolutions', () => {
    expect(depthwiseConvs(convs(2))).toEqual(['depthwise0', 'depthwise1']);
  });

  it('judges paired interleaved runs: a model against itself is no significant gain, 30× less work is', async () => {
    const feeds = { x: new ort.Tensor('float32', randn(8 * 32 * 32), [1, 8, 32, 32]) };
    const small = encodeModel(convs(1));
    const large = encodeModel(convs(30));
    const same = await comparePaired(small, small, feeds, { runs: 20, rounds: 2 });
    expect(same.pairs).toBeGreaterThanOrEqual(20);
    expect(same.z).toBeLessThan(2.33);
    const faster = await comparePaired(small, large, feeds, { runs: 20, rounds: 2 });
    expect(faster.ratio).toBeLessThan(0.8);
    expect(faster.z).toBeGreaterThan(2.33);
    expect(faster.wins).toBeGreaterThan(faster.pairs * 0.7);
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
