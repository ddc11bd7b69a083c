import { FleetError } from '../../shared/errors/index.js';
import type {
  InferInput,
  InferRequest,
  InferResponseOutput,
  TensorMetadata,
} from '../../shared/protocol/index.js';
import type { DatatypeInfo } from './datatypes.js';

/** A model input or output as served: protocol datatype and shape (-1 = any size). */
export interface TensorSpec {
  name: string;
  type: DatatypeInfo;
  /** What requests must match: the model's fixed dims, -1 for its symbolic ones. */
  shape: number[];
  /** What the metadata reports: symbolic dims filled from the serving shape; default `shape`. */
  described?: number[];
}

// biome-ignore lint/suspicious/noExplicitAny: typed arrays of every element kind
export type AnyTypedArray = any;

export interface DecodedTensor {
  name: string;
  type: DatatypeInfo;
  shape: number[];
  data: AnyTypedArray;
}

export function tensorMetadata(spec: TensorSpec): TensorMetadata {
  return { name: spec.name, datatype: spec.type.oip, shape: spec.described ?? spec.shape };
}

function bad(code: 'INPUT_INVALID' | 'ONNX_SHAPE' | 'SERVE_DATATYPE', message: string): FleetError {
  return new FleetError(code, message);
}

function elementCount(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Checks one request input against the model's spec: datatype, rank and every fixed dimension. */
function checkAgainstSpec(input: InferInput, spec: TensorSpec): void {
  if (input.datatype !== spec.type.oip) {
    throw bad(
      'SERVE_DATATYPE',
      `input '${input.name}' has datatype ${input.datatype}; the model expects ${spec.type.oip}`,
    );
  }
  const fits =
    input.shape.length === spec.shape.length && spec.shape.every((d, i) => d < 0 || d === input.shape[i]);
  if (!fits) {
    throw bad(
      'ONNX_SHAPE',
      `input '${input.name}' has shape [${input.shape}]; the model expects [${spec.shape}] (-1 = any size)`,
    );
  }
}

/**
 * Decodes every input of a request (JSON `data`, or `binary_data_size` bytes taken in order from
 * `binary` after the JSON header) into typed arrays, checked against the model's inputs.
 */
export function decodeInputs(
  request: InferRequest,
  specs: readonly TensorSpec[],
  binary: Buffer | null,
): DecodedTensor[] {
  if (request.inputs.length !== specs.length) {
    const expected = specs.map((s) => s.name).join(', ');
    throw bad(
      'INPUT_INVALID',
      `the model takes ${specs.length} input(s) (${expected}); got ${request.inputs.length}`,
    );
  }
  let offset = 0;
  const out: DecodedTensor[] = [];
  for (const input of request.inputs) {
    const spec = specs.find((s) => s.name === input.name);
    if (!spec)
      throw bad(
        'INPUT_INVALID',
        `unknown input '${input.name}'; the model takes ${specs.map((s) => s.name).join(', ')}`,
      );
    if (out.some((t) => t.name === input.name))
      throw bad('INPUT_INVALID', `input '${input.name}' given twice`);
    checkAgainstSpec(input, spec);
    const count = elementCount(input.shape);
    const size = input.parameters?.binary_data_size;
    let data: AnyTypedArray;
    if (size !== undefined) {
      if (typeof size !== 'number' || !Number.isInteger(size) || size < 0) {
        throw bad('INPUT_INVALID', `input '${input.name}': binary_data_size must be a non-negative integer`);
      }
      if (input.data !== undefined)
        throw bad('INPUT_INVALID', `input '${input.name}' has both data and binary_data_size`);
      if (!binary || offset + size > binary.length) {
        throw bad(
          'INPUT_INVALID',
          `input '${input.name}': binary_data_size ${size} runs past the end of the body`,
        );
      }
      data = fromBinary(binary.subarray(offset, offset + size), spec.type, count, input.name);
      offset += size;
    } else {
      data = fromJson(input.data, spec.type, count, input.name);
    }
    out.push({ name: input.name, type: spec.type, shape: input.shape, data });
  }
  if (binary && offset !== binary.length) {
    throw bad('INPUT_INVALID', `the body holds ${binary.length} binary bytes; the inputs claim ${offset}`);
  }
  return out;
}

function fromBinary(bytes: Buffer, type: DatatypeInfo, count: number, name: string): AnyTypedArray {
  const width = type.array.BYTES_PER_ELEMENT;
  if (bytes.length !== count * width) {
    throw bad(
      'ONNX_SHAPE',
      `input '${name}': ${bytes.length} bytes of binary data; shape and ${type.oip} need ${count * width}`,
    );
  }
  // Typed arrays need aligned views: copy when the body buffer does not give one.
  const aligned = bytes.byteOffset % width === 0 ? bytes : Buffer.from(new Uint8Array(bytes));
  return new type.array(aligned.buffer as ArrayBuffer, aligned.byteOffset, count);
}

function fromJson(data: unknown, type: DatatypeInfo, count: number, name: string): AnyTypedArray {
  if (!type.json)
    throw bad('SERVE_DATATYPE', `input '${name}': ${type.oip} has no JSON form; send it as binary data`);
  if (!Array.isArray(data))
    throw bad('INPUT_INVALID', `input '${name}' has no data (a JSON array or binary_data_size)`);
  const flat = type.range === null ? flatFloats(data, type, count) : null;
  if (flat) return flat;
  const out = new type.array(count);
  let i = 0;
  const put = (value: unknown) => {
    if (i >= count)
      throw bad('ONNX_SHAPE', `input '${name}' holds more than the ${count} elements its shape says`);
    out[i++] = element(value, type, name);
  };
  const walk = (values: unknown[]) => {
    for (const value of values) {
      if (Array.isArray(value)) walk(value);
      else put(value);
    }
  };
  walk(data);
  if (i !== count) throw bad('ONNX_SHAPE', `input '${name}' holds ${i} elements; its shape says ${count}`);
  return out;
}

/**
 * The common case on the hot path: float data sent flat, as many numbers as the shape says.
 * One tight loop instead of the recursive walk; null sends anything else to the walk, which
 * also gives the precise error.
 */
function flatFloats(data: unknown[], type: DatatypeInfo, count: number): AnyTypedArray | null {
  if (data.length !== count) return null;
  const out = new type.array(count);
  for (let i = 0; i < count; i++) {
    const v = data[i];
    if (typeof v !== 'number') return null;
    out[i] = v;
  }
  return out;
}

function element(value: unknown, type: DatatypeInfo, name: string): number | bigint {
  if (type.oip === 'BOOL' && typeof value === 'boolean') return value ? 1 : 0;
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    if (typeof value === 'number' && type.range === null) return value; // NaN / Infinity in floats
    throw bad('SERVE_DATATYPE', `input '${name}': ${JSON.stringify(value)} is not a ${type.oip} value`);
  }
  if (type.range) {
    if (!Number.isInteger(value) || value < type.range[0] || value > type.range[1]) {
      throw bad('SERVE_DATATYPE', `input '${name}': ${value} is not a ${type.oip} value`);
    }
    return type.bigint ? BigInt(value) : value;
  }
  return value;
}

