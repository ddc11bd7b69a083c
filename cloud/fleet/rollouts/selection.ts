import { FleetError } from '../../../shared/errors/index.js';
import type { Device, DeviceRepository } from '../inventory/devices.js';
import type { Selector } from './types.js';

/**
 * The devices a selector names (explicit ids, a tag, a profile), online ones first so the canary
 * can answer. Named devices must exist and not be revoked; tags and profiles skip revoked ones.
 */
export async function resolveDevices(
  devices: Pick<DeviceRepository, 'list'>,
  selector: Selector,
): Promise<Device[]> {
  const all = new Map((await devices.list()).map((d) => [d.id, d]));
  const chosen = new Map<string, Device>();
  for (const id of selector.devices ?? []) {
    const device = all.get(id);
    if (!device) throw new FleetError('NOT_FOUND', `no device ${id}`, { deviceId: id });
    if (device.revoked) throw new FleetError('DEVICE_REVOKED', `device ${device.id} is revoked`);
    chosen.set(device.id, device);
  }
  for (const d of all.values()) {
    if (d.revoked) continue;
    if (
      (selector.tag && d.tags.includes(selector.tag)) ||
      (selector.profile && d.profile === selector.profile)
    )
      chosen.set(d.id, d);
  }
  return [...chosen.values()].sort((a, b) => Number(b.online) - Number(a.online));
}
