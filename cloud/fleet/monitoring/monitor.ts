import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import type { Logger } from '../../../shared/logger.js';
import { IngestQueue } from '../ingest/ingest-queue.js';
import { SqliteTelemetryWriter } from '../ingest/sqlite-records.js';
import type { Device } from '../inventory/devices.js';
import type { Db } from '../store/db.js';
import type { FleetStore } from '../store/kysely.js';
import { HealthQuery } from './health.js';
import { FleetLatencyQuery } from './latency.js';
import { FleetMetrics } from './metrics.js';
import { type MonitoringOptions, RESOLUTION, resolveMonitoringOptions } from './options.js';
import { RegressionDetector } from './regressions.js';
import { type RetentionResult, RetentionSweeper } from './retention.js';
import { RollupStore } from './rollups.js';
import { ServingStore, SqliteServingWriter } from './serving.js';

export interface FleetMonitorDeps {
  /** The SQLite file: the group-commit ingest queue and the latency rollups it writes. */
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
}

/**
 * Telemetry at fleet scale, wired in one place: the group-commit ingest queue, rollups,
 * fleet latency / regression / health queries, retention and Prometheus metrics.
 */
export class FleetMonitor {
  readonly options: MonitoringOptions;
  readonly rollups: RollupStore;
  /** Real-traffic latency (DDSketches) per device and release. */
  readonly serving: ServingStore;
  readonly ingest: IngestQueue;
  readonly latency: FleetLatencyQuery;
  readonly regressions: RegressionDetector;
  readonly health: HealthQuery;
  readonly metrics: FleetMetrics;
  private readonly retention: RetentionSweeper;
  private timer: NodeJS.Timeout | null = null;
  private sweeping: Promise<RetentionResult> | null = null;

  constructor(private readonly deps: FleetMonitorDeps) {
    const o = (this.options = resolveMonitoringOptions(deps.options));
    this.rollups = new RollupStore(deps.db, { cacheRows: o.queryCacheRows });
    const servingWriter = new SqliteServingWriter(deps.db);
    this.serving = new ServingStore({
      store: deps.telemetryStore ?? deps.fleet,
      profiles: async () => new Map((await deps.devices.list()).map((d) => [d.id, d.profile])),
    });
    this.latency = new FleetLatencyQuery(deps.db, this.rollups, o);
    this.regressions = new RegressionDetector(deps.db, this.rollups, o);
    this.health = new HealthQuery(
      { store: deps.telemetryStore ?? deps.fleet, devices: () => deps.devices.list() },
      o,
    );
    this.metrics = new FleetMetrics({
      db: deps.db,
      fleet: deps.fleet,
      rollups: this.rollups,
      health: this.health,
      options: o,
      pendingRecords: () => this.ingest.pending,
      rejectedBatches: deps.rejectedBatches,
    });
    this.ingest = new IngestQueue({
      db: deps.db,
      records: new SqliteTelemetryWriter(deps.db),
      rollups: this.rollups,
      serving: servingWriter,
      options: o,
      observer: this.metrics,
    });
    this.retention = new RetentionSweeper(deps.db, this.rollups, o, servingWriter);
  }

  /** Starts the periodic retention sweep (the first one right away) and warms the query cache. */
  start(): void {
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
    this.sweeping ??= this.retention.sweep(nowMs).then(
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
    this.ingest.close();
  }
}
