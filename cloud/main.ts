import { randomUUID } from 'node:crypto';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../shared/logger.js';
import { fleetKeyFingerprint } from '../shared/manifest/index.js';
import { CLOUD_SUBSCRIPTIONS } from '../shared/protocol/index.js';
import type { CloudHandle, CloudOptions } from './cloud-options.js';
import { ProfileRegistry } from './compression/profiles/registry.js';
import { keepTargetsPublished, routeDeviceTraffic } from './device-traffic.js';
import { advertisedBrokerUrl } from './fleet/broker/advertise.js';
import { type FleetBroker, openFleetBroker } from './fleet/broker/fleet-broker.js';
import { buildConsoleServer } from './fleet/console/server.js';
import { DeviceAudit } from './fleet/delivery/device-audit.js';
import { beginEpoch } from './fleet/delivery/epoch.js';
import { GoldenService } from './fleet/delivery/goldens.js';
import { LocalArtifactStore } from './fleet/delivery/local-artifacts.js';
import { ManifestService, type SigningMode } from './fleet/delivery/manifests.js';
import { loadOrCreateSigningKey } from './fleet/delivery/signing-key.js';
import { TargetSigning } from './fleet/delivery/target-signer.js';
import { TargetService } from './fleet/delivery/targets.js';
import { TokenRepository } from './fleet/identity/tokens.js';
import { TelemetryRepository } from './fleet/ingest/telemetry.js';
import { AuditLog } from './fleet/inventory/audit.js';
import { DeviceRepository } from './fleet/inventory/devices.js';
import { FleetEvents } from './fleet/inventory/events.js';
import { ModelRegistry } from './fleet/inventory/models.js';
import { ProfileStore } from './fleet/inventory/profiles.js';
import { JobRunner } from './fleet/jobs/compression-jobs.js';
import { openReplicaParts, type ReplicaParts } from './fleet/leader/replica.js';
import { FleetMonitor } from './fleet/monitoring/monitor.js';
import { resolveMonitoringOptions } from './fleet/monitoring/options.js';
import { RolloutEngine } from './fleet/rollouts/engine.js';
import { RolloutStore } from './fleet/rollouts/store.js';
import { type Db, openDatabase } from './fleet/store/db.js';
import { type FleetStore, openFleetStore } from './fleet/store/kysely.js';
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
  const replica = await openReplicaParts({
    database: options.database,
    pool,
    externalBroker: Boolean(options.mqttUrl),
    db,
    devices,
    events,
    monitoring: resolveMonitoringOptions(options.monitoring),
    logger,
  });
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

async function loadSigning(options: CloudOptions): Promise<SigningMode> {
  if (options.signingPublicKey) return { mode: 'offline', publicKey: options.signingPublicKey };
  const file = options.signingKeyFile ?? join(options.dataDir, 'keys', 'fleet-signing.json');
  return { mode: 'online', keys: await loadOrCreateSigningKey(file) };
}

/** Artifacts, goldens, signed manifests and targets, models, and the audit of what devices run. */
async function buildDelivery(
  options: CloudOptions,
  fleet: FleetStore,
  mqtt: CloudMqtt,
  devices: DeviceRepository,
) {
  const store = new LocalArtifactStore(options.artifactsDir ?? join(options.dataDir, 'artifacts'));
  const signing = await loadSigning(options);
  const goldens = new GoldenService(fleet, store, options.logger);
  const manifests = new ManifestService(fleet, { signing, golden: (modelId) => goldens.find(modelId) });
  const targetSigning = await TargetSigning.create(signing, join(options.dataDir, 'keys'));
  const models = new ModelRegistry(fleet, store, (model, bytes) => goldens.register(model, bytes));
  await beginEpoch(fleet);
  const targets = new TargetService(fleet, mqtt, manifests, { sign: targetSigning.sign, devices, models });
  const deviceAudit = new DeviceAudit(fleet, { targets, manifests });
  return { store, goldens, manifests, targetSigning, targets, models, deviceAudit };
}

/**
 * Where benchmarks, events and raw telemetry live: with --database in PostgreSQL, where the
 * replicas ingest telemetry (whether or not the rest of the fleet tables are there yet), else
 * in the fleet store.
 */
async function telemetryStoreOf(fleet: FleetStore, replica: ReplicaParts): Promise<FleetStore> {
  if (!replica.postgres || fleet.dialect === 'postgres') return fleet;
  return openFleetStore({ postgres: replica.postgres.pool });
}

interface ServiceWiring {
  options: CloudOptions;
  db: Db;
  fleet: FleetStore;
  devices: DeviceRepository;
  events: FleetEvents;
  broker: FleetBroker;
  mqtt: CloudMqtt;
  rejectedBatches: () => number;
  replica: ReplicaParts;
}

/** Every repository and engine of the controller, each given what it needs. */
async function buildServices(wiring: ServiceWiring): Promise<CloudServices> {
  const { options, db, fleet, devices, events, broker, rejectedBatches, replica } = wiring;
  const { logger } = options;
  const delivery = await buildDelivery(options, fleet, wiring.mqtt, devices);
  const { store, models, manifests, targets } = delivery;
  const telemetryStore = await telemetryStoreOf(fleet, replica);
  const telemetry = new TelemetryRepository(telemetryStore, {
    modelName: async (id) => (await models.find(id))?.name,
  });
  const profileStore = new ProfileStore(fleet);
  const profiles = new ProfileRegistry();
  await profileStore.loadInto(profiles);
  profileStore.follow(events, profiles, (error) => logger.warn({ err: error }, 'reloading profiles failed'));
  const audit = new AuditLog(fleet);
  const monitor = new FleetMonitor({
    db,
    fleet,
    telemetryStore,
    devices,
    logger,
    options: options.monitoring,
    rejectedBatches,
  });
  const rolloutStore = new RolloutStore(fleet);
  const rollouts = new RolloutEngine({
    store: rolloutStore,
    devices,
    models,
    targets,
    telemetry,
    audit,
    logger,
    onChange: (rolloutId) => events.emit({ type: 'rollout', rolloutId }),
    isLeader: () => replica.leadership.isLeader,
    // Soak rules read real-traffic sketches; ticks come after startCloud has wired everything.
    serving: async (fromMs, toMs, filter) =>
      (await monitor.serving.summary(fromMs, toMs, 'fleet', filter))[0],
  });
  delivery.deviceAudit.registerMetrics(monitor.metrics.registry);
  const jobs = new JobRunner({
    jobs: replica.jobs,
    store,
    models,
    profiles,
    refreshProfiles: () => profileStore.loadInto(profiles),
    events,
    logger,
    workDir: join(options.dataDir, 'jobs'),
    workers: options.jobWorkers,
  });
  return {
    ...delivery,
    db,
    fleet,
    devices,
    tokens: new TokenRepository(fleet, { fleetKeyFingerprint: fleetKeyFingerprint(manifests.publicKey) }),
    telemetry,
    audit,
    rollouts,
    rolloutStore,
    profiles,
    profileStore,
    events,
    jobs,
    monitor,
    telemetryCount: () => telemetry.count(),
    postgresLatency: replica.postgres?.latency,
    // An external broker's URL is what the cloud was given; the embedded one may need a name.
    brokerUrl: options.mqttUrl ? broker.url : advertisedBrokerUrl(broker.url, options.mqttHost, options.tls),
    limits: options.uploadLimits,
    caPem: broker.tls?.caPem ?? null,
    disconnectDevice: (deviceId) => broker.disconnectDevice(deviceId),
    onEnrollToken: broker.onEnrollToken,
  };
}
