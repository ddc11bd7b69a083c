/**
 * Open Inference Protocol datatypes and their onnxruntime / typed-array counterparts.
 * BYTES (ONNX string tensors) is not served: no fleetml model takes strings.
 */
export type OipDatatype =
  | 'BOOL'
  | 'UINT8'
  | 'UINT16'
  | 'UINT32'
  | 'UINT64'
  | 'INT8'
  | 'INT16'
  | 'INT32'
  | 'INT64'
  | 'FP16'
  | 'FP32'
  | 'FP64';

type TypedArrayCtor =
  | Uint8ArrayConstructor
  | Uint16ArrayConstructor
  | Uint32ArrayConstructor
  | BigUint64ArrayConstructor
  | Int8ArrayConstructor
  | Int16ArrayConstructor
  | Int32ArrayConstructor
  | BigInt64ArrayConstructor
  | Float32ArrayConstructor
  | Float64ArrayConstructor;

export interface DatatypeInfo {
  oip: OipDatatype;
  ort: string;
  array: TypedArrayCtor;
  /** Elements are BigInts (64-bit integers). */
  bigint: boolean;
  /** JSON data accepted (FP16 has no JSON form in the protocol). */
  json: boolean;
  /** Integer range for JSON values (inclusive); null for floats. */
  range: [number, number] | null;
}

const table: DatatypeInfo[] = [
  { oip: 'BOOL', ort: 'bool', array: Uint8Array, bigint: false, json: true, range: [0, 1] },
  { oip: 'UINT8', ort: 'uint8', array: Uint8Array, bigint: false, json: true, range: [0, 255] },
  { oip: 'UINT16', ort: 'uint16', array: Uint16Array, bigint: false, json: true, range: [0, 65_535] },
  { oip: 'UINT32', ort: 'uint32', array: Uint32Array, bigint: false, json: true, range: [0, 4_294_967_295] },
  {
    oip: 'UINT64',
    ort: 'uint64',
    array: BigUint64Array,
    bigint: true,
    json: true,
    range: [0, Number.MAX_SAFE_INTEGER],
  },
  { oip: 'INT8', ort: 'int8', array: Int8Array, bigint: false, json: true, range: [-128, 127] },
  { oip: 'INT16', ort: 'int16', array: Int16Array, bigint: false, json: true, range: [-32_768, 32_767] },
  {
    oip: 'INT32',
    ort: 'int32',
    array: Int32Array,
    bigint: false,
    json: true,
    range: [-2_147_483_648, 2_147_483_647],
  },
  {
    oip: 'INT64',
    ort: 'int64',
    array: BigInt64Array,
    bigint: true,
    json: true,
    range: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
  },
  { oip: 'FP16', ort: 'float16', array: Uint16Array, bigint: false, json: false, range: null },
  { oip: 'FP32', ort: 'float32', array: Float32Array, bigint: false, json: true, range: null },
  { oip: 'FP64', ort: 'float64', array: Float64Array, bigint: false, json: true, range: null },
];

const byOip = new Map(table.map((t) => [t.oip as string, t]));
const byOrt = new Map(table.map((t) => [t.ort, t]));

export function datatypeOf(oip: string): DatatypeInfo | undefined {
  return byOip.get(oip);
}

/** The protocol's name for an onnxruntime element type; undefined for types not served. */
export function datatypeOfOrt(ort: string): DatatypeInfo | undefined {
  return byOrt.get(ort);
}
