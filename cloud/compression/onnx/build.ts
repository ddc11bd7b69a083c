import {
  type AttributeProto,
  AttributeType,
  DataType,
  type ModelProto,
  type NodeProto,
  type TensorProto,
  type ValueInfo,
} from './types.js';

/**
 * Attribute constructors. They are explicit about the type because ONNX checks it: an
 * integer-valued float attribute (alpha = 1) must still be written as FLOAT.
 */
export const attr = {
  float: (name: string, f: number): AttributeProto => ({ name, type: AttributeType.FLOAT, f }),
  int: (name: string, i: number): AttributeProto => ({ name, type: AttributeType.INT, i }),
  string: (name: string, s: string): AttributeProto => ({
    name,
    type: AttributeType.STRING,
    s: new TextEncoder().encode(s),
  }),
  floats: (name: string, floats: readonly number[]): AttributeProto => ({
    name,
    type: AttributeType.FLOATS,
    floats: [...floats],
  }),
  ints: (name: string, ints: readonly number[]): AttributeProto => ({
    name,
    type: AttributeType.INTS,
    ints: [...ints],
  }),
  tensor: (name: string, t: TensorProto): AttributeProto => ({ name, type: AttributeType.TENSOR, t }),
};

export function makeNode(
  opType: string,
  input: readonly string[],
  output: readonly string[],
  attributes: AttributeProto[] = [],
  name?: string,
  domain?: string,
): NodeProto {
  const node: NodeProto = { opType, input: [...input], output: [...output], attribute: attributes };
  if (name) node.name = name;
  if (domain) node.domain = domain;
  return node;
}

/** A tensor value info; a string dim is symbolic (e.g. 'batch'). */
export function makeValueInfo(
  name: string,
  elemType: number,
  shape: readonly (number | string)[],
): ValueInfo {
  return {
    name,
    type: {
      tensorType: {
        elemType,
        shape: { dim: shape.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

export const floatInput = (name: string, shape: readonly (number | string)[]) =>
  makeValueInfo(name, DataType.FLOAT, shape);

export interface MakeModelOptions {
  name?: string;
  /** Default-domain opset; 17 gives per-channel Q/DQ and LayerNormalization. */
  opset?: number;
  /** Extra opset imports, e.g. [{ domain: 'com.microsoft', version: 1 }]. */
  extraOpsets?: { domain: string; version: number }[];
  initializers?: TensorProto[];
  valueInfo?: ValueInfo[];
  producer?: string;
}

export function makeModel(
  nodes: NodeProto[],
  inputs: ValueInfo[],
  outputs: ValueInfo[],
  options: MakeModelOptions = {},
): ModelProto {
  const opset = options.opset ?? 17;
  return {
    // IR 8 is what onnxruntime >= 1.14 reads for opsets up to 18.
    irVersion: 8,
    producerName: options.producer ?? 'fleetml',
    producerVersion: '0.1.0',
    opsetImport: [{ domain: '', version: opset }, ...(options.extraOpsets ?? [])],
    graph: {
      name: options.name ?? 'graph',
      node: nodes,
      input: inputs,
      output: outputs,
      initializer: options.initializers ?? [],
      valueInfo: options.valueInfo ?? [],
    },
  };
}
