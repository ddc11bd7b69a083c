import { describe, expect, it } from 'vitest';
import {
  canonicalJson,
  checkManifestFreshness,
  generateFleetKeyPair,
  keyIdOf,
  signManifest,
  verifyManifest,
} from '../../../../shared/manifest/index.js';
import type { Manifest } from '../../../../shared/protocol/index.js';

const manifest: Manifest = {
  modelId: 'm',
  name: 'model',
  variant: 'int8',
  version: 3,
  sha256: 'a'.repeat(64),
  size: 1000,
  blockSize: 65536,
  profile: 'rpi5',
  inputs: [{ name: 'x', shape: [1, 'n'], type: 'float32' }],
  outputs: [{ name: 'y', shape: [1, 10], type: 'float32' }],
  golden: null,
  issuedAt: '2026-01-01T00:00:00.000Z',
  expiresAt: '2026-01-02T00:00:00.000Z',
};

const codeOf = (fn: () => unknown) => {
  try {
    fn();
  } catch (error) {
    return {
      code: (error as { code: string }).code,
      reason: (error as { details?: { reason?: string } }).details?.reason,
    };
  }
  return null;
};

describe('canonical JSON', () => {
  it('sorts keys at every level and drops undefined', () => {
    expect(canonicalJson({ b: 1, a: { d: [1, { z: 1, y: 2 }], c: undefined } })).toBe(
      '{"a":{"d":[1,{"y":2,"z":1}]},"b":1}',
    );
  });
  it('refuses non-finite numbers', () => {
    expect(() => canonicalJson({ x: Number.NaN })).toThrow();
  });
});

describe('manifest signatures', () => {
  const keys = generateFleetKeyPair();

  it('verifies a signature over a re-ordered copy', () => {
    const signature = signManifest(manifest, keys);
    expect(signature.startsWith(`ed25519:${keyIdOf(keys.publicKey)}:`)).toBe(true);
    const reordered = JSON.parse(JSON.stringify(Object.fromEntries(Object.entries(manifest).reverse())));
    expect(() => verifyManifest(reordered, signature, keys.publicKey)).not.toThrow();
  });

  it('rejects tampering, a wrong key, a missing and a malformed signature', () => {
    const signature = signManifest(manifest, keys);
    expect(codeOf(() => verifyManifest({ ...manifest, version: 4 }, signature, keys.publicKey))).toEqual({
      code: 'MANIFEST_SIGNATURE',
      reason: 'bad-signature',
    });
    const other = generateFleetKeyPair();
    expect(
      codeOf(() => verifyManifest(manifest, signManifest(manifest, other), keys.publicKey))?.reason,
    ).toBe('wrong-key');
    // A forger who copies the pinned key id still fails verification.
    const forged = signManifest(manifest, other).replace(keyIdOf(other.publicKey), keyIdOf(keys.publicKey));
    expect(codeOf(() => verifyManifest(manifest, forged, keys.publicKey))?.reason).toBe('bad-signature');
    expect(codeOf(() => verifyManifest(manifest, null, keys.publicKey))?.reason).toBe('missing');
    expect(codeOf(() => verifyManifest(manifest, 'rsa:1:2', keys.publicKey))?.reason).toBe('malformed');
  });
});

describe('manifest freshness', () => {
  const issued = Date.parse(manifest.issuedAt);
  const hour = 3_600_000;

  it('accepts a fresh manifest even when the device clock is at 1970', () => {
    expect(checkManifestFreshness(manifest, { deviceNowMs: 0 })).toBe(issued);
  });

  it('expires against the latest signed time, not the device clock', () => {
    const later = issued + 48 * hour;
    expect(
      codeOf(() => checkManifestFreshness(manifest, { deviceNowMs: 0, latestSignedTimeMs: later }))?.code,
    ).toBe('MANIFEST_EXPIRED');
  });

  it('lets the device clock advance signed time only within the trust window', () => {
    // 23 h after issue: still inside the 24 h validity.
    expect(() => checkManifestFreshness(manifest, { deviceNowMs: issued + 23 * hour })).not.toThrow();
    // A one-hour manifest two hours later by the device clock: the clock counts (within 24 h); expired.
    const short = { ...manifest, expiresAt: new Date(issued + hour).toISOString() };
    expect(codeOf(() => checkManifestFreshness(short, { deviceNowMs: issued + 2 * hour }))?.code).toBe(
      'MANIFEST_EXPIRED',
    );
    // A clock 30 years ahead counts only up to signed time + window: not everything expires.
    expect(() =>
      checkManifestFreshness(manifest, {
        deviceNowMs: issued + 30 * 365 * 24 * hour,
        clockTrustWindowMs: hour,
      }),
    ).not.toThrow();
  });

  it('rejects a manifest that expires before it was issued', () => {
    const bad = { ...manifest, expiresAt: '2025-12-31T00:00:00.000Z' };
    expect(codeOf(() => checkManifestFreshness(bad))?.code).toBe('MANIFEST_EXPIRED');
  });
});
