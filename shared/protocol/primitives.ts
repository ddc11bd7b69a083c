import { z } from 'zod';

/** Protocol version carried by every payload; a receiver refuses versions it does not know. */
export const PROTOCOL_VERSION = 1;

// Building blocks the message schemas share; the protocol's index exports only the version and
// the execution providers from here.
export const v = z.literal(PROTOCOL_VERSION);

export const sha256 = z.string().regex(/^[0-9a-f]{64}$/, 'expected a lowercase hex SHA-256');
export const deviceId = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/);
export const finite = z.number().finite();
export const nonNegative = finite.nonnegative();
export const isoTime = z.string().datetime({ offset: true });
export const errorInfo = z.object({ code: z.string().max(64), message: z.string().max(2000) });

export const executionProviderSchema = z.enum(['cpu', 'cuda', 'tensorrt', 'coreml', 'dml', 'webgpu']);
export type ExecutionProvider = z.infer<typeof executionProviderSchema>;
