/**
 * Plain-object view of the ONNX protobuf messages as protobufjs produces them
 * (camelCase field names, int64 as number, bytes as Uint8Array). Only the fields fleetml
 * reads or writes are typed; every other field is kept on the object and survives a round trip.
 */
export interface StringStringEntry {
  key?: string;
  value?: string;
}

export interface TensorShapeDim {
  dimValue?: number;
  dimParam?: string;
  denotation?: string;
}

export interface TypeProto {
  tensorType?: { elemType?: number; shape?: { dim?: TensorShapeDim[] } };
  [field: string]: unknown;
}

export interface ValueInfo {
  name: string;
  type?: TypeProto;
  docString?: string;
  [field: string]: unknown;
}

export interface TensorProto {
  name?: string;
  dims?: number[];
  dataType?: number;
  rawData?: Uint8Array;
  floatData?: number[];
  int32Data?: number[];
  int64Data?: number[];
  doubleData?: number[];
  uint64Data?: number[];
  stringData?: Uint8Array[];
  externalData?: StringStringEntry[];
  dataLocation?: number;
  docString?: string;
  [field: string]: unknown;
}

export interface AttributeProto {
  name: string;
  type?: number;
  f?: number;
  i?: number;
  s?: Uint8Array;
  t?: TensorProto;
  g?: GraphProto;
  floats?: number[];
  ints?: number[];
  strings?: Uint8Array[];
  tensors?: TensorProto[];
  graphs?: GraphProto[];
  refAttrName?: string;
  docString?: string;
  [field: string]: unknown;
}

export interface NodeProto {
  input: string[];
  output: string[];
  name?: string;
  opType: string;
  domain?: string;
  attribute?: AttributeProto[];
  docString?: string;
  [field: string]: unknown;
}

export interface GraphProto {
  node: NodeProto[];
  name?: string;
  initializer?: TensorProto[];
  input?: ValueInfo[];
  output?: ValueInfo[];
  valueInfo?: ValueInfo[];
  docString?: string;
  [field: string]: unknown;
}

export interface OperatorSetId {
  domain?: string;
  version: number;
}

export interface ModelProto {
  irVersion?: number;
  opsetImport?: OperatorSetId[];
  producerName?: string;
  producerVersion?: string;
  domain?: string;
  modelVersion?: number;
  docString?: string;
  graph: GraphProto;
  metadataProps?: StringStringEntry[];
  [field: string]: unknown;
}

/** ONNX TensorProto.DataType values. */
export const DataType = {
  UNDEFINED: 0,
  FLOAT: 1,
  UINT8: 2,
  INT8: 3,
  UINT16: 4,
  INT16: 5,
  INT32: 6,
  INT64: 7,
  STRING: 8,
  BOOL: 9,
  FLOAT16: 10,
  DOUBLE: 11,
  UINT32: 12,
  UINT64: 13,
  BFLOAT16: 16,
  UINT4: 21,
  INT4: 22,
} as const;
export type DataTypeValue = (typeof DataType)[keyof typeof DataType];

/** ONNX AttributeProto.AttributeType values. */
export const AttributeType = {
  UNDEFINED: 0,
  FLOAT: 1,
  INT: 2,
  STRING: 3,
  TENSOR: 4,
  GRAPH: 5,
  FLOATS: 6,
  INTS: 7,
  STRINGS: 8,
  TENSORS: 9,
  GRAPHS: 10,
} as const;
