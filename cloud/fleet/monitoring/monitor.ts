import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import type { Logger } from '../../../shared/logger.js';
import { IngestQueue } from '../ingest/ingest-queue.js';
import type { TelemetryRepository } from '../ingest/telemetry.js';
import type { Db } from '../store/db.js';
import { HealthQuery } from './health.js';
import { FleetLatencyQuery } from './latency.js';
import { FleetMetrics } from './metrics.js';
import { type MonitoringOptions, RESOLUTION, resolveMonitoringOptions } from './options.js';
import { RegressionDetector } from './regressions.js';
import { type RetentionResult, RetentionSweeper } from './retention.js';
import { RollupStore } from './rollups.js';
import { ServingStore } from './serving.js';

export interface FleetMonitorDeps {
  db: Db;
  telemetry: TelemetryRepository;
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
    this.serving = new ServingStore(deps.db);
    this.latency = new FleetLatencyQuery(deps.db, this.rollups, o);
    this.regressions = new RegressionDetector(deps.db, this.rollups, o);
    this.health = new HealthQuery(deps.db, o);
    this.metrics = new FleetMetrics({
      db: deps.db,
      rollups: this.rollups,
      health: this.health,
      options: o,
      pendingRecords: () => this.ingest.pending,
      rejectedBatches: deps.rejectedBatches,
    });
    this.ingest = new IngestQueue({
      db: deps.db,
      telemetry: deps.telemetry,
      rollups: this.rollups,
      serving: this.serving,
      options: o,
      observer: this.metrics,
    });
    this.retention = new RetentionSweeper(deps.db, this.rollups, o, this.serving);
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
