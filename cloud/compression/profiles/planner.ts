import type { DeviceProfile } from './types.js';

/** One model variant the compression pipeline should produce. */
export interface PlannedVariant {
  name: 'original' | 'int8' | 'fp16' | 'student' | 'student-int8';
  /** The variant it is derived from. */
  from: 'input' | 'student';
  kind: 'copy' | 'int8' | 'fp16' | 'distill';
  /** Why the planner wants it (shown in the report). */
  why: string;
}

export interface PlanInput {
  profile: DeviceProfile;
  teacherBytes: number;
  teacherParameters: number;
  /** Latency objective at batch 1 in ms; default the profile's. */
  latencyObjectiveMs?: number;
  /** A student template chosen by the user, instead of the planner's. */
  student?: string;
  /**
   * The teacher's op types (`graph.node.map((n) => n.opType)`). A teacher that is not an MLP
   * gets a student shrunk from its own graph (`shrink:<width>`); without them the planner
   * proposes an MLP as before.
   */
  teacherOpTypes?: readonly string[];
}

export interface CompressionPlan {
  variants: PlannedVariant[];
  /** Student spec: shrink:<width> for non-MLP teachers, else mlp@<parameters>, unless the user chose one. */
  student: string;
  latencyObjectiveMs: number;
}

/**
 * What to build for a profile. The report always sets the original, the quantized, the
 * distilled and the distilled-then-quantized variants side by side (measured, not argued);
 * FP16 is added where the profile's accelerators prefer it. The student gets a quarter of the
 * teacher's parameters, or fewer if the profile's size budget demands.
 */
export function planCompression(input: PlanInput): CompressionPlan {
  const { profile } = input;
  const variants: PlannedVariant[] = [
    { name: 'original', from: 'input', kind: 'copy', why: 'the reference' },
  ];
  if (profile.precisions.includes('int8')) {
    variants.push({
      name: 'int8',
      from: 'input',
      kind: 'int8',
      why: `static INT8 (${profile.int8.activations === 'int8' ? 'S8S8' : 'U8S8'}${profile.int8.reduceRange ? ', reduce range' : ''})`,
    });
  }
  if (profile.precisions.includes('fp16')) {
    variants.push({
      name: 'fp16',
      from: 'input',
      kind: 'fp16',
      why: `${profile.executionProviders[0]} runs FP16 natively`,
    });
  }
  const overBudget = input.teacherBytes > profile.maxModelBytes;
  variants.push({
    name: 'student',
    from: 'input',
    kind: 'distill',
    why: overBudget
      ? `the model is over the profile's ${profile.maxModelBytes} bytes`
      : 'distillation, for comparison',
  });
  if (profile.precisions.includes('int8')) {
    variants.push({ name: 'student-int8', from: 'student', kind: 'int8', why: 'distilled, then quantized' });
  }
  return {
    variants,
    student: input.student ?? defaultStudent(input),
    latencyObjectiveMs: input.latencyObjectiveMs ?? profile.latencyObjectiveMs,
  };
}

/** Ops an MLP teacher is made of (linear layers, activations, reshaping, softmax). */
const MLP_OPS = new Set([
  'Gemm',
  'MatMul',
  'Add',
  'Sub',
  'Mul',
  'Div',
  'Relu',
  'LeakyRelu',
  'Sigmoid',
  'Tanh',
  'Gelu',
  'Erf',
  'Flatten',
  'Reshape',
  'Softmax',
  'LogSoftmax',
  'Dropout',
  'Identity',
  'Constant',
  'Clip',
]);

/** Whether a graph with these op types is a plain MLP (no convolution, attention or recurrence). */
export function isMlpGraph(opTypes: readonly string[]): boolean {
  return opTypes.every((op) => MLP_OPS.has(op));
}

/**
 * A quarter of the teacher's parameters (or the profile's size budget): an MLP of that size for
 * MLP teachers; for others the teacher's own graph at half width (parameters fall about with the
 * width squared), narrower when the budget demands.
 */
function defaultStudent(input: PlanInput): string {
  const budget = Math.floor(input.profile.maxModelBytes / 4);
  if (input.teacherOpTypes && !isMlpGraph(input.teacherOpTypes)) {
    const fit = Math.sqrt(input.profile.maxModelBytes / Math.max(1, input.teacherBytes));
    const width = Math.max(0.05, Math.min(0.5, Math.floor(fit * 20) / 20));
    return `shrink:${width}`;
  }
  const parameters = Math.max(1000, Math.min(Math.floor(input.teacherParameters / 4), budget));
  return `mlp@${parameters}`;
}

export interface MeasuredVariant {
  name: string;
  accepted: boolean;
  /** Latency measured on this machine, ms. */
  latencyMs: number | null;
  /** Latency devices of the profile reported for this variant, ms (closed loop). */
  deviceLatencyMs?: number | null;
}

/**
 * The variant to ship: among those within the accuracy budget, the fastest, judged by what
 * devices of the profile measured when they have reported (so a profile where INT8 measured
 * slower gets FP32), else by this machine's measurement.
 */
export function recommendVariant(variants: MeasuredVariant[]): string | null {
  const accepted = variants.filter((v) => v.accepted);
  if (accepted.length === 0) return null;
  const latency = (v: MeasuredVariant) => v.deviceLatencyMs ?? v.latencyMs ?? Number.POSITIVE_INFINITY;
  const measuredOnDevices = accepted.filter((v) => v.deviceLatencyMs != null);
  const pool = measuredOnDevices.length >= 2 ? measuredOnDevices : accepted;
  return [...pool].sort((a, b) => latency(a) - latency(b))[0].name;
}
