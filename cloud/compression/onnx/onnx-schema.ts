import { create, toBinary } from '@bufbuild/protobuf';
import { FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';
import { file_onnx } from 'onnx-buf';
import protobuf from 'protobufjs';
import 'protobufjs/ext/descriptor/index.js';

/**
 * The ONNX protobuf schema, taken from ONNX's own onnx.proto as compiled into the npm package
 * `onnx-buf` (ONNX 1.20: IR version 11, metadata_props, FunctionProto overloads, 4-bit and float8
 * types) — one upstream source, nothing typed by hand that could drift. The compiled file
 * descriptor is handed to protobufjs, which the ONNX layer uses for decoding and encoding, with
 * field names in camelCase (opType, rawData) as `types.ts` declares them.
 * Built on first use; nothing happens at import time.
 */
export function loadOnnxRoot(): protobuf.Root {
  const set = toBinary(FileDescriptorSetSchema, create(FileDescriptorSetSchema, { file: [file_onnx.proto] }));
  const snakeCase = (
    protobuf.Root as unknown as { fromDescriptor(bytes: Uint8Array): protobuf.Root }
  ).fromDescriptor(set);
  return protobuf.Root.fromJSON(camelCaseFields(snakeCase.toJSON() as JsonNode) as protobuf.INamespace);
}

type JsonNode = { [key: string]: unknown };

/** Renames every field (and oneof member) of every message to camelCase, as protobufjs's parser does. */
function camelCaseFields(node: JsonNode): JsonNode {
  const out: JsonNode = { ...node };
  if (node.fields) {
    out.fields = Object.fromEntries(
      Object.entries(node.fields as JsonNode).map(([name, field]) => [protobuf.util.camelCase(name), field]),
    );
  }
  if (node.oneofs) {
    out.oneofs = Object.fromEntries(
      Object.entries(node.oneofs as Record<string, { oneof: string[] }>).map(([name, oneof]) => [
        protobuf.util.camelCase(name),
        { ...oneof, oneof: oneof.oneof.map((f) => protobuf.util.camelCase(f)) },
      ]),
    );
  }
  if (node.nested) {
    out.nested = Object.fromEntries(
      Object.entries(node.nested as Record<string, JsonNode>).map(([name, child]) => [
        name,
        camelCaseFields(child),
      ]),
    );
  }
  return out;
}
