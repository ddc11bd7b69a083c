import { floatInput, makeModel, makeNode, makeValueInfo } from '../../cloud/compression/onnx/build.js';
import { encodeModel } from '../../cloud/compression/onnx/proto.js';
import { int64Tensor, makeTensor } from '../../cloud/compression/onnx/tensor.js';
import { AttributeType, DataType } from '../../cloud/compression/onnx/types.js';

export { buildMlp } from '../integration/agent/fixtures.js';

/**
 * A valid model whose only run never ends in practice: y = Loop(M = 2^62, cond = true, x) with a
 * body that passes x through. onnxruntime executes it in native code, where nothing in the
 * agent's process could interrupt it. `tag` changes the bytes (a distinct artifact).
 */
export function buildHangingModel(tag = 'hang'): Buffer {
  const body = {
    name: 'body',
    node: [makeNode('Identity', ['cond_in'], ['cond_out']), makeNode('Identity', ['v_in'], ['v_out'])],
    input: [
      makeValueInfo('i', DataType.INT64, []),
      makeValueInfo('cond_in', DataType.BOOL, []),
      floatInput('v_in', [1, 4]),
    ],
    output: [makeValueInfo('cond_out', DataType.BOOL, []), floatInput('v_out', [1, 4])],
    initializer: [],
    valueInfo: [],
  };
  const model = makeModel(
    [makeNode('Loop', ['trip', 'cond', 'x'], ['y'], [{ name: 'body', type: AttributeType.GRAPH, g: body }])],
    [floatInput('x', [1, 4])],
    [floatInput('y', [1, 4])],
    {
      name: tag,
      initializers: [int64Tensor('trip', [], [2 ** 62]), makeTensor('cond', DataType.BOOL, [], [1])],
    },
  );
  return Buffer.from(encodeModel(model));
}
