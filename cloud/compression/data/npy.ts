import { readFile, writeFile } from 'node:fs/promises';
import { FleetError } from '../../../shared/errors/index.js';

/** Array types a .npy file can hold for fleetml: float inputs and integer labels. */
export type NpyData = Float32Array | Float64Array | Int32Array | BigInt64Array | Uint8Array | Int8Array;

export interface NpyArray {
  data: NpyData;
  shape: number[];
  dtype: NpyDtype;
}

export type NpyDtype = 'float32' | 'float64' | 'int32' | 'int64' | 'uint8' | 'int8';

const DESCR_TO_DTYPE: Record<string, NpyDtype> = {
  '<f4': 'float32',
  '<f8': 'float64',
  '<i4': 'int32',
  '<i8': 'int64',
  '|u1': 'uint8',
  '<u1': 'uint8',
  '|i1': 'int8',
  '<i1': 'int8',
};
const DTYPE_TO_DESCR: Record<NpyDtype, string> = {
  float32: '<f4',
  float64: '<f8',
  int32: '<i4',
  int64: '<i8',
  uint8: '|u1',
  int8: '|i1',
};
const BYTES: Record<NpyDtype, number> = { float32: 4, float64: 8, int32: 4, int64: 8, uint8: 1, int8: 1 };
const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

function invalid(message: string): FleetError {
  return new FleetError('NPY_INVALID', message);
}

/** Parses .npy bytes (format 1.0–3.0, little-endian, C order). */
export function parseNpy(bytes: Uint8Array, label = 'array'): NpyArray {
  if (bytes.length < 10 || MAGIC.some((b, i) => bytes[i] !== b)) throw invalid(`${label}: not a .npy file`);
  const major = bytes[6];
  if (major < 1 || major > 3) throw invalid(`${label}: .npy format version ${major} is not supported`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerStart = major === 1 ? 10 : 12;
  if (bytes.length < headerStart) throw invalid(`${label}: truncated header`);
  const headerLength = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  if (headerStart + headerLength > bytes.length) throw invalid(`${label}: truncated header`);
  const header = new TextDecoder('latin1').decode(bytes.subarray(headerStart, headerStart + headerLength));
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (!descr || !fortran || shapeText === undefined)
    throw invalid(`${label}: malformed header ${header.trim()}`);
  if (fortran === 'True')
    throw invalid(`${label}: Fortran-ordered arrays are not supported; save with C order`);
  const dtype = DESCR_TO_DTYPE[descr];
  if (!dtype) throw invalid(`${label}: dtype ${descr} is not supported (use float32, int64, int32 or uint8)`);
  const shape = shapeText
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map(Number);
  if (shape.some((d) => !Number.isInteger(d) || d < 0)) throw invalid(`${label}: bad shape (${shapeText})`);
  const count = shape.reduce((a, b) => a * b, 1);
  const dataStart = headerStart + headerLength;
  const byteLength = count * BYTES[dtype];
  if (bytes.length - dataStart < byteLength) {
    throw invalid(`${label}: truncated data (${bytes.length - dataStart} of ${byteLength} bytes)`);
  }
  const copy = new ArrayBuffer(byteLength);
  new Uint8Array(copy).set(bytes.subarray(dataStart, dataStart + byteLength));
  return { data: makeArray(dtype, copy), shape, dtype };
}

function makeArray(dtype: NpyDtype, buffer: ArrayBuffer): NpyData {
  switch (dtype) {
    case 'float32':
      return new Float32Array(buffer);
    case 'float64':
      return new Float64Array(buffer);
    case 'int32':
      return new Int32Array(buffer);
    case 'int64':
      return new BigInt64Array(buffer);
    case 'uint8':
      return new Uint8Array(buffer);
    case 'int8':
      return new Int8Array(buffer);
  }
}

function dtypeOf(data: NpyData): NpyDtype {
  if (data instanceof Float32Array) return 'float32';
  if (data instanceof Float64Array) return 'float64';
  if (data instanceof Int32Array) return 'int32';
  if (data instanceof BigInt64Array) return 'int64';
  if (data instanceof Int8Array) return 'int8';
  return 'uint8';
}

/** Serialises an array as .npy version 1.0. */
export function formatNpy(data: NpyData, shape: readonly number[]): Uint8Array {
  const dtype = dtypeOf(data);
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let header = `{'descr': '${DTYPE_TO_DESCR[dtype]}', 'fortran_order': False, 'shape': ${shapeText}, }`;
  // Pad so that the data starts on a 64-byte boundary, ending the header with a newline.
  const unpadded = 10 + header.length + 1;
  header += ' '.repeat((64 - (unpadded % 64)) % 64) + '\n';
  const out = new Uint8Array(10 + header.length + data.byteLength);
  out.set(MAGIC, 0);
  out[6] = 1;
  out[7] = 0;
  new DataView(out.buffer).setUint16(8, header.length, true);
  out.set(new TextEncoder().encode(header), 10);
  out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), 10 + header.length);
  return out;
}

export async function readNpy(path: string): Promise<NpyArray> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (error) {
    throw new FleetError('FILE_NOT_FOUND', `cannot read ${path}: ${(error as Error).message}`, { path });
  }
  return parseNpy(bytes, path);
}

export async function writeNpy(path: string, data: NpyData, shape: readonly number[]): Promise<void> {
  await writeFile(path, formatNpy(data, shape));
}

/** Float32 copy of any numeric array (for model inputs). */
export function toFloat32(data: NpyData): Float32Array {
  if (data instanceof Float32Array) return data;
  return Float32Array.from(data as ArrayLike<number | bigint>, (v) => Number(v));
}

/** Integer class labels from any integer array. */
export function toLabels(array: NpyArray): Int32Array {
  if (array.dtype === 'float32' || array.dtype === 'float64') {
    throw invalid(`labels must be integers, got ${array.dtype}`);
  }
  return Int32Array.from(array.data as ArrayLike<number | bigint>, (v) => Number(v));
}
