import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../shared/logger.js';
import { signManifest } from '../shared/manifest/index.js';
import { CLOUD_SUBSCRIPTIONS } from '../shared/protocol/index.js';
import { type EmbeddedBroker, startEmbeddedBroker } from './broker/embedded.js';
import { buildConsoleServer } from './console/server.js';
import { ArtifactStore } from './fleet/artifacts.js';
import { AuditLog } from './fleet/audit.js';
import { DeviceRepository } from './fleet/devices.js';
import { FleetEvents } from './fleet/events.js';
import { ModelRegistry } from './fleet/models.js';
import { FleetMonitor } from './fleet/monitoring/monitor.js';
import type { MonitoringOptions } from './fleet/monitoring/options.js';
import { RolloutEngine } from './fleet/rollouts/engine.js';
import { RolloutStore } from './fleet/rollouts/store.js';
import { createMessageRouter, type RouterStats } from './fleet/router.js';
import { TargetService } from './fleet/targets.js';
import { TelemetryRepository } from './fleet/telemetry.js';
import { TokenRepository } from './fleet/tokens.js';
import { createTransferServer } from './fleet/transfer-server.js';
import { loadOrCreateSigningKey } from './keys/signing-key.js';
import { ProfileRegistry } from './profiles/registry.js';
import type { CloudServices } from './services.js';
import { openDatabase } from './store/db.js';
import { connectCloudMqtt } from './transport/mqtt.js';

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
  /** Telemetry ingest, retention and monitoring tunables (cloud/fleet/monitoring/options.ts). */
  monitoring?: Partial<MonitoringOptions>;
  logger: Logger;
}

export interface CloudHandle {
  httpUrl: string;
  mqttUrl: string;
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

  let broker: EmbeddedBroker | undefined;
  let mqttUrl = options.mqttUrl;
  if (!mqttUrl) {
    broker = await startEmbeddedBroker({ port: options.mqttPort, host: options.mqttHost, logger });
    mqttUrl = broker.url;
  }
  const mqtt = await connectCloudMqtt({ url: mqttUrl, logger });

  const tokens = new TokenRepository(db);
  const devices = new DeviceRepository(db);
  const telemetry = new TelemetryRepository(db);
  let routerStats: RouterStats | undefined;
  const monitor = new FleetMonitor({
    db,
    telemetry,
    logger,
    options: options.monitoring,
    rejectedBatches: () => routerStats?.rejectedTelemetry ?? 0,
  });
  const signingKey = await loadOrCreateSigningKey(join(options.dataDir, 'keys', 'fleet-signing.json'));
  const profiles = new ProfileRegistry();
  const targets = new TargetService(db, mqtt, { sign: (manifest) => signManifest(manifest, signingKey) });
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
    monitor,
    brokerUrl: mqttUrl,
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
    ingest: monitor.ingest,
    publisher: mqtt,
    logger,
    fleetPublicKey: signingKey.publicKey,
    matchProfile: (request) => profiles.match(request.hardware)?.name ?? null,
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
  await mqtt.subscribe(CLOUD_SUBSCRIPTIONS);
  // The embedded broker keeps retained messages in memory only: publish the stored targets again.
  await targets.republishAll();

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
    stop: async () => {
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