export interface EncodedOutputs {
  outputs: InferResponseOutput[];
  /** Binary output data in output order, empty when every output is JSON. */
  binary: Buffer[];
}

/** Output tensors as the protocol returns them: JSON arrays, or binary data when asked. */
export function encodeOutputs(
  results: Record<string, { data: AnyTypedArray; dims: readonly number[] }>,
  specs: readonly TensorSpec[],
  request: InferRequest,
): EncodedOutputs {
  const allBinary = request.parameters?.binary_data_output === true;
  const wanted = request.outputs ?? specs.map((s) => ({ name: s.name, parameters: undefined }));
  const outputs: InferResponseOutput[] = [];
  const binary: Buffer[] = [];
  for (const want of wanted) {
    const spec = specs.find((s) => s.name === want.name);
    const result = results[want.name];
    if (!spec || !result) {
      throw bad(
        'INPUT_INVALID',
        `unknown output '${want.name}'; the model gives ${specs.map((s) => s.name).join(', ')}`,
      );
    }
    const asBinary = want.parameters?.binary_data ?? allBinary;
    const shape = Array.from(result.dims, Number);
    if (asBinary === true) {
      const data = result.data as ArrayBufferView;
      const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
      binary.push(bytes);
      outputs.push({
        name: spec.name,
        datatype: spec.type.oip,
        shape,
        parameters: { binary_data_size: bytes.length },
      });
    } else {
      outputs.push({
        name: spec.name,
        datatype: spec.type.oip,
        shape,
        data: jsonData(result.data, spec.type),
      });
    }
  }
  return { outputs, binary };
}

function jsonData(data: AnyTypedArray, type: DatatypeInfo): (number | boolean)[] {
  if (type.oip === 'BOOL') return Array.from(data as Uint8Array, (v) => v !== 0);
  if (type.bigint) return Array.from(data as BigInt64Array, Number);
  if (type.oip === 'FP16') throw bad('SERVE_DATATYPE', 'FP16 outputs have no JSON form; ask for binary_data');
  return Array.from(data as Float32Array);
}
