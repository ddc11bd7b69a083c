import { hashSecret } from '../../../../../cloud/fleet/identity/secrets.js';
import { TelemetryRepository } from '../../../../../cloud/fleet/ingest/telemetry.js';
import { DeviceRepository } from '../../../../../cloud/fleet/inventory/devices.js';
import { FleetMonitor } from '../../../../../cloud/fleet/monitoring/monitor.js';
import type { MonitoringOptions } from '../../../../../cloud/fleet/monitoring/options.js';
import { type Db, openDatabase } from '../../../../../cloud/fleet/store/db.js';
import { createLogger } from '../../../../../shared/logger.js';

export const hardware = {
  hostname: 'pi',
  arch: 'arm64',
  platform: 'linux',
  cpuModel: 'Cortex-A72',
  cpuCores: 4,
  memoryBytes: 4e9,
  gpu: null,
  executionProviders: ['cpu' as const],
  onnxruntimeVersion: '1.30.0',
  nodeVersion: process.version,
};

export interface MonitorFixture {
  db: Db;
  devices: DeviceRepository;
  telemetry: TelemetryRepository;
  monitor: FleetMonitor;
  addDevice(id: string, profile?: string | null, online?: boolean): void;
}

/** An in-memory database with the monitoring stack, as startCloud wires it. */
export function monitorFixture(options: Partial<MonitoringOptions> = {}): MonitorFixture {
  const db = openDatabase({ path: ':memory:' });
  const devices = new DeviceRepository(db);
  const telemetry = new TelemetryRepository(db);
  const monitor = new FleetMonitor({
    db,
    telemetry,
    logger: createLogger({ name: 'test', level: 'silent' }),
    options,
  });
  return {
    db,
    devices,
    telemetry,
    monitor,
    addDevice(id, profile = 'rpi4', online = true) {
      devices.create({ id, name: id, secretHash: hashSecret('s'), profile, hardware });
      devices.setOnline(id, online, new Date().toISOString());
    },
  };
}
