import { describe, expect, it } from 'vitest';
import { agreement, argmaxRows } from '../../../../../cloud/compression/evaluate/metrics.js';
import {
  attr,
  floatInput,
  makeModel,
  makeNode,
  makeValueInfo,
} from '../../../../../cloud/compression/onnx/build.js';
import { runOnce } from '../../../../../cloud/compression/onnx/ort-eval.js';
import { encodeModel } from '../../../../../cloud/compression/onnx/proto.js';
import { floatTensor } from '../../../../../cloud/compression/onnx/tensor.js';
import { DataType, type ModelProto } from '../../../../../cloud/compression/onnx/types.js';
import { batchTensor } from '../../../../../cloud/compression/quantize/calibrate/data.js';
import { quantizeFloatConstants } from '../../../../../cloud/compression/quantize/constants.js';
import { quantizeDynamic } from '../../../../../cloud/compression/quantize/dynamic.js';
import { buildQdq, calibrateModel } from '../../../../../cloud/compression/quantize/static.js';
import { ort } from '../../../../../cloud/compression/runtime/ort.js';
import { SMALL_TRANSFORMER, transformerClassifier } from '../../../../fixtures/transformer.js';
import { normalSampler } from './outlier-model.js';

const randn = normalSampler(17);

async function first(model: ModelProto, feeds: Record<string, ort.Tensor>): Promise<Float32Array> {
  const out = await runOnce(model, feeds);
  return Float32Array.from(Object.values(out)[0].data as Float32Array);
}

const maxAbsDiff = (a: Float32Array, b: Float32Array) =>
  a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);

describe('what stays float after static INT8 is stored in 8 bits too', () => {
  it('LayerNorm scale and bias become uint8 + DequantizeLinear, output within a step', async () => {
    const gamma = Float32Array.from(randn(64, 0.1), (v) => 1 + v);
    const model = makeModel(
      [makeNode('LayerNormalization', ['x', 'g', 'b'], ['y'], [attr.int('axis', -1)], 'ln')],
      [floatInput('x', ['N', 64])],
      [floatInput('y', ['N', 64])],
      { opset: 17, initializers: [floatTensor('g', [64], gamma), floatTensor('b', [64], randn(64, 0.1))] },
    );
    const q = structuredClone(model);
    expect(quantizeFloatConstants(q.graph).sort()).toEqual(['b', 'g']);
    const inits = new Map(q.graph.initializer!.map((t) => [t.name!, t]));
    expect(inits.has('g') || inits.has('b')).toBe(false);
    expect(
      [...inits.values()].filter((t) => t.dataType === DataType.UINT8 && t.dims?.[0] === 64),
    ).toHaveLength(2);
    const feeds = { x: new ort.Tensor('float32', randn(8 * 64), [8, 64]) };
    // uint8 over gamma's own range (≈ 0.7..1.3): steps of ~0.0025 on values ~1.
    expect(maxAbsDiff(await first(model, feeds), await first(q, feeds))).toBeLessThan(0.02);
  });

  it('a table read by Gather is gathered in uint8 and only the rows are dequantized', async () => {
    const table = randn(100 * 16, 0.5);
    const model = makeModel(
      [makeNode('Gather', ['table', 'ids'], ['rows'], [attr.int('axis', 0)], 'embed')],
      [makeValueInfo('ids', DataType.INT64, ['N'])],
      [floatInput('rows', ['N', 16])],
      { opset: 13, initializers: [floatTensor('table', [100, 16], table)] },
    );
    const q = structuredClone(model);
    expect(quantizeFloatConstants(q.graph)).toEqual(['table']);
    const gather = q.graph.node.find((n) => n.opType === 'Gather')!;
    const dq = q.graph.node.find((n) => n.opType === 'DequantizeLinear')!;
    expect(dq.input[0]).toBe(gather.output[0]); // dequantizes the gathered rows, not the table
    expect(dq.output[0]).toBe('rows');
    const ids = new ort.Tensor('int64', BigInt64Array.from([3n, 99n, 0n, 42n]), [4]);
    const step = (Math.max(...table) - Math.min(...table)) / 255;
    expect(maxAbsDiff(await first(model, { ids }), await first(q, { ids }))).toBeLessThanOrEqual(
      step / 2 + 1e-6,
    );
  });

  it('d 64 transformer (opset 14 and 17): static and dynamic INT8 at most 0.3 of FP32, top-1 kept', async () => {
    for (const opset of [14, 17] as const) {
      const spec = { ...SMALL_TRANSFORMER, opset };
      const float = transformerClassifier(spec);
      const floatSize = encodeModel(float).length;
      const data = { x: randn(64 * spec.seq * spec.d), count: 64, sampleShape: [spec.seq, spec.d] };
      const evalSet = { x: randn(128 * spec.seq * spec.d), count: 128, sampleShape: [spec.seq, spec.d] };
      const feeds = { x: batchTensor(evalSet, 0, evalSet.count) };
      const reference = argmaxRows(await first(float, feeds), spec.classes);
      const staticModel = buildQdq(await calibrateModel(float, data)).model;
      const dynamicModel = (await quantizeDynamic(float)).model;
      for (const [label, q] of [
        ['static', staticModel],
        ['dynamic', dynamicModel],
      ] as const) {
        expect(encodeModel(q).length / floatSize, `${label} opset ${opset}`).toBeLessThanOrEqual(0.3);
        const top1 = agreement(argmaxRows(await first(q, feeds), spec.classes), reference);
        expect(top1, `${label} opset ${opset}`).toBeGreaterThanOrEqual(0.93);
      }
    }
  }, 120_000);
});
