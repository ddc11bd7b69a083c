import type { Logger } from '../../../shared/logger.js';
import { TouchThrottle } from '../inventory/device-cache.js';
import type { DeviceRepository } from '../inventory/devices.js';
import type { FleetEvents } from '../inventory/events.js';
import { type JobStore, SqliteJobStore } from '../jobs/job-store.js';
import { PgJobStore } from '../jobs/pg-jobs.js';
import type { MonitoringOptions } from '../monitoring/options.js';
import type { Db } from '../store/db.js';
import { PgDeviceLatencyRows } from '../store/pg-device-latency.js';
import { PgIngestQueue } from '../store/pg-ingest.js';
import { PgFleetLatencyQuery } from '../store/pg-latency.js';
import { PgTelemetryStore } from '../store/pg-telemetry.js';
import { openPostgres, type PgPool } from '../store/postgres.js';
import type { Leadership } from './leadership.js';
import { SoloLeadership } from './leadership.js';
import { PgAdvisoryLeadership } from './pg-advisory.js';
import { PgEventRelay } from './pg-events.js';
import { SqliteLeaseLeadership } from './sqlite-lease.js';

/** What runs on PostgreSQL when the cloud is given `--database postgres://…`. */
export interface PostgresParts {
  pool: PgPool;
  store: PgTelemetryStore;
  ingest: PgIngestQueue;
  latency: PgFleetLatencyQuery;
  /** Per-device latency (regressions, device series, Prometheus gauges) from the raw records. */
  deviceLatency: PgDeviceLatencyRows;
}

export interface ReplicaParts {
  leadership: Leadership;
  postgres: PostgresParts | null;
  /** Compression jobs: in the SQLite file (run where accepted), or a queue in PostgreSQL. */
  jobs: JobStore;
  /** Leader-only PostgreSQL retention: starts and stops with leadership. */
  startPgRetention(): void;
  stopPgRetention(): void;
  close(): Promise<void>;
}

export interface ReplicaOptions {
  /** postgres://… for telemetry and leadership; undefined: SQLite only. */
  database?: string;
  /** A pool on `database` the caller already opened (and ends); default: one of its own. */
  pool?: PgPool;
  /** The cloud uses an external broker (replicas possible); false: embedded, one process. */
  externalBroker: boolean;
  db: Db;
  devices: DeviceRepository;
  /** With PostgreSQL, events reach the live views (SSE) of every replica through LISTEN/NOTIFY. */
  events: FleetEvents;
  monitoring: MonitoringOptions;
  logger: Logger;
}

/**
 * Picks how this process coordinates with other replicas: alone with the embedded broker
 * (always leader), a lease in the shared SQLite file with an external broker, or PostgreSQL
 * (advisory-lock leadership, telemetry ingest, the fleet latency query, the compression job
 * queue and the live-event relay) with --database.
 */
export async function openReplicaParts(o: ReplicaOptions): Promise<ReplicaParts> {
  let postgres: PostgresParts | null = null;
  let leadership: Leadership;
  if (o.database) {
    const pool = o.pool ?? (await openPostgres(o.database));
    const store = new PgTelemetryStore(pool, o.monitoring);
    // Last-seen to within a telemetry interval is what health needs; writing it on every commit
    // doubled PostgreSQL's writes at 10,000 devices.
    const lastSeen = new TouchThrottle(Math.min(5_000, o.monitoring.expectedIntervalS * 1000));
    const ingest = new PgIngestQueue({
      store,
      profileOf: async (id) => (await o.devices.findRecent(id))?.profile ?? null,
      onCommitted: (ids, at) => o.devices.touchMany(lastSeen.due(ids), at),
      options: o.monitoring,
    });
    postgres = {
      pool,
      store,
      ingest,
      latency: new PgFleetLatencyQuery(pool, o.monitoring),
      deviceLatency: new PgDeviceLatencyRows(pool, o.monitoring),
    };
    leadership = new PgAdvisoryLeadership(o.database);
  } else {
    leadership = o.externalBroker ? new SqliteLeaseLeadership(o.db) : new SoloLeadership();
  }
  const jobs = postgres
    ? new PgJobStore(postgres.pool, o.database!, leadership.replicaId)
    : new SqliteJobStore(o.db);
  const relay = postgres
    ? new PgEventRelay({ url: o.database!, pool: postgres.pool, events: o.events, logger: o.logger })
    : null;
  await relay?.start();
  let timer: NodeJS.Timeout | undefined;
  const sweep = () => {
    if (!postgres) return;
    const now = Date.now();
    const m = o.monitoring;
    postgres.store
      .sweep(now - m.rawRetentionMs, now - m.minuteRetentionMs, now - m.hourRetentionMs)
      .then((result) => {
        if (result.partitionsDropped.length > 0) o.logger.info(result, 'postgres telemetry retention');
      })
      .catch((error) => o.logger.warn({ err: error }, 'postgres retention failed'));
  };
  return {
    leadership,
    postgres,
    jobs,
    startPgRetention: () => {
      if (!postgres || timer) return;
      sweep();
      timer = setInterval(sweep, o.monitoring.retentionIntervalMs);
      timer.unref();
    },
    stopPgRetention: () => {
      clearInterval(timer);
      timer = undefined;
    },
    close: async () => {
      clearInterval(timer);
      await relay?.close();
      await leadership.stop();
      if (postgres) {
        await postgres.ingest.close();
        if (!o.pool) await postgres.pool.end();
      }
    },
  };
}
