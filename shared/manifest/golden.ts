import { z } from 'zod';
import { FleetError } from '../errors/index.js';

/**
 * Golden set shipped with a model: a few inputs and the outputs the cloud got for them with
 * the same artifact. Stored as a content-addressed artifact (manifest.golden.sha256) and
 * fetched like the model. Tensors are raw little-endian bytes in base64 plus type and dims.
 */
export const GOLDEN_TYPES = ['float32', 'int64', 'int32', 'int8', 'uint8', 'bool'] as const;
export type GoldenType = (typeof GOLDEN_TYPES)[number];

const goldenTensorSchema = z.object({
  type: z.enum(GOLDEN_TYPES),
  dims: z.array(z.number().int().nonnegative()).max(16),
  data: z.string(),
});
export type GoldenTensor = z.infer<typeof goldenTensorSchema>;

export const goldenSetSchema = z.object({
  v: z.literal(1),
  cases: z
    .array(
      z.object({
        inputs: z.record(z.string(), goldenTensorSchema),
        outputs: z.record(z.string(), goldenTensorSchema),
        /** Expected class per case for the accuracy spot check; optional. */
        label: z.number().int().optional(),
      }),
    )
    .min(1)
    .max(256),
});
export type GoldenSet = z.infer<typeof goldenSetSchema>;

type TypedArray = Float32Array | BigInt64Array | Int32Array | Int8Array | Uint8Array;

const CTORS = {
  float32: Float32Array,
  int64: BigInt64Array,
  int32: Int32Array,
  int8: Int8Array,
  uint8: Uint8Array,
  bool: Uint8Array,
} as const;

export function goldenTensor(type: GoldenType, dims: readonly number[], data: TypedArray): GoldenTensor {
  return {
    type,
    dims: [...dims],
    data: Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('base64'),
  };
}

export function goldenTensorData(tensor: GoldenTensor): TypedArray {
  const bytes = Buffer.from(tensor.data, 'base64');
  const Ctor = CTORS[tensor.type];
  const copy = new Uint8Array(bytes.length);
  copy.set(bytes);
  if (copy.length % Ctor.BYTES_PER_ELEMENT !== 0) {
    throw new FleetError('INPUT_INVALID', `golden ${tensor.type} tensor has ${copy.length} bytes`);
  }
  const out = new Ctor(copy.buffer, 0, copy.length / Ctor.BYTES_PER_ELEMENT);
  const expected = tensor.dims.reduce((a, b) => a * b, 1);
  if (out.length !== expected) {
    throw new FleetError('INPUT_INVALID', `golden tensor has ${out.length} values for dims [${tensor.dims}]`);
  }
  return out;
}

export function encodeGoldenSet(set: GoldenSet): Buffer {
  return Buffer.from(JSON.stringify(set));
}

export function decodeGoldenSet(bytes: Uint8Array): GoldenSet {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (error) {
    throw new FleetError('INPUT_INVALID', `golden set is not JSON: ${(error as Error).message}`);
  }
  const parsed = goldenSetSchema.safeParse(value);
  if (!parsed.success) {
    throw new FleetError('INPUT_INVALID', `golden set is invalid: ${parsed.error.issues[0]?.message}`);
  }
  return parsed.data;
}

/** Largest absolute difference between two numeric arrays of the same length (Infinity if not). */
export function maxAbsDiff(expected: ArrayLike<number | bigint>, actual: ArrayLike<number | bigint>): number {
  if (expected.length !== actual.length) return Number.POSITIVE_INFINITY;
  let max = 0;
  for (let i = 0; i < expected.length; i++) {
    const d = Math.abs(Number(expected[i]) - Number(actual[i]));
    if (Number.isNaN(d)) return Number.POSITIVE_INFINITY;
    if (d > max) max = d;
  }
  return max;
}
