import { FleetError } from '../../../shared/errors/index.js';
import { describeNode, getAttribute } from './graph.js';
import { floatTensor, int64Tensor } from './tensor.js';
import type { ModelProto, NodeProto, TensorProto } from './types.js';

/** The tensor a Constant node produces, from whichever value_* attribute it carries. */
export function constantValue(node: NodeProto): TensorProto {
  const name = node.output[0];
  const value = getAttribute(node, 'value');
  if (value?.t) return { ...value.t, name };
  const f = getAttribute(node, 'value_float');
  if (f) return floatTensor(name, [], [f.f ?? 0]);
  const fs = getAttribute(node, 'value_floats');
  if (fs) return floatTensor(name, [fs.floats?.length ?? 0], fs.floats ?? []);
  const i = getAttribute(node, 'value_int');
  if (i) return int64Tensor(name, [], [i.i ?? 0]);
  const is = getAttribute(node, 'value_ints');
  if (is) return int64Tensor(name, [is.ints?.length ?? 0], is.ints ?? []);
  throw new FleetError('ONNX_UNSUPPORTED_OP', `${describeNode(node)}: unsupported Constant form`, {
    node: node.name,
    op: node.opType,
  });
}

/**
 * Turns Constant nodes of the main graph into initializers (exporters such as paddle2onnx
 * store every weight that way), so that passes find weights in one place.
 */
export function constantsToInitializers(model: ModelProto): number {
  const graph = model.graph;
  graph.initializer ??= [];
  let moved = 0;
  graph.node = graph.node.filter((node) => {
    if (node.opType !== 'Constant' || (node.domain ?? '') !== '') return true;
    graph.initializer!.push(constantValue(node));
    moved++;
    return false;
  });
  return moved;
}
