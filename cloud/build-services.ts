/**
 * Builds the controller's services from its stores: delivery (artifacts, goldens, signed
 * manifests and targets, models), telemetry and monitoring, rollouts and compression jobs.
 */
import { join } from 'node:path';
import { fleetKeyFingerprint } from '../shared/manifest/index.js';
import type { CloudOptions } from './cloud-options.js';
import { ProfileRegistry } from './compression/profiles/registry.js';
import { advertisedBrokerUrl } from './fleet/broker/advertise.js';
import type { FleetBroker } from './fleet/broker/fleet-broker.js';
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
import type { DeviceRepository } from './fleet/inventory/devices.js';
import type { FleetEvents } from './fleet/inventory/events.js';
import { ModelRegistry } from './fleet/inventory/models.js';
import { ProfileStore } from './fleet/inventory/profiles.js';
import { JobRunner } from './fleet/jobs/compression-jobs.js';
import type { ReplicaParts } from './fleet/leader/replica.js';
import { FleetMonitor } from './fleet/monitoring/monitor.js';
import { RolloutEngine } from './fleet/rollouts/engine.js';
import { RolloutStore } from './fleet/rollouts/store.js';
import type { Db } from './fleet/store/db.js';
import { type FleetStore, openFleetStore } from './fleet/store/kysely.js';
import type { CloudMqtt } from './fleet/transport/mqtt.js';
import type { CloudServices } from './services.js';

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

export interface ServiceWiring {
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
export async function buildServices(wiring: ServiceWiring): Promise<CloudServices> {
  const { options, db, fleet, devices, events, broker, rejectedBatches, replica } = wiring;
  const { logger } = options;
  const delivery = await buildDelivery(options, fleet, wiring.mqtt, devices);
  const { models, manifests } = delivery;
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
    postgres: replica.postgres
      ? { rows: replica.postgres.deviceLatency, ingest: replica.postgres.ingest }
      : undefined,
  });
  // PostgreSQL's ingest counts into the same Prometheus metrics as the SQLite queue.
  replica.postgres?.ingest.observe(monitor.metrics);
  const { rolloutStore, rollouts, jobs } = buildOperations(wiring, {
    delivery,
    telemetry,
    audit,
    monitor,
    profiles,
    profileStore,
  });
  const tokens = new TokenRepository(fleet, {
    fleetKeyFingerprint: fleetKeyFingerprint(manifests.publicKey),
  });
  return {
    ...delivery,
    db,
    fleet,
    devices,
    tokens,
    issueEnrollToken: async (tokenOptions) => {
      const created = await tokens.createEnrollToken(tokenOptions);
      await broker.onEnrollToken?.(created.token);
      return created;
    },
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

/** The rollout engine (driven by the leader) and the compression job runner. */
function buildOperations(
  wiring: ServiceWiring,
  built: {
    delivery: Awaited<ReturnType<typeof buildDelivery>>;
    telemetry: TelemetryRepository;
    audit: AuditLog;
    monitor: FleetMonitor;
    profiles: ProfileRegistry;
    profileStore: ProfileStore;
  },
) {
  const { options, fleet, devices, events, replica } = wiring;
  const { logger } = options;
  const { delivery, telemetry, audit, monitor, profiles, profileStore } = built;
  const { store, models, targets } = delivery;
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
  return { rolloutStore, rollouts, jobs };
}
