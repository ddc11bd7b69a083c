import { z } from 'zod';
import { errorInfo, sha256, v } from './primitives.js';

/** Block size of a request that names none, bytes. */
export const DEFAULT_BLOCK_SIZE = 64 * 1024;
/** Max block indices in one request: bounds the reply burst a device can ask for. */
export const MAX_BLOCKS_PER_REQUEST = 256;

export const transferRequestSchema = z.object({
  v,
  sha256,
  blocks: z.array(z.number().int().nonnegative()).min(1).max(MAX_BLOCKS_PER_REQUEST),
  /** Block size the agent splits the artifact by (the manifest's, capped under its broker's limit); default 64 KiB. */
  blockSize: z
    .number()
    .int()
    .min(256)
    .max(1 << 20)
    .optional(),
});
export type TransferRequest = z.infer<typeof transferRequestSchema>;

export const blockHeaderSchema = z.object({
  v,
  sha256,
  index: z.number().int().nonnegative(),
  total: z.number().int().positive(),
  blockSha256: sha256.optional(),
  error: errorInfo.optional(),
});
export type BlockHeader = z.infer<typeof blockHeaderSchema>;
