import { FleetError } from '../errors/index.js';
import type { Manifest } from '../protocol/delivery.js';

/**
 * Expiry without trusting the device clock alone (Pis boot at 1970, some drift to the future).
 * The reference time is the latest cloud-signed `issuedAt` the device has seen (this manifest's
 * included). The device clock may push it forward, but only by at most `clockTrustWindowMs`
 * beyond that signed time: a clock stuck in the past is ignored, and a clock years in the
 * future cannot expire every manifest. A manifest is expired when
 * `expiresAt + clockSkewMs < reference`.
 */
export interface FreshnessOptions {
  /** Latest signed issuedAt seen before this manifest, ms since epoch; default 0 (none). */
  latestSignedTimeMs?: number;
  /** Device clock, ms since epoch; default Date.now(). */
  deviceNowMs?: number;
  /** Tolerance for expiry, ms; default 300 000 (5 min). */
  clockSkewMs?: number;
  /** How far the device clock may advance past signed time, ms; default 86 400 000 (24 h). */
  clockTrustWindowMs?: number;
}

export const DEFAULT_FRESHNESS = { clockSkewMs: 300_000, clockTrustWindowMs: 86_400_000 };

/** Returns the new latest signed time (to persist); throws MANIFEST_EXPIRED. */
export function checkManifestFreshness(manifest: Manifest, options: FreshnessOptions = {}): number {
  const skew = options.clockSkewMs ?? DEFAULT_FRESHNESS.clockSkewMs;
  const window = options.clockTrustWindowMs ?? DEFAULT_FRESHNESS.clockTrustWindowMs;
  const issued = Date.parse(manifest.issuedAt);
  const signed = Math.max(options.latestSignedTimeMs ?? 0, issued);
  const device = options.deviceNowMs ?? Date.now();
  const reference = device > signed ? Math.min(device, signed + window) : signed;
  if (manifest.expiresAt !== null) {
    const expires = Date.parse(manifest.expiresAt);
    if (expires < issued) {
      throw new FleetError('MANIFEST_EXPIRED', 'manifest expires before it was issued', {
        issuedAt: manifest.issuedAt,
        expiresAt: manifest.expiresAt,
      });
    }
    if (expires + skew < reference) {
      throw new FleetError('MANIFEST_EXPIRED', `manifest expired at ${manifest.expiresAt}`, {
        expiresAt: manifest.expiresAt,
        referenceTime: new Date(reference).toISOString(),
        deviceTime: new Date(device).toISOString(),
      });
    }
  }
  return signed;
}
