import type { Logger } from '../shared/logger.js';
import type { FleetBroker } from './fleet/broker/fleet-broker.js';
import { createArtifactAccess } from './fleet/delivery/artifact-access.js';
import type { TargetService } from './fleet/delivery/targets.js';
import { createTransferServer } from './fleet/delivery/transfer-server.js';
import { EnrollmentLedger } from './fleet/identity/enroll-requests.js';
import { createMessageRouter } from './fleet/ingest/router.js';
import type { ReplicaParts } from './fleet/leader/replica.js';
import type { CloudMqtt } from './fleet/transport/mqtt.js';
import type { CloudServices } from './services.js';

/** Device traffic (enrollment, state, telemetry, block requests) from MQTT to the services. */
export function routeDeviceTraffic(
  services: CloudServices,
  broker: FleetBroker,
  mqtt: CloudMqtt,
  logger: Logger,
  replica: ReplicaParts,
) {
  const {
    devices,
    fleet,
    telemetry,
    monitor,
    manifests,
    profiles,
    events,
    rollouts,
    store,
    targets,
    deviceAudit,
  } = services;
  const transfer = createTransferServer({
    store,
    authorize: createArtifactAccess({ targets, devices, manifests }),
    publish: (topic, payload) => mqtt.publish(topic, payload, { qos: 0 }),
    logger,
  });
  const router = createMessageRouter({
    devices,
    enrollments: new EnrollmentLedger(fleet),
    telemetry,
    ingest: replica.postgres?.ingest ?? monitor.ingest,
    publisher: mqtt,
    logger,
    fleetPublicKey: manifests.publicKey,
    matchProfile: (request) => profiles.match(request.hardware)?.name ?? null,
    onEnrolled: broker.onEnrolled,
    onTransferRequest: (deviceId, payload) => transfer.handleRequest(deviceId, payload),
    onReport: (deviceId, report) => {
      const seen =
        'state' in report
          ? deviceAudit.onState(deviceId, report.state)
          : deviceAudit.onBench(deviceId, report.bench);
      seen.catch((error) => logger.warn({ err: error, deviceId }, 'device audit failed'));
    },
    onDeviceUpdate: (deviceId, kind) => {
      events.emit({ type: 'device', deviceId, kind });
      if (kind !== 'telemetry') void rollouts.tick();
    },
  });
  mqtt.onMessage((topic, payload) => {
    void router.handle(topic, payload);
  });
  return router;
}

/**
 * Targets are retained messages, but the embedded broker keeps them in memory only and an
 * external one may run without persistence: publish the stored targets now and after each
 * reconnect, or a device that (re)connects later would find no target at all.
 */
export async function keepTargetsPublished(
  targets: TargetService,
  mqtt: CloudMqtt,
  logger: Logger,
): Promise<void> {
  await targets.republishAll();
  mqtt.client.on('connect', () => {
    targets.republishAll().catch((error) => logger.warn({ err: error }, 'republishing targets failed'));
  });
}
