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
}

export interface CompressionPlan {
  variants: PlannedVariant[];
  /** Student template (mlp@<parameters> unless the user chose one). */
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
  const byBytes = Math.floor(profile.maxModelBytes / 4);
  const parameters = Math.max(1000, Math.min(Math.floor(input.teacherParameters / 4), byBytes));
  return {
    variants,
    student: input.student ?? `mlp@${parameters}`,
    latencyObjectiveMs: input.latencyObjectiveMs ?? profile.latencyObjectiveMs,
  };
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
