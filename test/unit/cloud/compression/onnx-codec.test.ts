import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { decodeModel, encodeModel } from '../../../../cloud/compression/onnx/proto.js';
import { tensorFloats } from '../../../../cloud/compression/onnx/tensor.js';
import { FleetError } from '../../../../shared/errors/index.js';

const SAMPLE = new URL('../../../../cloud/samples/mnist-mlp.onnx', import.meta.url);

describe('ONNX codec', () => {
  it('round-trips the sample model byte for byte', () => {
    const bytes = readFileSync(SAMPLE);
    const model = decodeModel(bytes);
    expect(model.graph.node.map((n) => n.opType)).toEqual(['Reshape', 'Gemm', 'Relu', 'Gemm']);
    expect(Buffer.from(encodeModel(model)).equals(bytes)).toBe(true);
    const weight = model.graph.initializer?.find((t) => t.name === 'fc1.weight');
    expect(tensorFloats(weight!).length).toBe(784 * 64);
  });

  it("keeps fields of ONNX's own schema that fleetml never reads (IR 10/11: metadata on nodes)", () => {
    const model = decodeModel(readFileSync(SAMPLE));
    const node = model.graph.node[1] as (typeof model.graph.node)[number] & {
      metadataProps?: Array<{ key: string; value: string }>;
    };
    node.metadataProps = [{ key: 'source', value: 'fleetml-test' }];
    const again = decodeModel(encodeModel(model)).graph.node[1] as typeof node;
    expect(again.metadataProps).toEqual([{ key: 'source', value: 'fleetml-test' }]);
  });

  it('rejects garbage with ONNX_DECODE', () => {
    const garbage = Buffer.from('this is not a protobuf at all, just text');
    expect(() => decodeModel(garbage)).toThrow(FleetError);
    try {
      decodeModel(garbage);
    } catch (error) {
      expect((error as FleetError).code).toBe('ONNX_DECODE');
    }
  });

  it('rejects a truncated model', () => {
    const bytes = readFileSync(SAMPLE);
    expect(() => decodeModel(bytes.subarray(0, bytes.length / 2))).toThrow(FleetError);
  });
});
