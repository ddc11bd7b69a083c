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

/**
 * How close a device's outputs must be to the cloud's golden outputs, by the variant's
 * precision. The device runs the same artifact, but its execution provider and CPU may take
 * other kernels (ARM dot-product vs x86 VNNI int8, TensorRT, FP16 accumulation), so the bounds
 * widen with coarser arithmetic. Max |diff| is relative to the largest golden output (at least 1).
 */
export const GOLDEN_TOLERANCES = {
  fp32: { minCosine: 0.9999, relativeMaxAbs: 1e-3 },
  fp16: { minCosine: 0.999, relativeMaxAbs: 1e-2 },
  int: { minCosine: 0.99, relativeMaxAbs: 0.1 },
} as const;
export type GoldenPrecision = keyof typeof GOLDEN_TOLERANCES;

/** Precision of a variant from its name ('fp32', 'int8@rpi5', 'student-int4', 'fp16', 'dynamic'…). */
export function precisionOfVariant(variant: string): GoldenPrecision {
  const v = variant.toLowerCase();
  if (/int\d|dynamic|qat|quant/.test(v)) return 'int';
  if (/fp16|half/.test(v)) return 'fp16';
  return 'fp32';
}

/** Thresholds a manifest carries for `set` (`tolerance` = max |diff|, `minCosine`). */
export function goldenTolerance(set: GoldenSet, variant: string): { tolerance: number; minCosine: number } {
  const t = GOLDEN_TOLERANCES[precisionOfVariant(variant)];
  let scale = 1;
  for (const c of set.cases) {
    for (const tensor of Object.values(c.outputs)) {
      for (const v of goldenTensorData(tensor)) scale = Math.max(scale, Math.abs(Number(v)));
    }
  }
  return { tolerance: t.relativeMaxAbs * scale, minCosine: t.minCosine };
}

/** Cosine similarity of two equally long arrays; 1 when both are all zeros, -1 on a length mismatch. */
export function cosineSimilarity(a: ArrayLike<number | bigint>, b: ArrayLike<number | bigint>): number {
  if (a.length !== b.length) return -1;
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    const x = Number(a[i]);
    const y = Number(b[i]);
    dot += x * y;
    na += x * x;
    nb += y * y;
  }
  if (na === 0 && nb === 0) return 1;
  if (na === 0 || nb === 0) return 0;
  const c = dot / Math.sqrt(na * nb);
  return Number.isNaN(c) ? -1 : Math.max(-1, Math.min(1, c));
}
