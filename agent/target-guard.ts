import { FleetError } from '../shared/errors/index.js';
import { verifyTarget } from '../shared/manifest/index.js';
import type { Manifest, TargetState } from '../shared/protocol/index.js';
import type { AgentState } from './store/agent-state.js';

/**
 * What a device accepts on its target topic. Only the cloud's signed targets count (fleet key,
 * or a target key the fleet key delegated), and only newer ones: (epoch, sequence) grows, so a
 * replayed or reordered target changes nothing, and an attacker's huge sequence number is
 * worthless without the key. A newer epoch (a restarted cloud, a restored database) restarts the
 * sequence; it too needs the key.
 */
export type TargetVerdict = 'newer' | 'stale';

/** Throws TARGET_SIGNATURE for anything but a target signed for this device. */
export function checkTargetSignature(
  target: TargetState,
  fleetPublicKey: string | null,
  deviceId: string,
): void {
  if (!fleetPublicKey) {
    throw new FleetError(
      'TARGET_SIGNATURE',
      'no fleet key is pinned (give --fleet-key): every target is refused',
      {
        reason: 'no-key',
      },
    );
  }
  verifyTarget(target, fleetPublicKey, deviceId);
}

/** Is `target` newer than (epoch, version)? */
export function isNewer(target: TargetState, epoch: number, version: number | null): boolean {
  const e = target.epoch ?? 0;
  if (e !== epoch) return e > epoch;
  return version === null || target.version > version;
}

/** A newer epoch that re-announces the target already handled: adopt it, do nothing else. */
export function isReannounced(target: TargetState, state: AgentState): boolean {
  return (
    (target.epoch ?? 0) > state.targetEpoch &&
    target.version === state.appliedTargetVersion &&
    (target.model?.manifest.sha256 ?? null) === state.handledSha256
  );
}

/**
 * Monotonic releases per lineage (the model name): a lower release than one installed before
 * needs the cloud's signed `rollback`. A manifest without a release number is refused.
 */
export function checkRelease(
  manifest: Manifest,
  target: TargetState,
  releases: Record<string, number>,
): void {
  if (manifest.release === undefined) {
    throw new FleetError('MANIFEST_INVALID', `manifest of ${manifest.modelId} carries no release number`);
  }
  const highest = releases[manifest.name];
  if (highest !== undefined && manifest.release < highest && target.rollback !== true) {
    throw new FleetError(
      'MANIFEST_ROLLBACK',
      `release ${manifest.release} of ${manifest.name} is lower than the installed ${highest} and the target is no signed rollback`,
      { lineage: manifest.name, release: manifest.release, installed: highest },
    );
  }
}
