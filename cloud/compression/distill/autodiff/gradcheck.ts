import { createRng } from '../../../../shared/random.js';
import { makeModel, makeNode, makeValueInfo } from '../../onnx/build.js';
import { encodeModel } from '../../onnx/proto.js';
import { elementCount, makeTensor } from '../../onnx/tensor.js';
import { DataType, type ModelProto, type NodeProto, type TensorProto } from '../../onnx/types.js';
import { createSession, type OrtSession, type OrtTensor, ort } from '../../runtime/ort.js';
import { buildBackward } from './backward.js';
import { inferShapes } from './shapes.js';

export interface GradCheckInput {
  name: string;
  shape: number[];
  /** Values; default uniform in [-1, 1). Keep them away from kinks (ReLU at 0, ties in MaxPool). */
  values?: readonly number[];
}

export interface GradCheckCase {
  nodes: NodeProto[];
  /** Inputs whose gradients are checked. */
  inputs: GradCheckInput[];
  /** Constant inputs (attributes-as-inputs, running statistics ...), in the graph's float type or int64. */
  constants?: (dtype: number) => TensorProto[];
  /** The output that is projected onto a random direction to make the scalar loss. */
  output: string;
  /** Element type: 'auto' tries float64 and falls back to float32 where onnxruntime lacks a kernel. */
  dtype?: 'auto' | 'float32';
  /** Elements checked per input (random subset); default 24. */
  samples?: number;
  /** Finite-difference step; default 1e-6 (float64) or 1e-2 (float32). */
  epsilon?: number;
  seed?: number;
  /**
   * Evaluate every finite difference in a new session: a seeded Dropout draws a new mask on
   * each run of a session but the same first mask in every new session.
   */
  freshSessions?: boolean;
}

export interface GradCheckResult {
  dtype: 'float64' | 'float32';
  /**
   * Largest |analytic - numeric| / max(|analytic|, |numeric|, floor) over the checked elements;
   * floor is 1e-3 in float64 and 1 % of the input's largest gradient entry in float32.
   */
  maxRelativeError: number;
  checked: number;
}

/**
 * Compares the autodiff gradients of `loss = sum(output * R)` (R random) with central finite
 * differences. Used by the rule tests and available to anyone adding a rule.
 */
export async function gradientCheck(spec: GradCheckCase): Promise<GradCheckResult> {
  if ((spec.dtype ?? 'auto') === 'auto') {
    try {
      return await checkWith(spec, DataType.DOUBLE);
    } catch (error) {
      if (!/implementation|NOT_IMPLEMENTED|not implemented/i.test(String((error as Error).message)))
        throw error;
    }
  }
  return checkWith(spec, DataType.FLOAT);
}

