/**
 * "Never ship slower": which INT8 form a model gets (static QDQ, dynamic, or static on the
 * weight MatMuls only) is decided by measuring every candidate against the FP32 model at the
 * target's batch, on the build machine — and FP32 is kept when none is faster. Only meaningful
 * when the build machine runs the target's kernels (x86 profiles on x86: target.ts).
 */
import { measureSpeedVerdicts, type SpeedVerdict, type VerdictOptions } from '../evaluate/verdict.js';
import { GraphIndex } from '../onnx/graph.js';
import { elementCount } from '../onnx/tensor.js';
import type { ModelProto } from '../onnx/types.js';
import type { OrtTensor } from '../runtime/ort.js';
import { weightMatMul } from './weight-matmul.js';

/** The INT8 forms the chooser compares. */
export type Int8Form = 'static' | 'dynamic' | 'matmul-only';

/** A built candidate: its form and serialized model. */
export interface Int8Candidate {
  form: Int8Form;
  bytes: Uint8Array;
}

/** One candidate as measured against FP32 in the same run. */
export interface MeasuredCandidate extends SpeedVerdict {
  form: Int8Form;
  sizeBytes: number;
  /** Candidate size / FP32 size. */
  sizeRatio: number;
}

export interface Int8Choice {
  /** The form to ship, or 'fp32' when no candidate measured faster than FP32. */
  chosen: Int8Form | 'fp32';
  /** The chosen candidate, or the fastest one measured when FP32 is kept. */
  best: MeasuredCandidate;
  candidates: MeasuredCandidate[];
}

/**
 * The form to ship (pure, so the rule is tested apart from timing): the lowest latency ratio
 * among candidates whose verdict is 'faster'; 'fp32' when there is none.
 */
export function pickFastest(measured: readonly MeasuredCandidate[]): Pick<Int8Choice, 'chosen' | 'best'> {
  if (measured.length === 0) throw new Error('pickFastest: no candidates');
  const byRatio = [...measured].sort((a, b) => a.latencyRatio - b.latencyRatio);
  const winner = byRatio.find((c) => c.verdict === 'faster');
  return winner ? { chosen: winner.form, best: winner } : { chosen: 'fp32', best: byRatio[0] };
}

/** Measures every candidate against `float` in one block-alternating run and picks the form. */
export async function chooseByMeasurement(
  float: Uint8Array,
  candidates: readonly Int8Candidate[],
  feeds: Record<string, OrtTensor>,
  options: Partial<VerdictOptions> = {},
): Promise<Int8Choice> {
  const verdicts = await measureSpeedVerdicts(
    float,
    candidates.map((c) => c.bytes),
    feeds,
    options,
  );
  const measured = candidates.map((c, i) => ({
    form: c.form,
    sizeBytes: c.bytes.length,
    sizeRatio: c.bytes.length / float.length,
    ...verdicts[i],
  }));
  return { ...pickFastest(measured), candidates: measured };
}

/**
 * Names (node name, or first output when unnamed) of every node except the MatMul/Gemm nodes
 * with constant weights: excluded from a static QDQ build, they leave int8 only where the
 * weights are (no int8 islands around Add, Softmax or normalisation). Undefined when the
 * weight MatMuls hold less than half of the compute weights (Conv, MatMul, Gemm): a CNN whose
 * only MatMul is its classifier head would get the float model under an INT8 name, and one
 * larger than the original when its convs were padded for int8 kernels (pad-channels.ts).
 */
export function matmulOnlyExclusions(model: ModelProto): string[] | undefined {
  const index = new GraphIndex(model.graph);
  const kept = model.graph.node.filter((n) => weightMatMul(n, index));
  if (kept.length === 0 || matmulWeightShare(model, index) < 0.5) return undefined;
  const keep = new Set(kept);
  return model.graph.node.filter((n) => !keep.has(n)).map((n) => n.name || n.output[0]);
}

/** Share of the constant weights of Conv, MatMul and Gemm nodes that weight MatMuls hold. */
export function matmulWeightShare(model: ModelProto, index = new GraphIndex(model.graph)): number {
  let matmul = 0;
  let all = 0;
  for (const node of model.graph.node) {
    if (!COMPUTE_OPS.has(node.opType)) continue;
    const weights = index.initializers.get(node.input[1]);
    if (!weights) continue;
    const count = elementCount(weights.dims);
    all += count;
    if (weightMatMul(node, index)) matmul += count;
  }
  return all === 0 ? 0 : matmul / all;
}

const COMPUTE_OPS = new Set(['Conv', 'MatMul', 'Gemm']);
