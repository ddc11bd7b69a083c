import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  sign,
  verify,
} from 'node:crypto';
import { FleetError } from '../errors/index.js';
import type { Manifest } from '../protocol/delivery.js';
import { canonicalJson } from './canonical.js';

/**
 * ed25519 manifest signatures. A signature string reads `ed25519:<keyId>:<base64 signature>`,
 * where keyId is the first 16 hex digits of SHA-256 over the raw 32-byte public key: a device
 * can tell "signed by another key" from "tampered" without trying keys.
 * Keys travel as base64 of the raw 32-byte public key / PKCS#8 DER private key.
 */
export interface FleetKeyPair {
  /** base64 of the raw 32-byte ed25519 public key. */
  publicKey: string;
  /** base64 of the PKCS#8 DER private key. Keep it out of logs and off devices. */
  privateKey: string;
}

const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

export function generateFleetKeyPair(): FleetKeyPair {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const spki = publicKey.export({ format: 'der', type: 'spki' });
  return {
    publicKey: spki.subarray(SPKI_ED25519_PREFIX.length).toString('base64'),
    privateKey: privateKey.export({ format: 'der', type: 'pkcs8' }).toString('base64'),
  };
}

export function keyIdOf(publicKey: string): string {
  return createHash('sha256').update(rawPublicKey(publicKey)).digest('hex').slice(0, 16);
}

function rawPublicKey(publicKey: string): Buffer {
  const raw = Buffer.from(publicKey, 'base64');
  if (raw.length !== 32)
    throw new FleetError('MANIFEST_SIGNATURE', 'fleet public key is not 32 raw ed25519 bytes');
  return raw;
}

/**
 * Fingerprint of a fleet key as carried out of band (inside enrollment tokens): base64url of the
 * full SHA-256 over the raw 32-byte key, 43 characters.
 */
export function fleetKeyFingerprint(publicKey: string): string {
  return createHash('sha256').update(rawPublicKey(publicKey)).digest('base64url');
}

/** Bytes that get signed: a domain tag (so no other fleetml signature can be replayed as one) + canonical JSON. */
export function manifestSigningBytes(manifest: Manifest): Buffer {
  return signingBytes('fleetml-manifest-v1', manifest);
}

function signingBytes(domain: string, value: unknown): Buffer {
  return Buffer.from(`${domain}\n${canonicalJson(value)}`);
}

/** Signs `value` under a domain tag; `ed25519:<keyId>:<base64>`. */
export function signValue(domain: string, value: unknown, keys: FleetKeyPair): string {
  const key = createPrivateKey({ key: Buffer.from(keys.privateKey, 'base64'), format: 'der', type: 'pkcs8' });
  const signature = sign(null, signingBytes(domain, value), key);
  return `ed25519:${keyIdOf(keys.publicKey)}:${signature.toString('base64')}`;
}

export function signManifest(manifest: Manifest, keys: FleetKeyPair): string {
  return signValue('fleetml-manifest-v1', manifest, keys);
}

/** Throws MANIFEST_SIGNATURE (with `reason` in details) unless `signature` is the pinned key's over `manifest`. */
export function verifyManifest(manifest: Manifest, signature: string | null, pinnedPublicKey: string): void {
  verifyValue('fleetml-manifest-v1', manifest, signature, pinnedPublicKey, 'MANIFEST_SIGNATURE', 'manifest');
}

/** Throws `code` (with `reason` in details) unless `signature` is `publicKey`'s over `value` under `domain`. */
export function verifyValue(
  domain: string,
  value: unknown,
  signature: string | null | undefined,
  publicKey: string,
  code: 'MANIFEST_SIGNATURE' | 'TARGET_SIGNATURE',
  what: string,
): void {
  if (!signature) {
    throw new FleetError(code, `${what} is not signed`, { reason: 'missing' });
  }
  const parts = signature.split(':');
  if (parts.length !== 3 || parts[0] !== 'ed25519') {
    throw new FleetError(code, 'signature is not in ed25519:<keyId>:<base64> form', {
      reason: 'malformed',
    });
  }
  const pinnedId = keyIdOf(publicKey);
  if (parts[1] !== pinnedId) {
    throw new FleetError(code, `${what} is signed by key ${parts[1]}, not the pinned fleet key ${pinnedId}`, {
      reason: 'wrong-key',
      keyId: parts[1],
      pinnedKeyId: pinnedId,
    });
  }
  const key = createPublicKey({
    key: Buffer.concat([SPKI_ED25519_PREFIX, rawPublicKey(publicKey)]),
    format: 'der',
    type: 'spki',
  });
  let ok = false;
  try {
    ok = verify(null, signingBytes(domain, value), key, Buffer.from(parts[2], 'base64'));
  } catch {
    ok = false;
  }
  if (!ok) throw new FleetError(code, `${what} signature does not verify`, { reason: 'bad-signature' });
}
