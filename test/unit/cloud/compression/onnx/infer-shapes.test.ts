import { describe, expect, it } from 'vitest';
import { floatInput, makeModel, makeNode } from '../../../../../cloud/compression/onnx/build.js';
import { inferShapes } from '../../../../../cloud/compression/onnx/ort-eval.js';
import { floatTensor, int64Tensor } from '../../../../../cloud/compression/onnx/tensor.js';
import { DataType } from '../../../../../cloud/compression/onnx/types.js';
import { ort } from '../../../../../cloud/compression/runtime/ort.js';

const feeds = { x: new ort.Tensor('float32', new Float32Array(2 * 3 * 4).fill(1), [2, 3, 4]) };

function model(emptySlice: boolean) {
  return makeModel(
    [
      makeNode('Relu', ['x'], ['r']),
      makeNode('Shape', ['r'], ['s']),
      makeNode('Greater', ['r', 'zero'], ['g']),
      makeNode('Slice', ['r', 'start', emptySlice ? 'start' : 'end', 'axis'], ['sl']),
      makeNode('ReduceSum', ['sl'], ['y'], []),
    ],
    [floatInput('x', ['N', 3, 4])],
    [floatInput('y', [])],
    {
      opset: 13,
      initializers: [
        floatTensor('zero', [], [0]),
        int64Tensor('start', [1], [0]),
        int64Tensor('end', [1], [2]),
        int64Tensor('axis', [1], [2]),
      ],
    },
  );
}

describe('inferShapes', () => {
  it('reports dims and element types of every intermediate, and ranks as value_info', async () => {
    const m = model(false);
    const shapes = await inferShapes(m, feeds);
    expect(shapes.get('r')).toEqual({ dims: [2, 3, 4], elemType: DataType.FLOAT });
    expect(shapes.get('s')).toEqual({ dims: [3], elemType: DataType.INT64 });
    expect(shapes.get('g')).toEqual({ dims: [2, 3, 4], elemType: DataType.BOOL });
    expect(shapes.get('sl')).toEqual({ dims: [2, 3, 2], elemType: DataType.FLOAT });
    const info = m.graph.valueInfo!.find((v) => v.name === 'g')!;
    expect(info.type?.tensorType?.elemType).toBe(DataType.BOOL);
    expect(info.type?.tensorType?.shape?.dim).toHaveLength(3);
  });

  it('still answers when an intermediate is empty (the fast probe cannot read its first element)', async () => {
    const shapes = await inferShapes(model(true), feeds);
    expect(shapes.get('sl')).toEqual({ dims: [2, 3, 0], elemType: DataType.FLOAT });
    expect(shapes.get('s')).toEqual({ dims: [3], elemType: DataType.INT64 });
  });
});
