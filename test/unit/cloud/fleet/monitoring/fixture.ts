import { hashSecret } from '../../../../../cloud/fleet/identity/secrets.js';
import { SqliteTelemetryWriter } from '../../../../../cloud/fleet/ingest/sqlite-records.js';
import { TelemetryRepository } from '../../../../../cloud/fleet/ingest/telemetry.js';
import { DeviceRepository } from '../../../../../cloud/fleet/inventory/devices.js';
import { FleetMonitor } from '../../../../../cloud/fleet/monitoring/monitor.js';
import type { MonitoringOptions } from '../../../../../cloud/fleet/monitoring/options.js';
import { type Db, openDatabase } from '../../../../../cloud/fleet/store/db.js';
import { type FleetStore, openFleetStore } from '../../../../../cloud/fleet/store/kysely.js';
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
  fleet: FleetStore;
  devices: DeviceRepository;
  telemetry: TelemetryRepository;
  /** Raw records straight into the SQLite file. */
  records: SqliteTelemetryWriter;
  monitor: FleetMonitor;
  addDevice(id: string, profile?: string | null, online?: boolean): Promise<void>;
}

/** An in-memory database with the monitoring stack, as startCloud wires it. */
export async function monitorFixture(options: Partial<MonitoringOptions> = {}): Promise<MonitorFixture> {
  const db = openDatabase({ path: ':memory:' });
  const fleet = await openFleetStore({ sqlite: db });
  const devices = new DeviceRepository(fleet);
  const telemetry = new TelemetryRepository(fleet);
  const monitor = new FleetMonitor({
    db,
    fleet,
    devices,
    logger: createLogger({ name: 'test', level: 'silent' }),
    options,
  });
  return {
    db,
    fleet,
    devices,
    telemetry,
    records: new SqliteTelemetryWriter(db),
    monitor,
    async addDevice(id, profile = 'rpi4', online = true) {
      await devices.create({ id, name: id, secretHash: hashSecret('s'), profile, hardware });
      await devices.setOnline(id, online, new Date().toISOString());
    },
  };
}
