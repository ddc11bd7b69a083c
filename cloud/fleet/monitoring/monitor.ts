import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { FleetError } from '../../../shared/errors/index.js';
import type { Logger } from '../../../shared/logger.js';
import { IngestQueue } from '../ingest/ingest-queue.js';
import { SqliteTelemetryWriter } from '../ingest/sqlite-records.js';
import type { Device } from '../inventory/devices.js';
import type { Db } from '../store/db.js';
import type { FleetStore } from '../store/kysely.js';
import { HealthQuery } from './health.js';
import { FleetLatencyQuery, NO_PROFILE } from './latency.js';
import type { DeviceLatencySource, ProfileMap } from './latency-source.js';
import { FleetMetrics } from './metrics.js';
import { type MonitoringOptions, RESOLUTION, resolveMonitoringOptions } from './options.js';
import { RegressionDetector } from './regressions.js';
import { type RetentionResult, RetentionSweeper } from './retention.js';
import { RollupStore } from './rollups.js';
import { DeviceSeriesQuery } from './series.js';
import { ServingStore, SqliteServingWriter } from './serving.js';
import { LatencyRows } from './windows.js';

/** What monitoring reads from PostgreSQL when the cloud runs with --database. */
export interface PostgresMonitoring {
  /** Per-device latency of a window, from the raw records (store/pg-device-latency.ts). */
  rows: DeviceLatencySource;
  /** The PostgreSQL ingest queue, for the pending-records gauge. */
  ingest: { readonly pending: number };
}

export interface FleetMonitorDeps {
  /** The SQLite file: the group-commit ingest queue and the latency rollups it writes (unused with postgres). */
  db: Db;
  /** Where devices and rollouts live. */
  fleet: FleetStore;
  /** Where telemetry rollups are read (PostgreSQL with --database); default: the fleet store. */
  telemetryStore?: FleetStore;
  /** Every device (the health query and metrics). */
  devices: { list(): Promise<Device[]> };
  logger: Logger;
  options?: Partial<MonitoringOptions>;
  /** Telemetry batches the MQTT router rejected, for the metrics. */
  rejectedBatches?: () => number;
  /** With --database: telemetry is ingested and read there, and the SQLite file is not swept. */
  postgres?: PostgresMonitoring;
}

/**
 * Telemetry in the SQLite file: the group-commit ingest queue, the rollups and real-traffic rows
 * it writes, the fleet latency query over them and their retention. Built only when telemetry
 * is stored there: with --database it is in PostgreSQL (store/pg-*.ts).
 */
export interface SqliteTelemetry {
  ingest: IngestQueue;
  rollups: RollupStore;
  latency: FleetLatencyQuery;
  retention: RetentionSweeper;
}

/**
 * Telemetry at fleet scale, wired in one place: the group-commit ingest queue, rollups,
 * fleet latency / regression / health queries, retention and Prometheus metrics.
 */
export class FleetMonitor {
  readonly options: MonitoringOptions;
  /** Real-traffic latency (DDSketches) per device and release. */
  readonly serving: ServingStore;
  readonly regressions: RegressionDetector;
  readonly series: DeviceSeriesQuery;
  readonly health: HealthQuery;
  readonly metrics: FleetMetrics;
  /** The SQLite telemetry parts; null with --database (nothing of them is built then). */
  readonly sqlite: SqliteTelemetry | null;
  private timer: NodeJS.Timeout | null = null;
  private sweeping: Promise<RetentionResult> | null = null;

