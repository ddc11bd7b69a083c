import { FleetError } from '../../../shared/errors/index.js';
import { DataType, type TensorProto } from './types.js';

export type NumericArray =
  | Float32Array
  | Float64Array
  | Int8Array
  | Uint8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | BigInt64Array;

interface DataTypeInfo {
  name: string;
  bytes: number;
  make: (buffer: ArrayBuffer, length: number) => NumericArray;
}

const DATA_TYPES: Record<number, DataTypeInfo> = {
  [DataType.FLOAT]: { name: 'float32', bytes: 4, make: (b, n) => new Float32Array(b, 0, n) },
  [DataType.DOUBLE]: { name: 'float64', bytes: 8, make: (b, n) => new Float64Array(b, 0, n) },
  [DataType.INT8]: { name: 'int8', bytes: 1, make: (b, n) => new Int8Array(b, 0, n) },
  [DataType.UINT8]: { name: 'uint8', bytes: 1, make: (b, n) => new Uint8Array(b, 0, n) },
  [DataType.BOOL]: { name: 'bool', bytes: 1, make: (b, n) => new Uint8Array(b, 0, n) },
  [DataType.INT16]: { name: 'int16', bytes: 2, make: (b, n) => new Int16Array(b, 0, n) },
  [DataType.UINT16]: { name: 'uint16', bytes: 2, make: (b, n) => new Uint16Array(b, 0, n) },
  [DataType.FLOAT16]: { name: 'float16', bytes: 2, make: (b, n) => new Uint16Array(b, 0, n) },
  [DataType.INT32]: { name: 'int32', bytes: 4, make: (b, n) => new Int32Array(b, 0, n) },
  [DataType.UINT32]: { name: 'uint32', bytes: 4, make: (b, n) => new Uint32Array(b, 0, n) },
  [DataType.INT64]: { name: 'int64', bytes: 8, make: (b, n) => new BigInt64Array(b, 0, n) },
};

export function dataTypeName(dataType: number): string {
  return DATA_TYPES[dataType]?.name ?? `type${dataType}`;
}

export function elementCount(dims: readonly number[] | undefined): number {
  return (dims ?? []).reduce((a, b) => a * b, 1);
}

/**
 * Reads a tensor's values into a typed array of its type (float16 as raw uint16 bits,
 * int64 as BigInt64Array). The bytes are copied: `rawData` is often an unaligned view into
 * the whole model file.
 */
export function tensorValues(tensor: TensorProto): NumericArray {
  const info = DATA_TYPES[tensor.dataType ?? 0];
  if (!info) {
    throw new FleetError('ONNX_INVALID', `tensor ${tensor.name}: unsupported data type ${tensor.dataType}`);
  }
  const count = elementCount(tensor.dims);
  if (tensor.dataLocation === 1) {
    throw new FleetError('ONNX_EXTERNAL_DATA', `tensor ${tensor.name} has external data that was not loaded`);
  }
  if (tensor.rawData && tensor.rawData.length > 0) {
    if (tensor.rawData.length !== count * info.bytes) {
      throw new FleetError(
        'ONNX_INVALID',
        `tensor ${tensor.name}: raw data has ${tensor.rawData.length} bytes, expected ${count * info.bytes}`,
      );
    }
    const copy = new ArrayBuffer(count * info.bytes);
    new Uint8Array(copy).set(tensor.rawData);
    return info.make(copy, count);
  }
  const out = info.make(new ArrayBuffer(count * info.bytes), count);
  const source = typedFieldValues(tensor);
  if (source.length !== count) {
    throw new FleetError(
      'ONNX_INVALID',
      `tensor ${tensor.name}: has ${source.length} values, expected ${count}`,
    );
  }
  if (out instanceof BigInt64Array) {
    for (let i = 0; i < count; i++) out[i] = BigInt(Math.trunc(source[i]));
  } else {
    for (let i = 0; i < count; i++) out[i] = source[i];
  }
  return out;
}

function typedFieldValues(tensor: TensorProto): number[] {
  switch (tensor.dataType) {
    case DataType.FLOAT:
      return tensor.floatData ?? [];
    case DataType.DOUBLE:
      return tensor.doubleData ?? [];
    case DataType.INT64:
      return tensor.int64Data ?? [];
    case DataType.UINT32:
      return tensor.uint64Data ?? [];
    default:
      // int8/uint8/int16/uint16/int32/bool/float16 all live in int32_data.
      return tensor.int32Data ?? [];
  }
}

/** Per-output-channel values of a constant broadcast against an [N, C, ...] tensor, if it is one. */
export function channelConstant(
  t: TensorProto | undefined,
  channels: number,
  rank: number,
): Float32Array | undefined {
  if (!t || (t.dataType ?? 1) !== 1) return undefined;
  const v = tensorFloats(t);
  if (v.length === 1) return new Float32Array(channels).fill(v[0]);
  const dims = t.dims ?? [];
  if (v.length !== channels || dims.length > rank) return undefined;
  // Right-aligned broadcasting: the channel axis is rank-3 from the end for [N, C, H, W].
  const axis = dims.length - (rank - 1);
  return dims.every((d, i) => (i === axis ? d === channels : d === 1)) ? v : undefined;
}

/** Float view of any numeric tensor (int64 converted with Number). */
export function tensorFloats(tensor: TensorProto): Float32Array {
  const values = tensorValues(tensor);
  if (values instanceof Float32Array) return values;
  if (tensor.dataType === DataType.FLOAT16)
    throw new FleetError('ONNX_INVALID', 'float16 tensor read as float');
  return Float32Array.from(values as ArrayLike<number | bigint>, (v) => Number(v));
}

/** Builds a tensor with its values in raw_data (the compact form every runtime reads). */
export function makeTensor(
  name: string,
  dataType: number,
  dims: readonly number[],
  values: NumericArray | readonly number[],
): TensorProto {
  const info = DATA_TYPES[dataType];
  if (!info) throw new FleetError('ONNX_INVALID', `cannot build tensor of data type ${dataType}`);
  const count = elementCount(dims);
  if (values.length !== count) {
    throw new FleetError('ONNX_INVALID', `tensor ${name}: ${values.length} values for dims [${dims}]`);
  }
  let typed: NumericArray;
  if (ArrayBuffer.isView(values)) {
    typed = values;
  } else {
    typed = info.make(new ArrayBuffer(count * info.bytes), count);
    if (typed instanceof BigInt64Array) for (let i = 0; i < count; i++) typed[i] = BigInt(values[i]);
    else for (let i = 0; i < count; i++) typed[i] = values[i];
  }
  const rawData = new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength).slice();
  return { name, dataType, dims: [...dims], rawData };
}

export const floatTensor = (
  name: string,
  dims: readonly number[],
  values: Float32Array | readonly number[],
) => makeTensor(name, DataType.FLOAT, dims, values);

export const int64Tensor = (name: string, dims: readonly number[], values: readonly number[]) =>
  makeTensor(name, DataType.INT64, dims, values);
