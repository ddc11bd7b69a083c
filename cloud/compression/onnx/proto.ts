import type protobuf from 'protobufjs';
import { FleetError } from '../../../shared/errors/index.js';
import { loadOnnxRoot } from './onnx-schema.js';
import type { ModelProto } from './types.js';

let modelType: protobuf.Type | undefined;

/** The ModelProto type, built from ONNX's schema on first use. */
function onnxModelType(): protobuf.Type {
  if (!modelType) {
    modelType = loadOnnxRoot().lookupType('onnx.ModelProto');
  }
  return modelType;
}

const TO_OBJECT_OPTIONS: protobuf.IConversionOptions = {
  // int64 fields become numbers; values beyond 2^53 (e.g. INT64_MAX in Slice ends) clamp back
  // to the same int64 on encode, which is what exporters mean by them.
  longs: Number,
  enums: Number,
  arrays: true,
  defaults: false,
};

/** Decodes ONNX bytes into a plain ModelProto; a coded ONNX_DECODE error on anything else. */
export function decodeModel(bytes: Uint8Array): ModelProto {
  let message: protobuf.Message;
  try {
    message = onnxModelType().decode(bytes);
  } catch (error) {
    throw new FleetError('ONNX_DECODE', `not an ONNX model: ${(error as Error).message}`, undefined, {
      cause: error,
    });
  }
  const model = onnxModelType().toObject(message, TO_OBJECT_OPTIONS) as ModelProto;
  if (!model.graph) throw new FleetError('ONNX_DECODE', 'not an ONNX model: it has no graph');
  model.graph.node ??= [];
  for (const node of model.graph.node) {
    node.input ??= [];
    node.output ??= [];
    if (!node.opType) throw new FleetError('ONNX_INVALID', `node ${node.name ?? '?'} has no op_type`);
  }
  return model;
}

/** Encodes a plain ModelProto back into ONNX bytes. */
export function encodeModel(model: ModelProto): Uint8Array {
  const type = onnxModelType();
  const message = type.fromObject(model);
  return type.encode(message).finish();
}
