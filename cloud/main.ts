import { randomUUID } from 'node:crypto';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../shared/logger.js';
import { CLOUD_SUBSCRIPTIONS } from '../shared/protocol/index.js';
import { buildServices } from './build-services.js';
import type { CloudHandle, CloudOptions } from './cloud-options.js';
import { keepTargetsPublished, routeDeviceTraffic } from './device-traffic.js';
import { type FleetBroker, openFleetBroker } from './fleet/broker/fleet-broker.js';
import { buildConsoleServer } from './fleet/console/server.js';
import type { TokenRepository } from './fleet/identity/tokens.js';
import { DeviceRepository } from './fleet/inventory/devices.js';
import { FleetEvents } from './fleet/inventory/events.js';
import { openReplicaParts, type ReplicaParts } from './fleet/leader/replica.js';
import { resolveMonitoringOptions } from './fleet/monitoring/options.js';
import { type Db, openDatabase } from './fleet/store/db.js';
import { openFleetStore } from './fleet/store/kysely.js';
import { openPostgres, type PgPool } from './fleet/store/postgres.js';
import { type CloudMqtt, connectCloudMqtt, subscribeDeviceTraffic } from './fleet/transport/mqtt.js';
import type { CloudServices } from './services.js';

export type { CloudHandle, CloudOptions };

async function loadOrCreateAdminToken(dataDir: string, tokens: TokenRepository): Promise<string> {
  const path = join(dataDir, 'admin-token');
  try {
    const saved = (await readFile(path, 'utf8')).trim();
    if (await tokens.apiTokenRole(saved)) return saved;
  } catch {
    // first start: create it below
  }
  const token = await tokens.createApiToken('admin', 'admin');
  await writeFile(path, `${token}\n`, { mode: 0o600 });
  await chmod(path, 0o600);
  return token;
}

/** Starts the whole controller: database, broker (embedded unless mqttUrl), MQTT client, HTTP. */
export async function startCloud(options: CloudOptions): Promise<CloudHandle> {
  const { logger } = options;
  await mkdir(options.dataDir, { recursive: true, mode: 0o700 });
  const db = openDatabase({ path: join(options.dataDir, 'fleetml.db') });
  // With --database the fleet tables (devices, models, delivery, rollouts, audit…) live in
  // PostgreSQL, shared by every replica; the SQLite file keeps what has not moved yet.
  const pool = options.database ? await openPostgres(options.database) : undefined;
  const fleet = await openFleetStore(pool ? { postgres: pool } : { sqlite: db });
  const devices = new DeviceRepository(fleet);
  const broker = await openFleetBroker({ ...options, devices });
  const mqtt = await connectControllerMqtt(options, broker);
  const events = new FleetEvents();
  const replica = await openReplica(options, { pool, db, devices, events });
  await broker.attach?.(mqtt);
  // The monitor reports batches the router refused; the router needs the services first.
  let router: ReturnType<typeof routeDeviceTraffic> | undefined;
  const rejectedBatches = () => router?.stats.rejectedTelemetry ?? 0;
  const services = await buildServices({
    options,
    db,
    fleet,
    devices,
    events,
    broker,
    mqtt,
    rejectedBatches,
    replica,
  });
  await services.jobs.open();
  router = routeDeviceTraffic(services, broker, mqtt, logger, replica);
  await subscribeDeviceTraffic(mqtt, CLOUD_SUBSCRIPTIONS);
  await keepTargetsPublished(services.targets, mqtt, logger);

  await followLeadership(replica, services, logger);
  const adminToken = await loadOrCreateAdminToken(options.dataDir, services.tokens);
  const app = await buildConsoleServer({ services, logger, uploadDir: join(options.dataDir, 'uploads') });
  const address = await app.listen({ port: options.httpPort ?? 8080, host: options.httpHost ?? '127.0.0.1' });
  const httpUrl = address.replace('127.0.0.1', 'localhost');
  logger.info({ httpUrl, mqttUrl: broker.url, dataDir: options.dataDir }, 'cloud started');

  return {
    httpUrl,
    mqttUrl: broker.url,
    adminToken,
    services,
    routerStats: router.stats,
    isLeader: () => replica.leadership.isLeader,
    httpRoutes: app.fleetmlRoutes,
    disconnectDevice: services.disconnectDevice,
    stop: () => stopCloud({ services, app, replica, mqtt, broker, db, pool, logger }),
  };
}

/** Stops in order: jobs and rollouts, HTTP, the monitor's queue, replica duties, MQTT, broker, database. */
async function stopCloud(parts: {
  services: CloudServices;
  app: { close(): Promise<unknown> };
  replica: ReplicaParts;
  mqtt: CloudMqtt;
  broker: FleetBroker;
  db: Db;
  pool: PgPool | undefined;
  logger: Logger;
}): Promise<void> {
  const { services, app, replica, mqtt, broker, db, pool, logger } = parts;
  await services.jobs.stop();
  await services.rollouts.stop();
  await app.close();
  // Commit (and acknowledge) what is queued while the MQTT client can still publish.
  await services.monitor.stop();
  await replica.close();
  await mqtt.close();
  await broker.close();
  await pool?.end();
  db.close();
  logger.info('cloud stopped');
}

/** The controller's own MQTT client (in a shared subscription group behind an external broker). */
function connectControllerMqtt(options: CloudOptions, broker: FleetBroker): Promise<CloudMqtt> {
  return connectCloudMqtt({
    url: broker.url,
    logger: options.logger,
    username: broker.username,
    password: broker.password,
    caPem: broker.tls?.caPem,
    // With dynamic security every other client is bound to its own client id; the cloud's is
    // random, so nobody can guess it either.
    clientId: options.mosquittoDynsec ? `fleetml-cloud-${randomUUID()}` : undefined,
    sharedGroup:
      !options.mqttUrl || options.mqttSharedGroup === null
        ? undefined
        : (options.mqttSharedGroup ?? 'fleetml'),
  });
}

/**
 * Rollouts continue from their stored state after a restart. Fleet-wide duties run on the
 * leader only (always this process with the embedded broker; see cloud/fleet/leader/).
 */
async function followLeadership(
  replica: ReplicaParts,
  services: CloudServices,
  logger: Logger,
): Promise<void> {
  replica.leadership.onChange((leader) => {
    logger.info({ replica: replica.leadership.replicaId, leader }, leader ? 'leading' : 'following');
    if (leader) {
      services.rollouts.start();
      services.monitor.start();
      replica.startPgRetention();
    } else {
      void services.rollouts.stop();
      services.monitor.stopSweeps();
      replica.stopPgRetention();
    }
  });
  await replica.leadership.start();
}

/** This process's part in a group of replicas (alone with the embedded broker). */
function openReplica(
  options: CloudOptions,
  parts: { pool: PgPool | undefined; db: Db; devices: DeviceRepository; events: FleetEvents },
): Promise<ReplicaParts> {
  return openReplicaParts({
    ...parts,
    database: options.database,
    externalBroker: Boolean(options.mqttUrl),
    monitoring: resolveMonitoringOptions(options.monitoring),
    logger: options.logger,
  });
}
