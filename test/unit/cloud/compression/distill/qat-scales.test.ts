import { describe, expect, it } from 'vitest';
import { insertFakeQuant, symmetricWeightScales } from '../../../../../cloud/compression/distill/qat.js';
import { trainingForm } from '../../../../../cloud/compression/distill/students/training-form.js';
import { floatInput, makeModel, makeNode } from '../../../../../cloud/compression/onnx/build.js';
import { encodeModel } from '../../../../../cloud/compression/onnx/proto.js';
import { floatTensor, tensorFloats } from '../../../../../cloud/compression/onnx/tensor.js';
import { SUFFIX } from '../../../../../cloud/compression/quantize/emit.js';
import { buildQdq, calibrateModel } from '../../../../../cloud/compression/quantize/static.js';
import { createSession, ort } from '../../../../../cloud/compression/runtime/ort.js';
import { normalSampler, outlierChannelModel } from '../quantize/outlier-model.js';

const randn = normalSampler(5);

/** The per-channel scales the QDQ model holds for each weight (its `<weight>_s` initializer). */
function emittedWeightScales(model: ReturnType<typeof buildQdq>['model'], weights: string[]) {
  const inits = new Map((model.graph.initializer ?? []).map((t) => [t.name!, t]));
  return new Map(weights.map((w) => [w, Array.from(tensorFloats(inits.get(`${w}${SUFFIX.scale}`)!))]));
}

describe('QAT weight scales follow the weight range the quantizer writes', () => {
  it('7-bit weights (reduce range, x86 without VNNI): the fake-quant scales are the emitted ones', async () => {
    const model = outlierChannelModel(randn);
    const calibrated = await calibrateModel(
      model,
      { x: randn(32 * 16), count: 32, sampleShape: [16] },
      {
        equalize: false,
      },
    );
    for (const [bits, reduceRange] of [
      [7, true],
      [8, false],
    ] as const) {
      const emitted = emittedWeightScales(buildQdq(calibrated, { reduceRange }).model, ['w1', 'w2', 'w3']);
      const qat = symmetricWeightScales(calibrated.model, true, bits);
      for (const [w, scales] of emitted) {
        expect(qat.get(w)!.scale, `${w} at ${bits} bits`).toEqual(scales);
        expect(qat.get(w)!.qmax).toBe(bits === 7 ? 63 : 127);
      }
    }
    // What the scales assumed before: /127 is half the step the 7-bit model uses.
    const old = symmetricWeightScales(calibrated.model, true, 8).get('w1')!.scale as number[];
    const seven = symmetricWeightScales(calibrated.model, true, 7).get('w1')!.scale as number[];
    expect(seven[0] / old[0]).toBeCloseTo(127 / 63, 4);
  });

  it('clamps fake-quantized 7-bit weights to ±63 steps, and the clamp bounds are not parameters', async () => {
    // y = x · W with x = identity: the output is the fake-quantized W itself.
    const w = Float32Array.from([0.5, -2.0, 0.25, 1.0, -0.1, 3.0]); // [3, 2]
    const model = makeModel(
      [makeNode('MatMul', ['x', 'w'], ['y'], [], 'mm')],
      [floatInput('x', ['N', 3])],
      [floatInput('y', ['N', 2])],
      { opset: 13, initializers: [floatTensor('w', [3, 2], w)] },
    );
    // Per output column, scales as if max |w| were 0.63 and 1.26: |w| above 63 steps is clamped.
    const fq = insertFakeQuant(model, new Map([['w', { scale: [0.01, 0.02], axis: 1, qmax: 63 }]]));
    const session = await createSession(encodeModel(fq));
    const eye = new ort.Tensor('float32', Float32Array.from([1, 0, 0, 0, 1, 0, 0, 0, 1]), [3, 3]);
    const out = Array.from((await session.run({ x: eye })).y.data as Float32Array);
    await session.release();
    const expected = [0.5, -1.26, 0.25, 1.0, -0.1, 1.26];
    for (const [i, v] of out.entries()) expect(v).toBeCloseTo(expected[i], 5);
    const form = trainingForm(fq, 0, [3]);
    expect(form.params.map((p) => p.name)).toEqual(['w']);
  });
});
