import { describe, expect, it } from 'vitest';
import { mnistSplit, sliceDataset } from '../../../../cloud/compression/data/mnist.js';
import {
  distillThenQuantize,
  insertFakeQuant,
  type QuantScales,
  symmetricWeightScales,
} from '../../../../cloud/compression/distill/qat.js';
import { buildTemplate } from '../../../../cloud/compression/distill/students/templates.js';
import { evaluate, trainStudent } from '../../../../cloud/compression/distill/trainer.js';
import type { ModelProto } from '../../../../cloud/compression/onnx/types.js';

describe('quantization-aware distillation', () => {
  const { train: all, test } = mnistSplit();
  const train = sliceDataset(all, 0, 2048);
  const val = sliceDataset(test, 0, 500);
  const shape = { sampleShape: [1, 28, 28], classes: 10 };

  it('fine-tunes through Q/DQ with a straight-through gradient and recovers the accuracy lost to coarse scales', async () => {
    const teacher = (
      await trainStudent(
        buildTemplate({ kind: 'mlp', hidden: [128] }, { ...shape, seed: 1 }),
        undefined,
        train,
        val,
        {
          epochs: 6,
          loss: { mode: 'hard' },
          optimizer: { kind: 'sgd', lr: 0.1 },
          intraOpThreads: 1,
        },
      )
    ).model;
    const student = (
      await trainStudent(
        buildTemplate({ kind: 'mlp', hidden: [32] }, { ...shape, seed: 2 }),
        teacher,
        train,
        val,
        {
          epochs: 6,
          optimizer: { kind: 'adam', lr: 5e-3 },
          intraOpThreads: 1,
        },
      )
    ).model;
    // A deliberately coarse "quantizer" (per-tensor scales 12x too large, ~4-bit) so that PTQ loses
    // accuracy and the hook must fine-tune; it reuses the scales it is given.
    const coarse = (m: ModelProto): QuantScales => {
      const s = symmetricWeightScales(m, false);
      for (const [k, q] of s) s.set(k, { scale: (q.scale as number) * 24 });
      s.set('input', { scale: 1 / 255, zeroPoint: -128 });
      return s;
    };
    const quantizer = {
      quantize: async (m: ModelProto, fixed?: QuantScales) => {
        const scales = fixed ?? coarse(m);
        return { model: insertFakeQuant(m, scales), scales };
      },
    };
    const result = await distillThenQuantize(student, teacher, train, val, quantizer, 0.005, {
      epochs: 4,
      optimizer: { kind: 'adam', lr: 1e-3 },
      intraOpThreads: 1,
    });
    expect(result.usedQat).toBe(true);
    expect(result.int8.graph.node.filter((n) => n.opType === 'QuantizeLinear').length).toBe(3);
    // PTQ lost more than the budget; fine-tuning through the fake quantizers wins it back.
    expect(result.floatAccuracy - result.ptqAccuracy).toBeGreaterThan(0.005);
    expect(result.qatAccuracy!).toBeGreaterThan(result.ptqAccuracy);
    expect(result.qatAccuracy!).toBeGreaterThanOrEqual(result.floatAccuracy - 0.005);
    const check = await evaluate(result.int8, val, undefined, 10, { intraOpThreads: 1 });
    expect(check.accuracy).toBeCloseTo(result.qatAccuracy!, 5);
  });
});