  constructor(private readonly deps: FleetMonitorDeps) {
    const o = (this.options = resolveMonitoringOptions(deps.options));
    this.serving = new ServingStore({
      store: deps.telemetryStore ?? deps.fleet,
      profiles: async () => new Map((await deps.devices.list()).map((d) => [d.id, d.profile])),
    });
    const rollups = deps.postgres ? null : new RollupStore(deps.db, { cacheRows: o.queryCacheRows });
    // Devices (and their profiles) are read from the fleet store, wherever it lives.
    const profiles: ProfileMap = async () =>
      new Map((await deps.devices.list()).map((d) => [d.id, d.profile ?? NO_PROFILE]));
    const rows: DeviceLatencySource = rollups ? new LatencyRows(rollups) : deps.postgres!.rows;
    this.regressions = new RegressionDetector({ rows, profiles }, o);
    this.series = new DeviceSeriesQuery({ store: deps.telemetryStore ?? deps.fleet, latency: rows });
    this.health = new HealthQuery(
      { store: deps.telemetryStore ?? deps.fleet, devices: () => deps.devices.list() },
      o,
    );
    this.metrics = new FleetMetrics({
      fleet: deps.fleet,
      rows,
      profiles,
      health: this.health,
      options: o,
      pendingRecords: () => (deps.postgres?.ingest ?? this.sqlite?.ingest)?.pending ?? 0,
      rejectedBatches: deps.rejectedBatches,
    });
    this.sqlite = rollups && this.buildSqliteTelemetry(rollups);
  }

  private buildSqliteTelemetry(rollups: RollupStore): SqliteTelemetry {
    const { db, devices } = this.deps;
    const servingWriter = new SqliteServingWriter(db);
    return {
      rollups,
      latency: new FleetLatencyQuery(db, rollups, this.options),
      ingest: new IngestQueue({
        db,
        records: new SqliteTelemetryWriter(db),
        rollups,
        serving: servingWriter,
        options: this.options,
        observer: this.metrics,
      }),
      retention: new RetentionSweeper(
        db,
        async () => (await devices.list()).map((d) => d.id),
        rollups,
        this.options,
        servingWriter,
      ),
    };
  }

  /** The SQLite group-commit ingest queue (on PostgreSQL: store/pg-ingest.ts, not this). */
  get ingest(): IngestQueue {
    return this.sqliteOnly().ingest;
  }

  /** Latency rollups in the SQLite file. */
  get rollups(): RollupStore {
    return this.sqliteOnly().rollups;
  }

  /** Fleet latency from the SQLite rollups (on PostgreSQL: store/pg-latency.ts). */
  get latency(): FleetLatencyQuery {
    return this.sqliteOnly().latency;
  }

  private sqliteOnly(): SqliteTelemetry {
    if (!this.sqlite)
      throw new FleetError('INTERNAL', 'telemetry is stored in PostgreSQL: its SQLite parts are not built');
    return this.sqlite;
  }

  /**
   * Starts the periodic retention sweep (the first one right away) and warms the query cache;
   * nothing on PostgreSQL, where telemetry is not in the SQLite file (the replica sweeps it).
   */
  start(): void {
    if (this.deps.postgres) return;
    void this.warm().catch((error) => this.deps.logger.warn({ err: error }, 'query cache warm-up failed'));
    const run = () => {
      void this.sweep().catch((error) => this.deps.logger.warn({ err: error }, 'retention sweep failed'));
    };
    run();
    this.timer = setInterval(run, this.options.retentionIntervalMs);
    this.timer.unref();
  }

  /**
   * Decodes the hour rollups of the last day into the query cache, one bucket per event-loop
   * turn, so that the first 24 h fleet query after a restart is as fast as the next ones.
   */
  async warm(nowMs = Date.now()): Promise<void> {
    const hour = RESOLUTION.hour;
    const last = nowMs - (nowMs % hour);
    for (let bucket = last - 24 * hour; bucket < last; bucket += hour) {
      this.rollups.cache.rows(hour, bucket);
      await yieldToEventLoop();
    }
  }

  sweep(nowMs = Date.now()): Promise<RetentionResult> {
    this.sweeping ??= this.sqliteOnly()
      .retention.sweep(nowMs)
      .then(
        (result) => {
          this.sweeping = null;
          if (result.rawDeleted + result.minuteDeleted + result.hourDeleted > 0) {
            this.deps.logger.info(result, 'telemetry retention sweep');
          }
          return result;
        },
        (error) => {
          this.sweeping = null;
          throw error;
        },
      );
    return this.sweeping;
  }

  /** Stops the periodic retention sweep (this replica is no longer the leader); start() resumes it. */
  stopSweeps(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Commits what is queued and stops; call before closing the database. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.sweeping?.catch(() => {});
    this.sqlite?.ingest.close();
  }
}
