import { z } from 'zod';
import { executionProviderSchema } from '../../../shared/protocol/index.js';

/** How a kind of device wants its models: what runs well there, and what it must fit in. */
export const deviceProfileSchema = z.object({
  name: z.string().regex(/^[a-z0-9][a-z0-9-]{0,63}$/),
  description: z.string().max(500),
  /** CPU architecture as Node reports it (`process.arch`). */
  arch: z.enum(['arm64', 'x64', 'arm']),
  /** Execution providers in order of preference; the agent uses the first that loads. */
  executionProviders: z.array(executionProviderSchema).min(1),
  /** Precisions worth producing for this device, best first. */
  precisions: z.array(z.enum(['int8', 'fp16', 'fp32', 'int4'])).min(1),
  int8: z.object({
    /** Activation type for static INT8 (S8S8 for TensorRT, U8S8 elsewhere unless measured otherwise). */
    activations: z.enum(['uint8', 'int8']),
    weights: z.literal('int8'),
    perChannel: z.boolean(),
    /** 7-bit weights for x86 without VNNI, where U8S8 can saturate. */
    reduceRange: z.boolean(),
    /** Symmetric activations with zero point 0 (TensorRT requires them); default false. */
    symmetricActivations: z.boolean().default(false),
    /**
     * Where per-op float/int8 decisions come from: 'measured' on the build machine (only
     * meaningful when the build machine's kernels are the device's: x86), or 'rules' that fit
     * the device's kernels (ARM, TensorRT), left for devices of the profile to confirm.
     */
    decisions: z.enum(['measured', 'rules']).default('rules'),
  }),
  /** Batch size the device runs; what INT8 is measured against FP32 at; default 1. */
  batch: z.number().int().positive().default(1),
  /** Memory a model may use on the device, in bytes. */
  memoryBudgetBytes: z.number().int().positive(),
  /** Largest model file to ship, in bytes (above it, distill to a student). */
  maxModelBytes: z.number().int().positive(),
  /** Default latency objective for one inference at batch 1, in ms. */
  latencyObjectiveMs: z.number().positive(),
  /** Session options for onnxruntime on the device. */
  session: z.object({
    intraOpThreads: z.number().int().nonnegative(),
    graphOptimizationLevel: z.enum(['basic', 'extended', 'all']),
  }),
  /** Matching rules against enrollment facts: all given ones must match. */
  match: z.object({
    arch: z.string().optional(),
    cpuModelPattern: z.string().optional(),
    cpuFlag: z.string().optional(),
    withoutCpuFlag: z.string().optional(),
    gpuPattern: z.string().optional(),
  }),
  /** Lower runs first when several profiles match. */
  priority: z.number().int(),
});
export type DeviceProfile = z.infer<typeof deviceProfileSchema>;
