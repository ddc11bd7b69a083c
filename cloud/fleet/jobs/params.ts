import { z } from 'zod';
import { CHOOSABLE_VARIANTS } from '../../compression/index.js';

export const compressJobSchema = z.object({
  model: z.string().min(1).max(128),
  profile: z.string().min(1).max(64),
  /** 'mnist' or the sha256 of an uploaded .npy dataset. */
  data: z.string().min(1).max(64),
  labels: z
    .string()
    .regex(/^[0-9a-f]{64}$/)
    .optional(),
  maxAccuracyDrop: z.number().min(0).max(100).optional(),
  latencyMs: z.number().positive().optional(),
  student: z.string().min(1).max(64).optional(),
  epochs: z.number().int().min(1).max(200).optional(),
  /** Variants to build among the profile's; default all it plans. */
  variants: z.array(z.enum(CHOOSABLE_VARIANTS)).min(1).max(4).optional(),
});
export type CompressJobParams = z.infer<typeof compressJobSchema>;
