import { FleetError } from '../errors/index.js';
import type { TargetState } from '../protocol/delivery.js';
import { type FleetKeyPair, signValue, verifyValue } from './sign.js';

/**
 * Target states are signed as a whole (device, epoch, sequence, rollback flag, model), so a
 * device can tell the cloud's targets from anything else published on its target topic.
 * Offline signing keeps the fleet key off the cloud: the cloud then signs targets with an
 * online target key that the fleet key certified once (`delegation`); the models themselves
 * still need the fleet key's own signature.
 */
const TARGET_DOMAIN = 'fleetml-target-v1';
const DELEGATION_DOMAIN = 'fleetml-target-key-v1';

type Unsigned = Omit<TargetState, 'signature'>;

function unsigned(target: TargetState): Unsigned {
  const { signature: _ignored, ...rest } = target;
  return rest;
}

export function signTarget(target: Unsigned, keys: FleetKeyPair): TargetState {
  return { ...target, signature: signValue(TARGET_DOMAIN, unsigned(target as TargetState), keys) };
}

/** The fleet key's certificate for an online target key (offline signing). */
export function signTargetKeyDelegation(targetPublicKey: string, fleetKeys: FleetKeyPair): string {
  return signValue(DELEGATION_DOMAIN, { targetPublicKey }, fleetKeys);
}

export function verifyTargetKeyDelegation(
  targetPublicKey: string,
  delegation: string,
  fleetPublicKey: string,
): void {
  verifyValue(
    DELEGATION_DOMAIN,
    { targetPublicKey },
    delegation,
    fleetPublicKey,
    'TARGET_SIGNATURE',
    'target key',
  );
}

/**
 * Throws TARGET_SIGNATURE unless the target is signed by the pinned fleet key, or by a target
 * key that the fleet key delegated, and names `deviceId`.
 */
export function verifyTarget(target: TargetState, fleetPublicKey: string, deviceId: string): void {
  if (target.deviceId !== deviceId) {
    throw new FleetError(
      'TARGET_SIGNATURE',
      `target state is for device ${target.deviceId}, not ${deviceId}`,
      {
        reason: 'other-device',
      },
    );
  }
  let signer = fleetPublicKey;
  if (target.signer) {
    verifyTargetKeyDelegation(target.signer.publicKey, target.signer.delegation, fleetPublicKey);
    signer = target.signer.publicKey;
  }
  verifyValue(TARGET_DOMAIN, unsigned(target), target.signature, signer, 'TARGET_SIGNATURE', 'target state');
}
