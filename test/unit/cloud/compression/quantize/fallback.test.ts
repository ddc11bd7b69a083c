import { describe, expect, it } from 'vitest';
import { quantizeWithFallback } from '../../../../../cloud/compression/quantize/fallback.js';
import { buildQdq, calibrateModel } from '../../../../../cloud/compression/quantize/static.js';
import { normalSampler, outlierChannelModel } from './outlier-model.js';

const randn = normalSampler(12);
const model = () => outlierChannelModel(randn);

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
    // Gemms whose weight comes out of a DequantizeLinear run quantized.
    const gemms = (m: typeof plain.model) => {
      const dequantized = new Set(
        m.graph.node.filter((n) => n.opType === 'DequantizeLinear').map((n) => n.output[0]),
      );
      return m.graph.node.filter((n) => n.opType === 'Gemm' && dequantized.has(n.input[1])).length;
    };
    expect(gemms(plain.model)).toBe(3);
    expect(gemms(result.model)).toBe(3 - result.keptFloat.filter((n) => n.startsWith('fc')).length);
  });
});
