import type { z } from 'zod';
import { FleetError } from '../errors/index.js';
import { PROTOCOL_VERSION } from './primitives.js';

/** Largest JSON control message accepted (blocks travel in binary frames). */
export const MAX_JSON_PAYLOAD_BYTES = 256 * 1024;

export function encodeJson(message: unknown): Buffer {
  return Buffer.from(JSON.stringify(message));
}

/**
 * Parses and validates one MQTT JSON payload. Every failure is a coded FleetError
 * (MSG_TOO_LARGE, MSG_NOT_JSON, MSG_VERSION, MSG_SCHEMA) that the caller logs and drops.
 */
export function decodeJson<T extends z.ZodType>(
  schema: T,
  payload: Uint8Array,
  maxBytes = MAX_JSON_PAYLOAD_BYTES,
): z.infer<T> {
  if (payload.length > maxBytes) {
    throw new FleetError('MSG_TOO_LARGE', `payload of ${payload.length} bytes exceeds ${maxBytes}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString('utf8'));
  } catch (error) {
    throw new FleetError('MSG_NOT_JSON', `payload is not JSON: ${(error as Error).message}`);
  }
  if (typeof value === 'object' && value !== null && 'v' in value && value.v !== PROTOCOL_VERSION) {
    throw new FleetError(
      'MSG_VERSION',
      `protocol version ${String(value.v)} is not supported (expected ${PROTOCOL_VERSION})`,
    );
  }
  const result = schema.safeParse(value);
  if (!result.success) {
    const issue = result.error.issues[0];
    throw new FleetError(
      'MSG_SCHEMA',
      `invalid message at ${issue.path.join('.') || '(root)'}: ${issue.message}`,
      {
        issues: result.error.issues.slice(0, 5).map((i) => ({ path: i.path.join('.'), message: i.message })),
      },
    );
  }
  return result.data;
}
