import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../shared/logger.js';
import { fleetKeyFingerprint } from '../shared/manifest/index.js';
import { CLOUD_SUBSCRIPTIONS } from '../shared/protocol/index.js';
import { ProfileRegistry } from './compression/profiles/registry.js';
import { CLOUD_USERNAME } from './fleet/broker/acl.js';
import { createBrokerAuthenticator, deviceClientId } from './fleet/broker/authenticator.js';
import { type EmbeddedBroker, startEmbeddedBroker } from './fleet/broker/embedded.js';
import { MosquittoSync, mosquittoPasswordHash } from './fleet/broker/mosquitto.js';
import { buildConsoleServer } from './fleet/console/server.js';
import { createArtifactAccess } from './fleet/delivery/artifact-access.js';
import { ArtifactStore } from './fleet/delivery/artifacts.js';
import { DeviceAudit } from './fleet/delivery/device-audit.js';
import { beginEpoch } from './fleet/delivery/epoch.js';
import { GoldenService } from './fleet/delivery/goldens.js';
import { ManifestService, type SigningMode } from './fleet/delivery/manifests.js';
import { loadOrCreateSigningKey } from './fleet/delivery/signing-key.js';
import { TargetSigning } from './fleet/delivery/target-signer.js';
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
import { FleetMonitor } from './fleet/monitoring/monitor.js';
import type { MonitoringOptions } from './fleet/monitoring/options.js';
import { RolloutEngine } from './fleet/rollouts/engine.js';
import { RolloutStore } from './fleet/rollouts/store.js';
import { openDatabase } from './fleet/store/db.js';
import { connectCloudMqtt } from './fleet/transport/mqtt.js';
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

  const signing: SigningMode = options.signingPublicKey
    ? { mode: 'offline', publicKey: options.signingPublicKey }
    : {
        mode: 'online',
        keys: await loadOrCreateSigningKey(
          options.signingKeyFile ?? join(options.dataDir, 'keys', 'fleet-signing.json'),
        ),
      };
  const goldens = new GoldenService(db, store, logger);
  const manifests = new ManifestService(db, { signing, golden: (modelId) => goldens.find(modelId) });
  const tokens = new TokenRepository(db, { fleetKeyFingerprint: fleetKeyFingerprint(manifests.publicKey) });
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
  const profiles = new ProfileRegistry(
    (db.prepare('SELECT body FROM profiles').all() as Array<{ body: string }>).map((r) => JSON.parse(r.body)),
  );
  const targetSigning = await TargetSigning.create(signing, join(options.dataDir, 'keys'));
  const targets = new TargetService(db, mqtt, manifests, { epoch: beginEpoch(db), sign: targetSigning.sign });
  const models = new ModelRegistry(db, store, (model, bytes) => goldens.register(model, bytes));
  const deviceAudit = new DeviceAudit(db, { targets, manifests });
  deviceAudit.registerMetrics(monitor.metrics.registry);
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
    goldens,
    deviceAudit,
    targetSigning,
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
    brokerUrl: mqttUrl,
    caPem: tls?.caPem ?? null,
    disconnectDevice: (deviceId) => {
      broker?.disconnect(deviceClientId(deviceId));
      void syncBroker();
    },
  };
  const transfer = createTransferServer({
    store,
    authorize: createArtifactAccess({ targets, devices, manifests }),
    publish: (topic, payload) => mqtt.publish(topic, payload, { qos: 0 }),
    logger,
  });
  const router = createMessageRouter({
    devices,
    tokens,
    telemetry,
    ingest: monitor.ingest,
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
    onReport: (deviceId, report) => {
      if ('state' in report) deviceAudit.onState(deviceId, report.state);
      else deviceAudit.onBench(deviceId, report.bench);
    },
    onDeviceUpdate: (deviceId, kind) => {
      events.emit({ type: 'device', deviceId, kind });
      if (kind !== 'telemetry') void rollouts.tick();
    },
  });
  routerStats = router.stats;
  mqtt.onMessage((topic, payload) => {
    void router.handle(topic, payload);
  });
  await mqtt.subscribe(CLOUD_SUBSCRIPTIONS);
  // The embedded broker keeps retained messages in memory only: publish the stored targets again.
  await targets.republishAll();
  // So may an external one (Mosquitto without persistence): after each reconnect, publish them
  // again, or a device that (re)connects later would find no target at all.
  mqtt.client.on('connect', () => {
    targets.republishAll().catch((error) => logger.warn({ err: error }, 'republishing targets failed'));
  });

  // Rollouts continue from their stored state after a restart.
  rollouts.start();
  monitor.start();
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
      await mqtt.close();
      await broker?.close();
      db.close();
      logger.info('cloud stopped');
    },
  };
}
