import { z } from 'zod';
import { deviceId, isoTime, nonNegative, sha256, v } from './primitives.js';

const tensorSpec = z.object({
  name: z.string().max(256),
  shape: z.array(z.union([z.number().int(), z.string().max(64)])).max(16),
  type: z.string().max(16),
});

/** Concrete dims per input name: every dim a positive integer. */
export const servingShapesSchema = z.record(
  z.string().max(256),
  z
    .array(
      z
        .number()
        .int()
        .positive()
        .max(1 << 20),
    )
    .max(16),
);
export type ServingShapes = z.infer<typeof servingShapesSchema>;

/** Everything the agent needs to fetch, verify and run one model artifact. */
export const manifestSchema = z.object({
  modelId: z.string().max(128),
  name: z.string().max(256),
  variant: z.string().max(64),
  version: z.number().int().nonnegative(),
  sha256,
  size: z.number().int().positive(),
  blockSize: z
    .number()
    .int()
    .min(256)
    .max(1 << 20),
  profile: z.string().max(64).nullable(),
  inputs: z.array(tensorSpec).max(64),
  outputs: z.array(tensorSpec).max(64),
  golden: z
    .object({
      sha256,
      size: z.number().int().positive(),
      /** Largest |expected - actual| allowed per output value. */
      tolerance: nonNegative,
      /** Smallest cosine similarity allowed per output tensor (fits the precision: FP32 > FP16 > INT8). */
      minCosine: z.number().min(-1).max(1).optional(),
    })
    .nullable()
    .optional(),
  /**
   * The concrete shape each input is served at (input name -> dims), for models with symbolic
   * dimensions: the agent benchmarks, probes and describes the model at this shape. Optional
   * (issue 14) so that manifests without it stay valid.
   */
  servingShapes: servingShapesSchema.optional(),
  issuedAt: isoTime,
  expiresAt: isoTime.nullable(),
  /**
   * Release number within the model's lineage (its `name`): grows with every model first
   * released under that name. Agents remember the highest they installed per lineage and refuse
   * a lower one unless the signed target says `rollback`.
   */
  release: z.number().int().positive().optional(),
});
export type Manifest = z.infer<typeof manifestSchema>;

/**
 * The retained target state the cloud publishes for one device; `version` (the sequence) only
 * grows within an `epoch`. The whole state is signed by the fleet key (`signature`), so it is
 * bound to its device, epoch and sequence: a forged or replayed target is refused.
 */
export const targetStateSchema = z.object({
  v,
  deviceId,
  version: z.number().int().nonnegative(),
  model: z.object({ manifest: manifestSchema, signature: z.string().max(512).nullable() }).nullable(),
  issuedAt: isoTime,
  /** The cloud's epoch (ms timestamp, new on every cloud start); a newer epoch restarts the sequence. */
  epoch: z.number().int().nonnegative().optional(),
  /** The cloud deliberately installs a lower release of the model's lineage. */
  rollback: z.boolean().optional(),
  /** Offline signing: an online target key, certified by the fleet key's `delegation` signature. */
  signer: z.object({ publicKey: z.string().max(64), delegation: z.string().max(512) }).optional(),
  /** ed25519 over the canonical JSON of every other field (shared/manifest/target-sign.ts). */
  signature: z.string().max(512).optional(),
});
export type TargetState = z.infer<typeof targetStateSchema>;
