import { FleetError, toFleetError } from '../../../shared/errors/index.js';
import type { TelemetryRecord } from '../../../shared/protocol/index.js';
import type { IngestObserver, IngestResult, TelemetryIngest } from '../ingest/ingest-queue.js';
import type { MonitoringOptions } from '../monitoring/options.js';
import type { PgTelemetryStore } from './pg-telemetry.js';

export interface PgIngestDeps {
  store: PgTelemetryStore;
  /** The device's profile (fleet rollups group by it). */
  profileOf: (deviceId: string) => string | null | Promise<string | null>;
  /** After a commit: the devices heard from (the devices table's last-seen time). */
  onCommitted?: (deviceIds: string[], receivedAt: string) => unknown;
  options: Pick<MonitoringOptions, 'ingestMaxDelayMs' | 'ingestMaxRecords' | 'ingestMaxPendingRecords'>;
}

interface Item {
  deviceId: string;
  records: TelemetryRecord[];
  submittedAt: number;
  resolve: (result: IngestResult) => void;
  reject: (error: unknown) => void;
}

/** PostgreSQL error: no partition for a row (another replica's retention dropped it). */
const NO_PARTITION = '23514';

/**
 * Group commit for telemetry on PostgreSQL, the same contract as the SQLite IngestQueue: a
 * submit resolves only after its records are committed (then the router acknowledges them),
 * batches wait at most `ingestMaxDelayMs`, and a full queue refuses with INGEST_OVERLOADED
 * (no ack: the device resends). One flush is in flight at a time; the next gathers meanwhile.
 */
export class PgIngestQueue implements TelemetryIngest {
  private queue: Item[] = [];
  private pendingRecords = 0;
  private timer: NodeJS.Timeout | null = null;
  private flushing: Promise<void> | null = null;
  private closed = false;
  readonly stats = { batches: 0, records: 0, added: 0, duplicates: 0, commits: 0, refused: 0 };
  private observer: IngestObserver | undefined;

  constructor(private readonly deps: PgIngestDeps) {}

  /** Reports commits and refusals (the Prometheus metrics, built after this queue). */
  observe(observer: IngestObserver): void {
    this.observer = observer;
  }

  get pending(): number {
    return this.pendingRecords;
  }

  submit(deviceId: string, records: TelemetryRecord[]): Promise<IngestResult> {
    if (this.closed) return Promise.reject(new FleetError('INGEST_FAILED', 'the ingest queue is closed'));
    const o = this.deps.options;
    if (this.pendingRecords + records.length > o.ingestMaxPendingRecords) {
      this.stats.refused += records.length;
      this.observer?.onRefused('INGEST_OVERLOADED', records.length);
      return Promise.reject(
        new FleetError('INGEST_OVERLOADED', `ingest queue full (${this.pendingRecords} records pending)`, {
          deviceId,
        }),
      );
    }
    return new Promise<IngestResult>((resolve, reject) => {
      this.queue.push({ deviceId, records, submittedAt: performance.now(), resolve, reject });
      this.pendingRecords += records.length;
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.flushing !== null) return; // the running flush picks the rest up when it ends
    if (this.pendingRecords >= this.deps.options.ingestMaxRecords) this.startFlush();
    else this.timer ??= setTimeout(() => this.startFlush(), this.deps.options.ingestMaxDelayMs);
  }

  private startFlush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.flushing || this.queue.length === 0) return;
    let take = 0;
    let records = 0;
    while (
      take < this.queue.length &&
      (take === 0 || records + this.queue[take].records.length <= this.deps.options.ingestMaxRecords)
    ) {
      records += this.queue[take].records.length;
      take++;
    }
    const items = this.queue.splice(0, take);
    this.flushing = this.commit(items).finally(() => {
      this.pendingRecords -= records;
      this.flushing = null;
      if (this.queue.length > 0) this.schedule();
    });
  }

  private async commit(items: Item[]): Promise<void> {
    let added: number[];
    const started = performance.now();
    try {
      const batches = await Promise.all(
        items.map(async (i) => ({
          deviceId: i.deviceId,
          profile: await this.deps.profileOf(i.deviceId),
          records: i.records,
        })),
      );
      added = await this.deps.store.write(batches);
    } catch (error) {
      if ((error as { code?: string }).code === NO_PARTITION) this.deps.store.forgetPartitions();
      const cause = toFleetError(error);
      const failure = new FleetError('INGEST_FAILED', `telemetry commit failed: ${cause.message}`);
      const refused = items.reduce((n, i) => n + i.records.length, 0);
      this.stats.refused += refused;
      this.observer?.onRefused('INGEST_FAILED', refused);
      for (const item of items) item.reject(failure);
      return;
    }
    this.report(items, added, started);
    const receivedAt = new Date().toISOString();
    // Last-seen times are a courtesy: a failure here must not fail the committed batch.
    try {
      await this.deps.onCommitted?.([...new Set(items.map((i) => i.deviceId))], receivedAt);
    } catch {
      // the next commit sets them again
    }
    this.stats.commits++;
    items.forEach((item, i) => {
      this.stats.batches++;
      this.stats.records += item.records.length;
      this.stats.added += added[i];
      this.stats.duplicates += item.records.length - added[i];
      item.resolve({ added: added[i], duplicates: item.records.length - added[i] });
    });
  }

  private report(items: Item[], added: number[], started: number): void {
    if (!this.observer) return;
    const committed = performance.now();
    const records = items.reduce((n, i) => n + i.records.length, 0);
    const stored = added.reduce((n, a) => n + a, 0);
    this.observer.onCommit({
      batches: items.length,
      records,
      added: stored,
      duplicates: records - stored,
      commitMs: committed - started,
      waitsMs: items.map((i) => committed - i.submittedAt),
    });
  }

  /** Commits what is pending and refuses further batches. */
  async close(): Promise<void> {
    this.closed = true;
    while (this.flushing || this.queue.length > 0) {
      this.startFlush();
      await this.flushing;
    }
  }
}
