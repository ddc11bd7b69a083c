import { z } from 'zod';
import { encodeJson } from './codec.js';
import {
  deviceId,
  errorInfo,
  executionProviderSchema,
  isoTime,
  nonNegative,
  PROTOCOL_VERSION,
  v,
} from './primitives.js';

/** What the agent reads of its hardware at enrollment. */
export const hardwareFactsSchema = z.object({
  hostname: z.string().max(255),
  arch: z.string().max(32),
  platform: z.string().max(32),
  cpuModel: z.string().max(255),
  cpuCores: z.number().int().positive(),
  memoryBytes: nonNegative,
  gpu: z.string().max(255).nullable(),
  executionProviders: z.array(executionProviderSchema).max(8),
  onnxruntimeVersion: z.string().max(32),
  nodeVersion: z.string().max(32),
  cpuFlags: z.array(z.string().max(32)).max(512).optional(),
});
export type HardwareFacts = z.infer<typeof hardwareFactsSchema>;

export const enrollRequestSchema = z.object({
  v,
  requestId: deviceId,
  token: z.string().min(8).max(256),
  agentVersion: z.string().max(32),
  hardware: hardwareFactsSchema,
});
export type EnrollRequest = z.infer<typeof enrollRequestSchema>;

/**
 * `requestId` names the request answered (clouds before it did not send it): agents enrolling
 * with one token share a reply topic, and each takes only the reply to its own request.
 */
export const enrollReplySchema = z.discriminatedUnion('ok', [
  z.object({
    v,
    ok: z.literal(true),
    requestId: deviceId.optional(),
    deviceId,
    secret: z.string().min(16).max(256),
    profile: z.string().max(64).nullable(),
    fleetPublicKey: z.string().max(4096).optional(),
  }),
  z.object({ v, ok: z.literal(false), requestId: deviceId.optional(), error: errorInfo }),
]);
export type EnrollReply = z.infer<typeof enrollReplySchema>;

/** A device's retained presence on its status topic (the offline one is also its last will). */
export const statusSchema = z.object({ v, online: z.boolean(), at: isoTime });
export type StatusMessage = z.infer<typeof statusSchema>;

export function encodeStatus(online: boolean): Buffer {
  const message: StatusMessage = { v: PROTOCOL_VERSION, online, at: new Date().toISOString() };
  return encodeJson(message);
}
