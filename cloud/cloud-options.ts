import type { Logger } from '../shared/logger.js';
import type { RouterStats } from './fleet/ingest/router.js';
import type { MonitoringOptions } from './fleet/monitoring/options.js';
import type { CloudServices } from './services.js';

// What startCloud takes and gives back; its own module so the composition root stays wiring.

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
  /** Compression jobs this process runs at once when they come from the PostgreSQL queue (0: none); default 1. */
  jobWorkers?: number;
  /** The artifact store's directory, shared by every replica; default <dataDir>/artifacts. */
  artifactsDir?: string;
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
  /**
   * The external broker is a Mosquitto configured by `fleetml broker mosquitto-config`: devices,
   * enrollment tokens and revocations are managed live through its dynamic security plugin.
   */
  mosquittoDynsec?: boolean;
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
   * Enrollment connections the embedded broker accepts per client address and minute (default
   * 30): more for many devices behind one address (a NAT, or `fleetml simulate`).
   */
  enrollmentsPerMinute?: number;
  /**
   * Serve mqtts from the embedded broker with a fleet CA created in <dataDir>/tls on first use.
   * true, or the host names for the broker certificate. Default off.
   */
  tls?: boolean | { hostnames: string[] };
  /** Upload size limits in bytes (models default 2 GiB − 1, datasets 1 GiB); bodies stream to <dataDir>/uploads. */
  uploadLimits?: { modelUploadBytes?: number; datasetUploadBytes?: number };
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
  /** This replica drives rollouts and retention now (always true with the embedded broker). */
  isLeader(): boolean;
  stop(): Promise<void>;
}
