import { describe, expect, it } from 'vitest';
import { floatInput, makeModel, makeNode } from '../../../cloud/onnx/build.js';
import { floatTensor } from '../../../cloud/onnx/tensor.js';
import { quantizeWithFallback } from '../../../cloud/quantize/fallback.js';
import { buildQdq, calibrateModel } from '../../../cloud/quantize/static.js';
import { createRng, gaussian } from '../../../shared/random.js';

const rng = createRng(12);
const randn = (n: number, s = 1) => Float32Array.from({ length: n }, () => gaussian(rng) * s);

/**
 * x -> fc1 -> fc2 -> fc3. fc2 gives one output column a 2000× gain that fc3 undoes, so the
 * tensor between fc2 and fc3 has one huge channel and per-tensor int8 wipes out the rest:
 * only that part of the network is hurt by quantization.
 */
function model() {
  const w2 = randn(32 * 32, 0.2);
  for (let r = 0; r < 32; r++) w2[r * 32 + 5] *= 2000;
  const w3 = randn(32 * 8, 0.2);
  for (let c = 0; c < 8; c++) w3[5 * 8 + c] /= 2000;
  return makeModel(
    [
      makeNode('Gemm', ['x', 'w1', 'b1'], ['h1'], [], 'fc1'),
      makeNode('Relu', ['h1'], ['r1'], [], 'relu1'),
      makeNode('Gemm', ['r1', 'w2', 'b2'], ['h2'], [], 'fc2'),
      makeNode('Gemm', ['h2', 'w3', 'b3'], ['y'], [], 'fc3'),
    ],
    [floatInput('x', ['N', 16])],
    [floatInput('y', ['N', 8])],
    {
      opset: 13,
      initializers: [
        floatTensor('w1', [16, 32], randn(512, 0.3)),
        floatTensor('b1', [32], randn(32, 0.1)),
        floatTensor('w2', [32, 32], w2),
        floatTensor('b2', [32], randn(32, 0.1)),
        floatTensor('w3', [32, 8], w3),
        floatTensor('b3', [8], randn(8, 0.1)),
      ],
    },
  );
}

describe('accuracy-driven fallback', () => {
  it('returns the layers that break the budget to float, reports them, and meets the budget', async () => {
    const data = { x: randn(64 * 16), count: 64, sampleShape: [16] };
    const calibrated = await calibrateModel(model(), data, { equalize: false });
    const evalSet = { x: randn(32 * 16), count: 32, sampleShape: [16] };
    const steps: number[] = [];
    const result = await quantizeWithFallback(
      calibrated,
      {},
      evalSet,
      { minCosine: 0.999 },
      { maxSteps: 6, onStep: (_, m) => steps.push(m.cosine) },
    );
    // Without fallback the budget is missed (otherwise this test would prove nothing).
    expect(steps[0]).toBeLessThan(0.999);
    expect(result.budgetMet).toBe(true);
    expect(result.metrics.cosine).toBeGreaterThanOrEqual(0.999);
    expect(result.keptFloat.length).toBeGreaterThan(0);
    expect(result.keptFloat.some((n) => n === 'fc2' || n === 'fc3')).toBe(true);
    // The healthy first layer stays quantized.
    expect(result.keptFloat).not.toContain('fc1');
    const plain = buildQdq(calibrated);
    const gemms = (m: typeof plain.model) =>
      m.graph.node.filter((n) => n.opType === 'Gemm' && n.input[1].endsWith('_dequantized')).length;
    expect(gemms(plain.model)).toBe(3);
    expect(gemms(result.model)).toBe(3 - result.keptFloat.filter((n) => n.startsWith('fc')).length);
  });
});
