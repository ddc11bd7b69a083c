import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../shared/logger.js';
import { CLOUD_SUBSCRIPTIONS } from '../shared/protocol/index.js';
import { ProfileRegistry } from './compression/profiles/registry.js';
import { CLOUD_USERNAME } from './fleet/broker/acl.js';
import { createBrokerAuthenticator, deviceClientId } from './fleet/broker/authenticator.js';
import { type EmbeddedBroker, startEmbeddedBroker } from './fleet/broker/embedded.js';
import { MosquittoSync, mosquittoPasswordHash } from './fleet/broker/mosquitto.js';
import { buildConsoleServer } from './fleet/console/server.js';
import { ArtifactStore } from './fleet/delivery/artifacts.js';
import { ManifestService, type SigningMode } from './fleet/delivery/manifests.js';
import { loadOrCreateSigningKey } from './fleet/delivery/signing-key.js';
import { TargetService } from './fleet/delivery/targets.js';
import { createTransferServer } from './fleet/delivery/transfer-server.js';
import { newSecret } from './fleet/identity/secrets.js';
import { type FleetTls, loadOrCreateFleetTls } from './fleet/identity/tls/fleet-ca.js';
import { TokenRepository } from './fleet/identity/tokens.js';
import { createMessageRouter, type RouterStats } from './fleet/ingest/router.js';
import { TelemetryRepository } from './fleet/ingest/telemetry.js';
import { AuditLog } from './fleet/inventory/audit.js';
import { DeviceRepository } from './fleet/inventory/devices.js';
import { FleetEvents } from './fleet/inventory/events.js';
import { ModelRegistry } from './fleet/inventory/models.js';
import { JobRunner } from './fleet/jobs/compression-jobs.js';
import { openReplicaParts } from './fleet/leader/replica.js';
import { FleetMonitor } from './fleet/monitoring/monitor.js';
import type { MonitoringOptions } from './fleet/monitoring/options.js';
import { RolloutEngine } from './fleet/rollouts/engine.js';
import { RolloutStore } from './fleet/rollouts/store.js';
import { openDatabase } from './fleet/store/db.js';
import { connectCloudMqtt, subscribeDeviceTraffic } from './fleet/transport/mqtt.js';
import type { CloudServices } from './services.js';

export interface CloudOptions {
  /** Directory for the SQLite database, artifacts and the admin token; created if missing. */
  dataDir: string;
  /** HTTP port for the API and console; 0 picks a free one. Default 8080. */
  httpPort?: number;
  /** HTTP interface; default '127.0.0.1'. */
  httpHost?: string;
  /** Port of the embedded MQTT broker; 0 picks a free one. Default 1883. Ignored with mqttUrl. */
  mqttPort?: number;
  /** Interface of the embedded broker; default '127.0.0.1' ('0.0.0.0' to reach real devices). */
  mqttHost?: string;
  /** Use this external broker instead of the embedded one, e.g. mqtt://broker.local:1883. */
  mqttUrl?: string;
  /**
   * postgres://… : telemetry ingest, the fleet latency query, retention and leader election on
   * PostgreSQL, so several replicas can share the work (docs/scale.md). Default: SQLite only.
   */
  database?: string;
  /**
   * With an external broker: the MQTT 5 shared-subscription group of the replicas (default
   * 'fleetml'), so each device message is handled by one replica. null: plain subscriptions
   * (a broker without MQTT 5). Ignored with the embedded broker.
   */
  mqttSharedGroup?: string | null;
  /** Credentials of the cloud on the external broker (see `fleetml broker mosquitto-config`). */
  mqttUsername?: string;
  mqttPassword?: string;
  /**
   * With an external Mosquitto: keep its password and ACL files in this directory in step with
   * the device registry, and run `reload` (e.g. 'systemctl reload mosquitto') after each change.
   */
  mosquitto?: { dir: string; reload?: string | (() => Promise<void> | void) };
  /** The manifest-signing key file (online signing); default <dataDir>/keys/fleet-signing.json, created if missing. */
  signingKeyFile?: string;
  /**
   * Offline signing: the cloud holds only this public key (base64); manifests are signed with
   * `fleetml sign` elsewhere and attached. Default: online signing.
   */
  signingPublicKey?: string;
  /** Run the embedded broker without authentication (development only); default false. */
  openBroker?: boolean;
  /**
   * Serve mqtts from the embedded broker with a fleet CA created in <dataDir>/tls on first use.
   * true, or the host names for the broker certificate. Default off.
   */
  tls?: boolean | { hostnames: string[] };
  /** Telemetry ingest, retention and monitoring tunables (cloud/fleet/monitoring/options.ts). */
  monitoring?: Partial<MonitoringOptions>;
  logger: Logger;
}

