import type { DeviceRepository } from '../inventory/devices.js';
import type { ManifestService } from './manifests.js';
import type { TargetService } from './targets.js';

/**
 * Which artifacts a device may fetch: the model and golden set of its pending target (the one
 * the cloud stores for it) and of the model it currently runs. Nothing else, whoever asks.
 */
export function createArtifactAccess(deps: {
  targets: Pick<TargetService, 'current'>;
  devices: Pick<DeviceRepository, 'find'>;
  manifests: Pick<ManifestService, 'find'>;
}): (deviceId: string, sha256: string) => Promise<boolean> {
  return async (deviceId, sha256) => {
    const device = await deps.devices.find(deviceId);
    if (!device || device.revoked) return false;
    const allowed = new Set<string>();
    const pending = (await deps.targets.current(deviceId))?.model?.manifest;
    if (pending) {
      allowed.add(pending.sha256);
      if (pending.golden) allowed.add(pending.golden.sha256);
    }
    const running = device.activeModelId
      ? (await deps.manifests.find(device.activeModelId))?.manifest
      : undefined;
    if (running && running.sha256 === device.activeSha256) {
      allowed.add(running.sha256);
      if (running.golden) allowed.add(running.golden.sha256);
    }
    return allowed.has(sha256);
  };
}
