import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** A random secret in URL-safe base64 (`bytes` of entropy; default 32). */
export function newSecret(bytes = 32): string {
  return randomBytes(bytes).toString('base64url');
}

/**
 * Secrets and tokens are stored as SHA-256 hashes: they are high-entropy random values, so a
 * slow password hash adds nothing, and a fast one keeps MQTT authentication cheap.
 */
export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

export function secretMatches(secret: string, expectedHash: string): boolean {
  const actual = Buffer.from(hashSecret(secret), 'hex');
  const expected = Buffer.from(expectedHash, 'hex');
  return actual.length === expected.length && timingSafeEqual(actual, expected);
}
