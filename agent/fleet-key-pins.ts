import { FleetError } from '../shared/errors/index.js';
import { fleetKeyFingerprint } from '../shared/manifest/index.js';
import type { DeviceIdentity } from './enroll.js';

// Which fleet key an agent trusts: pinned out of band (the token's fingerprint or --fleet-key),
// and checked against the key an enrollment reply offers.

/** Fingerprint length (base64url of SHA-256) and raw-key length (base64 of 32 bytes). */
const FINGERPRINT = /^[A-Za-z0-9_-]{43}$/;
const RAW_KEY = /^[A-Za-z0-9+/]{43}=$/;

/**
 * The fleet key's fingerprint carried by an enrollment token (`enr_<secret>.<fingerprint>`, as
 * `fleetml tokens enroll` prints them); undefined for a token without one.
 */
export function tokenFingerprint(token: string): string | undefined {
  const dot = token.lastIndexOf('.');
  const tail = dot >= 0 ? token.slice(dot + 1) : '';
  return FINGERPRINT.test(tail) ? tail : undefined;
}

type Pin = { kind: 'key'; key: string } | { kind: 'fingerprint'; fingerprint: string };

/** What pins the fleet key out of band; CONFIG_INVALID when nothing does (never trust the reply alone). */
export function fleetKeyPins(token: string, fleetKey = ''): Pin[] {
  const pins: Pin[] = [];
  const fromToken = tokenFingerprint(token);
  if (fromToken) pins.push({ kind: 'fingerprint', fingerprint: fromToken });
  if (fleetKey) {
    if (RAW_KEY.test(fleetKey)) pins.push({ kind: 'key', key: fleetKey });
    else if (FINGERPRINT.test(fleetKey)) pins.push({ kind: 'fingerprint', fingerprint: fleetKey });
    else
      throw new FleetError(
        'CONFIG_INVALID',
        '--fleet-key is neither a base64 ed25519 key nor its fingerprint',
      );
  }
  if (pins.length === 0) {
    throw new FleetError(
      'CONFIG_INVALID',
      'no fleet key is pinned: use an enrollment token from `fleetml tokens enroll` (it carries the key fingerprint) or give --fleet-key',
    );
  }
  return pins;
}

/** The key the cloud offered, if every pin matches it; ENROLL_KEY otherwise (a rogue or intercepted reply). */
export function checkOfferedKey(offered: string | undefined, pins: Pin[]): string {
  if (!offered)
    throw new FleetError('ENROLL_KEY', 'the enrollment reply carries no fleet key: refusing to enroll');
  let fingerprint: string;
  try {
    fingerprint = fleetKeyFingerprint(offered);
  } catch {
    throw new FleetError('ENROLL_KEY', 'the enrollment reply carries a malformed fleet key');
  }
  for (const pin of pins) {
    const ok = pin.kind === 'key' ? pin.key === offered : pin.fingerprint === fingerprint;
    if (!ok) {
      throw new FleetError(
        'ENROLL_KEY',
        'the enrollment reply carries another fleet key than the one pinned: refusing to enroll',
        {
          offeredFingerprint: fingerprint,
        },
      );
    }
  }
  return offered;
}

/**
 * An identity enrolled by an older agent may hold no key: --fleet-key (the full key) pins it now.
 * A key that is already pinned must match whatever --fleet-key says.
 */
export function pinFleetKey(identity: DeviceIdentity, fleetKey: string): DeviceIdentity {
  if (!fleetKey) return identity;
  const pins = fleetKeyPins('', fleetKey);
  if (identity.fleetPublicKey) {
    checkOfferedKey(identity.fleetPublicKey, pins);
    return identity;
  }
  const pin = pins[0];
  if (pin.kind !== 'key') {
    throw new FleetError(
      'CONFIG_INVALID',
      'this identity holds no fleet key: give the full key with --fleet-key, not its fingerprint',
    );
  }
  return { ...identity, fleetPublicKey: pin.key };
}