export interface CloudHandle {
  httpUrl: string;
  mqttUrl: string;
  /** Every HTTP route (method and URL pattern). */
  httpRoutes: Array<{ method: string; url: string }>;
  /** Disconnects a device from the embedded broker (after revocation); no-op with an external broker. */
  disconnectDevice(deviceId: string): void;
  /** The admin API token, created on first start and kept in <dataDir>/admin-token (mode 600). */
  adminToken: string;
  services: CloudServices;
  routerStats: RouterStats;
  stop(): Promise<void>;
}

async function loadOrCreateAdminToken(dataDir: string, tokens: TokenRepository): Promise<string> {
  const path = join(dataDir, 'admin-token');
  try {
    const saved = (await readFile(path, 'utf8')).trim();
    if (tokens.apiTokenRole(saved)) return saved;
  } catch {
    // first start: create it below
  }
  const token = tokens.createApiToken('admin', 'admin');
  await writeFile(path, `${token}\n`, { mode: 0o600 });
  await chmod(path, 0o600);
  return token;
}

/** Starts the whole controller: database, broker (embedded unless mqttUrl), MQTT client, HTTP. */
export async function startCloud(options: CloudOptions): Promise<CloudHandle> {
  const { logger } = options;
  await mkdir(options.dataDir, { recursive: true, mode: 0o700 });
  const db = openDatabase({ path: join(options.dataDir, 'fleetml.db') });
  const store = new ArtifactStore(join(options.dataDir, 'artifacts'));

  const tokens = new TokenRepository(db);
  const devices = new DeviceRepository(db);
  let broker: EmbeddedBroker | undefined;
  let tls: FleetTls | undefined;
  let mqttUrl = options.mqttUrl;
  let cloudUsername = options.mqttUsername;
  let cloudPassword = options.mqttPassword;
  if (!mqttUrl) {
    // The embedded broker authenticates every client; the cloud gets a fresh password per start.
    cloudUsername = CLOUD_USERNAME;
    cloudPassword = newSecret();
    const authenticate = options.openBroker
      ? undefined
      : createBrokerAuthenticator({ deviceSecretHash: (id) => devices.secretHash(id), cloudPassword });
    if (options.tls) {
      const hostnames = typeof options.tls === 'object' ? options.tls.hostnames : undefined;
      tls = await loadOrCreateFleetTls({ dir: join(options.dataDir, 'tls'), hostnames });
    }
    broker = await startEmbeddedBroker({
      port: options.mqttPort,
      host: options.mqttHost,
      logger,
      authenticate,
      tls: tls ? { certPem: tls.certPem, keyPem: tls.keyPem } : undefined,
    });
    mqttUrl = broker.url;
  }
  const mosquitto =
    options.mosquitto && !broker ? new MosquittoSync({ ...options.mosquitto, logger }) : undefined;
  // Hashed once: PBKDF2 per enrollment would be wasted work, and a stable line keeps the file diffable.
  const cloudEntry = mosquitto
    ? { username: CLOUD_USERNAME, hash: mosquittoPasswordHash(cloudPassword ?? '') }
    : undefined;
  const syncBroker = async () => {
    if (mosquitto && cloudEntry) await mosquitto.write([cloudEntry, ...devices.brokerCredentials()]);
  };
  await syncBroker();
  const mqtt = await connectCloudMqtt({
    url: mqttUrl,
    logger,
    username: cloudUsername,
    password: cloudPassword,
    caPem: tls?.caPem,
    sharedGroup:
      broker || options.mqttSharedGroup === null ? undefined : (options.mqttSharedGroup ?? 'fleetml'),
  });

  const telemetry = new TelemetryRepository(db);
  let routerStats: RouterStats | undefined;
  const monitor = new FleetMonitor({
    db,
    telemetry,
    logger,
    options: options.monitoring,
    rejectedBatches: () => routerStats?.rejectedTelemetry ?? 0,
  });
  const replica = await openReplicaParts({
    database: options.database,
    externalBroker: !broker,
    db,
    devices,
    monitoring: monitor.options,
    logger,
  });
  const signing: SigningMode = options.signingPublicKey
    ? { mode: 'offline', publicKey: options.signingPublicKey }
    : {
        mode: 'online',
        keys: await loadOrCreateSigningKey(
          options.signingKeyFile ?? join(options.dataDir, 'keys', 'fleet-signing.json'),
        ),
      };
  const manifests = new ManifestService(db, { signing });
  const profiles = new ProfileRegistry(
    (db.prepare('SELECT body FROM profiles').all() as Array<{ body: string }>).map((r) => JSON.parse(r.body)),
  );
  const targets = new TargetService(db, mqtt, manifests);
  const models = new ModelRegistry(db, store);
  const audit = new AuditLog(db);
  const events = new FleetEvents();
  const rolloutStore = new RolloutStore(db);
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
  });
  const services: CloudServices = {
    db,
    store,
    devices,
    models,
    tokens,
    targets,
    telemetry,
    audit,
    rollouts,
    rolloutStore,
    profiles,
    events,
    manifests,
    jobs: new JobRunner({
      db,
      store,
      models,
      profiles,
      events,
      logger,
      workDir: join(options.dataDir, 'jobs'),
    }),
    monitor,
    telemetryCount: replica.postgres ? () => replica.postgres!.store.count() : async () => telemetry.count(),
    postgresLatency: replica.postgres?.latency,
    brokerUrl: mqttUrl,
    caPem: tls?.caPem ?? null,
    disconnectDevice: (deviceId) => {
      broker?.disconnect(deviceClientId(deviceId));
      void syncBroker();
    },
  };
  const transfer = createTransferServer({
    store,
    publish: (topic, payload) => mqtt.publish(topic, payload, { qos: 0 }),
    logger,
  });
  const router = createMessageRouter({
    devices,
    tokens,
    telemetry,
    ingest: replica.postgres?.ingest ?? monitor.ingest,
    publisher: mqtt,
    logger,
    fleetPublicKey: manifests.publicKey,
    matchProfile: (request) => profiles.match(request.hardware)?.name ?? null,
    onEnrolled: mosquitto
      ? async (deviceId, secret) => {
          devices.setBrokerHash(deviceId, mosquittoPasswordHash(secret));
          await syncBroker();
        }
      : undefined,
    onTransferRequest: (deviceId, payload) => transfer.handleRequest(deviceId, payload),
    onDeviceUpdate: (deviceId, kind) => {
      events.emit({ type: 'device', deviceId, kind });
      if (kind !== 'telemetry') void rollouts.tick();
    },
  });
  routerStats = router.stats;
  mqtt.onMessage((topic, payload) => {
    void router.handle(topic, payload);
  });
  await subscribeDeviceTraffic(mqtt, CLOUD_SUBSCRIPTIONS);
  // The embedded broker keeps retained messages in memory only: publish the stored targets again.
  await targets.republishAll();
  // So may an external one (Mosquitto without persistence): after each reconnect, publish them
  // again, or a device that (re)connects later would find no target at all.
  mqtt.client.on('connect', () => {
    targets.republishAll().catch((error) => logger.warn({ err: error }, 'republishing targets failed'));
  });

  // Rollouts continue from their stored state after a restart.
  // Fleet-wide duties run on the leader only (always this process with the embedded broker).
  replica.leadership.onChange((leader) => {
    logger.info({ replica: replica.leadership.replicaId, leader }, leader ? 'leading' : 'following');
    if (leader) {
      rollouts.start();
      monitor.start();
      replica.startPgRetention();
    } else {
      void rollouts.stop();
      monitor.stopSweeps();
      replica.stopPgRetention();
    }
  });
  await replica.leadership.start();
  const adminToken = await loadOrCreateAdminToken(options.dataDir, tokens);
  const app = await buildConsoleServer({ services, logger });
  const address = await app.listen({ port: options.httpPort ?? 8080, host: options.httpHost ?? '127.0.0.1' });
  const httpUrl = address.replace('127.0.0.1', 'localhost');
  logger.info({ httpUrl, mqttUrl, dataDir: options.dataDir }, 'cloud started');

  return {
    httpUrl,
    mqttUrl,
    adminToken,
    services,
    routerStats: router.stats,
    httpRoutes: (app as unknown as { fleetmlRoutes: Array<{ method: string; url: string }> }).fleetmlRoutes,
    disconnectDevice: services.disconnectDevice,
    stop: async () => {
      services.jobs.stop();
      await rollouts.stop();
      await app.close();
      // Commit (and acknowledge) what is queued while the MQTT client can still publish.
      await monitor.stop();
      await replica.close();
      await mqtt.close();
      await broker?.close();
      db.close();
      logger.info('cloud stopped');
    },
  };
}
