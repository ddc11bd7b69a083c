import type { ServingShapes } from '../../shared/protocol/index.js';
import { planFeeds } from '../bench/benchmark.js';
import { makeTensor, type OrtFeeds, type OrtSession, type TensorInfo } from '../runtime/ort.js';
import { datatypeOfOrt } from './datatypes.js';
import type { TensorSpec } from './tensors.js';

/** What a run gave back: each output's dims (null when the run failed). */
export type OutputDims = Record<string, readonly number[]> | null;

/**
 * Fills the output dims of the metadata that the serving shape determines. A model usually
 * leaves an output's batch (or sequence) dim symbolic, and the metadata would say -1 although
 * every request at the serving shape gets the same size back. Two sources, in order:
 * - names: an output dim named like an input dim the serving shape fills (exporters name the
 *   batch dim once: `batch`, `N`) takes that value;
 * - a probe, only when the serving shape fixes every input dim: the warm-up run (random inputs)
 *   and one run on all-zero inputs at the same shape. A dim both runs agree on follows from the
 *   shape; one that differs depends on the values (NonZero, NMS) and stays -1, as does every dim
 *   when either run failed.
 * Requests are still checked against `shape`; only `described` changes.
 */
export async function describeOutputs(
  session: OrtSession,
  inputs: { info: TensorInfo; spec: TensorSpec }[],
  outputs: { info: TensorInfo; spec: TensorSpec }[],
  probe: { warmUp: OutputDims; servingShapes?: ServingShapes; dynamicDim: number },
): Promise<TensorSpec[]> {
  const byName = namedInputDims(inputs);
  const named = outputs.map(({ info, spec }) => ({
    ...spec,
    described: spec.shape.map((d, i) => (d > 0 ? d : (byName.get(String(info.shape[i])) ?? -1))),
  }));
  if (!named.some((s) => s.described.includes(-1)) || !probe.warmUp) return named;
  let plan: ReturnType<typeof planFeeds>;
  try {
    plan = planFeeds(session, { dynamicDim: probe.dynamicDim, servingShapes: probe.servingShapes });
  } catch {
    return named;
  }
  if (plan.unresolved.length > 0) return named;
  const zeros = await runDims(session, () => zeroFeeds(session, plan.shapes));
  if (!zeros) return named;
  return named.map((spec) => ({
    ...spec,
    described: spec.described.map((d, i) => (d > 0 ? d : agreed(probe.warmUp, zeros, spec, i))),
  }));
}

/** The value of every symbolic input dim the serving shape fills, by name (-1 if names clash). */
function namedInputDims(inputs: { info: TensorInfo; spec: TensorSpec }[]): Map<string, number> {
  const values = new Map<string, number>();
  for (const { info, spec } of inputs) {
    const described = spec.described ?? spec.shape;
    info.shape.forEach((d, i) => {
      if (typeof d !== 'string' || d === '' || spec.shape[i] > 0 || !(described[i] > 0)) return;
      const seen = values.get(d);
      values.set(d, seen === undefined || seen === described[i] ? described[i] : -1);
    });
  }
  for (const [name, value] of values) if (value < 0) values.delete(name);
  return values;
}

function agreed(a: OutputDims, b: OutputDims, spec: TensorSpec, i: number): number {
  const x = a?.[spec.name];
  const y = b?.[spec.name];
  if (!x || !y || x.length !== spec.shape.length || y.length !== spec.shape.length) return -1;
  return x[i] === y[i] && x[i] > 0 ? x[i] : -1;
}

/** Runs once and keeps only the output dims; a failed run (or no feeds) is null: best effort. */
export async function runDims(session: OrtSession, feeds: () => OrtFeeds | null): Promise<OutputDims> {
  try {
    const made = feeds();
    if (!made) return null;
    const results = await session.run(made);
    return Object.fromEntries(Object.entries(results).map(([name, t]) => [name, [...t.dims]]));
  } catch {
    return null;
  }
}

function zeroFeeds(session: OrtSession, shapes: Record<string, number[]>): OrtFeeds | null {
  const feeds: OrtFeeds = {};
  for (const name of session.inputNames) {
    const meta = session.inputMetadata.find((m) => m.name === name);
    const type = meta?.isTensor ? datatypeOfOrt(meta.type) : undefined;
    if (!type) return null;
    const dims = shapes[name];
    feeds[name] = makeTensor(type.ort, new type.array(dims.reduce((a, b) => a * b, 1)), dims);
  }
  return feeds;
}
