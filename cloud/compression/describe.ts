import { FleetError } from '../../shared/errors/index.js';
import { decodeModel } from './onnx/proto.js';
import { dataTypeName } from './onnx/tensor.js';
import type { ValueInfo } from './onnx/types.js';

/** One graph input or output as the fleet sees it: a symbolic dimension keeps its name. */
export interface TensorSpec {
  name: string;
  shape: Array<number | string>;
  type: string;
}

function toSpec(info: ValueInfo): TensorSpec {
  const tensor = info.type?.tensorType;
  return {
    name: info.name,
    type: dataTypeName(tensor?.elemType ?? 0),
    shape: (tensor?.shape?.dim ?? []).map((d) => d.dimValue ?? d.dimParam ?? '?'),
  };
}

/** Reads the real (non-initializer) inputs and the outputs of an ONNX model. */
export function describeOnnx(bytes: Uint8Array): { inputs: TensorSpec[]; outputs: TensorSpec[] } {
  const model = decodeModel(bytes);
  const initializers = new Set((model.graph.initializer ?? []).map((t) => t.name));
  const inputs = (model.graph.input ?? []).filter((i) => !initializers.has(i.name)).map(toSpec);
  const outputs = (model.graph.output ?? []).map(toSpec);
  if (inputs.length === 0 || outputs.length === 0) {
    throw new FleetError('ONNX_INVALID', 'model has no inputs or no outputs');
  }
  return { inputs, outputs };
}
