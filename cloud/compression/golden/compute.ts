import { FleetError } from '../../../shared/errors/index.js';
import { type GoldenSet, type GoldenTensor, goldenTensor } from '../../../shared/manifest/index.js';
import { createRng } from '../../../shared/random.js';
import type { NpyArray } from '../data/npy.js';
import { describeOnnx, type TensorSpec } from '../describe.js';
import { runCasesIsolated } from './run-isolated.js';

/** Golden-set options; each field's default in GOLDEN_DEFAULTS. */
export interface GoldenOptions {
  /** Cases in the set (rows of the sample inputs, or generated inputs). Default 8. */
  cases: number;
  /** Seed of generated inputs (a model uploaded without samples). Default 1234. */
  seed: number;
  /** Value of symbolic dimensions (batch) in generated inputs. Default 1. */
  dynamicDim: number;
  /** The model runs in a child process killed after this many ms (RUNTIME_TIMEOUT): 8 runs at batch 1
   * of an edge model take well under a second; a model that hangs must not hold up its upload. Default 15 000. */
  timeoutMs: number;
}

export const GOLDEN_DEFAULTS: GoldenOptions = { cases: 8, seed: 1234, dynamicDim: 1, timeoutMs: 15_000 };

/**
 * Runs the model on golden inputs (rows of `samples` for its first input, e.g. a model's sample
 * inputs or a compression job's validation data, otherwise seeded random inputs) and records the
 * outputs, so that a device can check that it computes the same on its own execution provider.
 * Outputs of types the golden format cannot carry are left out; null when none is left.
 */
export async function computeGoldenSet(
  model: Uint8Array,
  samples?: NpyArray | Array<Record<string, GoldenTensor>>,
  options: Partial<GoldenOptions> = {},
): Promise<GoldenSet | null> {
  const o = { ...GOLDEN_DEFAULTS, ...options };
  const { inputs } = describeOnnx(model);
  const caseInputs = Array.isArray(samples)
    ? samples.slice(0, o.cases)
    : samples
      ? rowsOf(samples, inputs, o.cases)
      : generated(inputs, o);
  const outputs = await runCasesIsolated(model, caseInputs, { timeoutMs: o.timeoutMs });
  const set: GoldenSet = { v: 1, cases: [] };
  for (let i = 0; i < caseInputs.length; i++) {
    if (Object.keys(outputs[i] ?? {}).length === 0) return null;
    set.cases.push({ inputs: caseInputs[i], outputs: outputs[i] });
  }
  return set.cases.length > 0 ? set : null;
}

/** One case per row of `samples` for the model's only input. */
function rowsOf(samples: NpyArray, inputs: TensorSpec[], cases: number): Array<Record<string, GoldenTensor>> {
  if (inputs.length !== 1) {
    throw new FleetError(
      'INPUT_INVALID',
      `sample inputs fit a model with one input; this one has ${inputs.length}`,
    );
  }
  const [rows, ...rest] = samples.shape;
  const per = rest.reduce((a, b) => a * b, 1);
  const out: Array<Record<string, GoldenTensor>> = [];
  for (let r = 0; r < Math.min(rows ?? 0, cases); r++) {
    const row = Float32Array.from(samples.data.subarray(r * per, (r + 1) * per) as ArrayLike<number>, Number);
    out.push({ [inputs[0].name]: goldenTensor('float32', [1, ...rest], row) });
  }
  return out;
}

/** Seeded inputs: floats in [-1, 1), integers 0..9, symbolic dimensions = dynamicDim. */
function generated(inputs: TensorSpec[], o: GoldenOptions): Array<Record<string, GoldenTensor>> {
  const rng = createRng(o.seed);
  const out: Array<Record<string, GoldenTensor>> = [];
  for (let c = 0; c < o.cases; c++) {
    const feeds: Record<string, GoldenTensor> = {};
    for (const input of inputs) {
      const dims = input.shape.map((d) => (typeof d === 'number' && d > 0 ? d : o.dynamicDim));
      const n = dims.reduce((a, b) => a * b, 1);
      const ints = () => Array.from({ length: n }, () => Math.floor(rng() * 10));
      switch (input.type) {
        case 'float32':
          feeds[input.name] = goldenTensor(
            'float32',
            dims,
            Float32Array.from({ length: n }, () => rng() * 2 - 1),
          );
          break;
        case 'int64':
          feeds[input.name] = goldenTensor('int64', dims, BigInt64Array.from(ints(), BigInt));
          break;
        case 'int32':
          feeds[input.name] = goldenTensor('int32', dims, Int32Array.from(ints()));
          break;
        case 'uint8':
        case 'int8':
        case 'bool':
          feeds[input.name] = goldenTensor(
            input.type,
            dims,
            Uint8Array.from(ints(), (v) => (input.type === 'bool' ? v % 2 : v)),
          );
          break;
        default:
          throw new FleetError(
            'INPUT_INVALID',
            `golden inputs of type ${input.type} (input ${input.name}) are not supported`,
          );
      }
    }
    out.push(feeds);
  }
  return out;
}
