import type { ProfileRegistry } from './compression/profiles/registry.js';
import type { ArtifactStore } from './fleet/delivery/artifacts.js';
import type { DeviceAudit } from './fleet/delivery/device-audit.js';
import type { GoldenService } from './fleet/delivery/goldens.js';
import type { ManifestService } from './fleet/delivery/manifests.js';
import type { TargetSigning } from './fleet/delivery/target-signer.js';
import type { TargetService } from './fleet/delivery/targets.js';
import type { TokenRepository } from './fleet/identity/tokens.js';
import type { TelemetryRepository } from './fleet/ingest/telemetry.js';
import type { AuditLog } from './fleet/inventory/audit.js';
import type { DeviceRepository } from './fleet/inventory/devices.js';
import type { FleetEvents } from './fleet/inventory/events.js';
import type { ModelRegistry } from './fleet/inventory/models.js';
import type { ProfileStore } from './fleet/inventory/profiles.js';
import type { JobRunner } from './fleet/jobs/compression-jobs.js';
import type { FleetMonitor } from './fleet/monitoring/monitor.js';
import type { RolloutEngine } from './fleet/rollouts/engine.js';
import type { RolloutStore } from './fleet/rollouts/store.js';
import type { Db } from './fleet/store/db.js';
import type { FleetStore } from './fleet/store/kysely.js';
import type { PgFleetLatencyQuery } from './fleet/store/pg-latency.js';

/** The cloud's components, wired once in `startCloud` and handed to the HTTP routes. */
export interface CloudServices {
  db: Db;
  /** The fleet tables through the shared query layer (store/kysely.ts). */
  fleet: FleetStore;
  store: ArtifactStore;
  devices: DeviceRepository;
  models: ModelRegistry;
  tokens: TokenRepository;
  targets: TargetService;
  telemetry: TelemetryRepository;
  audit: AuditLog;
  rollouts: RolloutEngine;
  rolloutStore: RolloutStore;
  profiles: ProfileRegistry;
  /** Where user-defined profiles are kept (the registry holds them in memory). */
  profileStore: ProfileStore;
  events: FleetEvents;
  manifests: ManifestService;
  /** Golden sets computed at registration, named by manifests. */
  goldens: GoldenService;
  /** Alarms (versions the cloud never issued) and golden-check fidelity per device. */
  deviceAudit: DeviceAudit;
  /** How targets are signed (offline: the delegated target key). */
  targetSigning: TargetSigning;
  jobs: JobRunner;
  /** Drops every broker session of a device and its broker credentials (after revocation). */
  disconnectDevice: (deviceId: string) => void | Promise<void>;
  /** Gives a new enrollment token its broker credentials, where the broker needs them (Mosquitto). */
  onEnrollToken?: (token: string) => Promise<void>;
  /**
   * A new enrollment token that the broker accepts: stored, then given its broker credentials
   * (Mosquitto's dynamic security). Use this, not tokens.createEnrollToken, to hand out tokens.
   */
  issueEnrollToken: (options?: { ttlSeconds?: number; uses?: number }) => Promise<{
    token: string;
    expiresAt: string;
  }>;
  /** The fleet CA devices pin when the broker speaks mqtts; null for plain MQTT. */
  caPem: string | null;
  /** Telemetry ingest, fleet latency, regressions, health, metrics. */
  monitor: FleetMonitor;
  /** Raw telemetry records stored (SQLite, or PostgreSQL with --database postgres://). */
  telemetryCount: () => Promise<number>;
  /** The fleet latency query on PostgreSQL (with --database postgres://); undefined: SQLite. */
  postgresLatency?: PgFleetLatencyQuery;
  /** The MQTT URL devices should use. */
  brokerUrl: string;
  /** Upload size limits in bytes; defaults: models 2 GiB − 1 (ONNX's protobuf limit), datasets 1 GiB. */
  limits?: { modelUploadBytes?: number; datasetUploadBytes?: number };
}