async function checkWith(spec: GradCheckCase, dtype: number): Promise<GradCheckResult> {
  const rng = createRng(spec.seed ?? 7);
  const double = dtype === DataType.DOUBLE;
  const make = (values: number[], dims: number[]): OrtTensor =>
    double
      ? new ort.Tensor('float64', Float64Array.from(values), dims)
      : new ort.Tensor('float32', Float32Array.from(values), dims);
  const values = spec.inputs.map((i) =>
    i.values ? [...i.values] : Array.from({ length: elementCount(i.shape) }, () => rng() * 2 - 1),
  );
  const feeds = (vals: number[][]) =>
    Object.fromEntries(spec.inputs.map((input, k) => [input.name, make(vals[k], input.shape)]));
  const inputs = spec.inputs.map((i) => makeValueInfo(i.name, dtype, i.shape));
  const constants = spec.constants?.(dtype) ?? [];
  const forward = makeModel(spec.nodes, inputs, [makeValueInfo(spec.output, dtype, [])], {
    initializers: constants,
  });
  const shapes = await inferShapes(forward, feeds(values));
  const outShape = shapes.get(spec.output)!;
  const direction = Array.from({ length: elementCount(outShape) }, () => rng() * 2 - 1);
  const lossNodes = [
    makeNode('Mul', [spec.output, 'gc/direction'], ['gc/projected']),
    makeNode('ReduceSum', ['gc/projected'], ['gc/loss'], [{ name: 'keepdims', type: 2, i: 0 }]),
  ];
  const lossModel: ModelProto = makeModel(
    [...spec.nodes, ...lossNodes],
    inputs,
    [makeValueInfo('gc/loss', dtype, [])],
    {
      initializers: [...constants, makeTensor('gc/direction', dtype, outShape, direction)],
    },
  );
  shapes.set('gc/direction', outShape);
  shapes.set('gc/projected', outShape);
  shapes.set('gc/loss', []);
  const wrt = spec.inputs.map((i) => i.name);
  const back = buildBackward(lossModel.graph, 'gc/loss', wrt, shapes, { dtype });
  const gradModel = structuredClone(lossModel);
  gradModel.graph.node.push(...back.nodes);
  gradModel.graph.initializer!.push(...back.initializers);
  gradModel.graph.output = wrt.map((w) => makeValueInfo(back.gradients.get(w) ?? w, dtype, []));
  const gradSession = await createSession(encodeModel(gradModel), { intraOpThreads: 1 });
  const lossBytes = encodeModel(lossModel);
  let lossSession = await createSession(lossBytes, { intraOpThreads: 1 });
  try {
    const analytic = await gradSession.run(feeds(values));
    const eps = spec.epsilon ?? (double ? 1e-6 : 1e-2);
    let maxRelativeError = 0;
    let checked = 0;
    for (let k = 0; k < spec.inputs.length; k++) {
      const gradName = back.gradients.get(wrt[k]);
      const grad = gradName ? (analytic[gradName].data as Float32Array | Float64Array) : undefined;
      const count = values[k].length;
      const picks = pickIndices(count, spec.samples ?? 24, rng);
      // float32 forward passes carry ~1e-7 relative noise per element, which swamps the
      // smallest gradient entries; measure those against 1 % of the input's largest one.
      const floor = double ? 1e-3 : Math.max(1e-3, 0.01 * maxAbs(grad));
      for (const index of picks) {
        const renew = async () => {
          if (!spec.freshSessions) return lossSession;
          await lossSession.release();
          lossSession = await createSession(lossBytes, { intraOpThreads: 1 });
          return lossSession;
        };
        const numeric = await centralDifference(renew, values, k, index, eps, feeds);
        const a = grad ? grad[index] : 0;
        const error = Math.abs(a - numeric) / Math.max(Math.abs(a), Math.abs(numeric), floor);
        maxRelativeError = Math.max(maxRelativeError, error);
        checked++;
      }
    }
    return { dtype: double ? 'float64' : 'float32', maxRelativeError, checked };
  } finally {
    await gradSession.release();
    await lossSession.release();
  }
}

function maxAbs(values: ArrayLike<number> | undefined): number {
  let m = 0;
  for (let i = 0; i < (values?.length ?? 0); i++) m = Math.max(m, Math.abs(values![i]));
  return m;
}

function pickIndices(count: number, samples: number, rng: () => number): number[] {
  if (count <= samples) return Array.from({ length: count }, (_, i) => i);
  const picked = new Set<number>();
  while (picked.size < samples) picked.add(Math.floor(rng() * count));
  return [...picked];
}

async function centralDifference(
  session: () => Promise<OrtSession>,
  values: number[][],
  k: number,
  index: number,
  eps: number,
  feeds: (vals: number[][]) => Record<string, OrtTensor>,
): Promise<number> {
  const at = async (delta: number) => {
    const shifted = values.map((v, j) => (j === k ? v.map((x, i) => (i === index ? x + delta : x)) : v));
    const out = await (await session()).run(feeds(shifted));
    return Number(out['gc/loss'].data[0]);
  };
  return ((await at(eps)) - (await at(-eps))) / (2 * eps);
}
