import { FleetError, toFleetError } from '../../../shared/errors/index.js';
import type { TelemetryRecord } from '../../../shared/protocol/index.js';
import { DEFAULT_MONITORING_OPTIONS, type MonitoringOptions } from '../monitoring/options.js';
import { bucketTime, RollupAccumulator, type RollupStore } from '../monitoring/rollups.js';
import { ServingAccumulator, type SqliteServingWriter } from '../monitoring/serving.js';
import type { Db } from '../store/db.js';
import type { SqliteTelemetryWriter } from './sqlite-records.js';

export interface IngestResult {
  /** Records stored by this call. */
  added: number;
  /** Records already stored (a resend after a lost ack). */
  duplicates: number;
}

/** What the MQTT router hands telemetry batches to. */
export interface TelemetryIngest {
  /** Resolves once the batch's records are committed; only then may the device be acknowledged. */
  submit(deviceId: string, records: TelemetryRecord[]): Promise<IngestResult>;
}

/** Told about every commit and refusal (Prometheus metrics). */
export interface IngestObserver {
  onCommit(info: {
    batches: number;
    records: number;
    added: number;
    duplicates: number;
    commitMs: number;
    /** Per batch: ms from submit to commit. */
    waitsMs: number[];
  }): void;
  onRefused(code: string, records: number): void;
}

export interface IngestQueueDeps {
  db: Db;
  /** Raw records into the SQLite file. */
  records: SqliteTelemetryWriter;
  rollups: RollupStore;
  /** Real-traffic sketches from the agents' inference services (records' `serving`). */
  serving?: SqliteServingWriter;
  options?: Pick<
    MonitoringOptions,
    'ingestMaxDelayMs' | 'ingestMaxRecords' | 'ingestMaxPendingRecords' | 'maxBackfillMs' | 'maxFutureSkewMs'
  >;
  observer?: IngestObserver;
}

interface Item {
  deviceId: string;
  records: TelemetryRecord[];
  submittedAt: number;
  resolve: (result: IngestResult) => void;
  reject: (error: unknown) => void;
}

/**
 * Group commit for telemetry into SQLite (PostgreSQL's: store/pg-ingest.ts). Batches from many devices wait at most `ingestMaxDelayMs` (or
 * until `ingestMaxRecords` are pending) and are then written in ONE transaction: raw rows
 * (INSERT OR IGNORE on (device, seq)), their minute/hour rollups and the devices' last-seen
 * time. Each submit resolves only after that transaction committed, so the ack the router then
 * publishes never covers an uncommitted record. If the transaction fails, its batches are
 * retried one transaction each, and a batch that still fails is rejected (no ack: the agent
 * resends it, dedupe makes that safe).
 *
 * A transaction costs far more than a row, so committing 100 batches at once instead of one by
 * one is where the throughput comes from (scripts/bench/ingest.ts measures both).
 */
export class IngestQueue implements TelemetryIngest {
  private readonly o: NonNullable<IngestQueueDeps['options']>;
  private queue: Item[] = [];
  private pendingRecords = 0;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  private readonly touch;
  private readonly commit: (items: Item[]) => IngestResult[];
  readonly stats = { batches: 0, records: 0, added: 0, duplicates: 0, commits: 0, refused: 0 };

  constructor(private readonly deps: IngestQueueDeps) {
    this.o = deps.options ?? DEFAULT_MONITORING_OPTIONS;
    this.touch = deps.db.prepare(
      'UPDATE devices SET last_seen_at = ? WHERE id = ? AND (last_seen_at IS NULL OR last_seen_at < ?)',
    );
    this.commit = deps.db.transaction((items: Item[]) => this.write(items));
  }

  get pending(): number {
    return this.pendingRecords;
  }

  submit(deviceId: string, records: TelemetryRecord[]): Promise<IngestResult> {
    if (this.closed) return Promise.reject(new FleetError('INGEST_FAILED', 'the ingest queue is closed'));
    if (this.pendingRecords + records.length > this.o.ingestMaxPendingRecords) {
      this.stats.refused += records.length;
      this.deps.observer?.onRefused('INGEST_OVERLOADED', records.length);
      return Promise.reject(
        new FleetError('INGEST_OVERLOADED', `ingest queue full (${this.pendingRecords} records pending)`, {
          deviceId,
        }),
      );
    }
    return new Promise<IngestResult>((resolve, reject) => {
      this.queue.push({ deviceId, records, submittedAt: performance.now(), resolve, reject });
      this.pendingRecords += records.length;
      if (this.pendingRecords >= this.o.ingestMaxRecords) this.flush();
      else this.timer ??= setTimeout(() => this.flush(), this.o.ingestMaxDelayMs);
    });
  }

  /** Commits what is pending now (synchronously: better-sqlite3 is synchronous). */
  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    while (this.queue.length > 0) {
      // Take whole batches up to the record limit; a single huge batch still goes alone.
      let take = 0;
      let records = 0;
      while (
        take < this.queue.length &&
        (take === 0 || records + this.queue[take].records.length <= this.o.ingestMaxRecords)
      ) {
        records += this.queue[take].records.length;
        take++;
      }
      const items = this.queue.splice(0, take);
      this.pendingRecords -= records;
      this.commitItems(items, records);
    }
  }

  /** Flushes and refuses further batches. */
  close(): void {
    this.flush();
    this.closed = true;
  }

  private commitItems(items: Item[], records: number): void {
    const started = performance.now();
    let results: IngestResult[];
    try {
      results = this.commit(items);
    } catch (error) {
      // One bad batch must not sink its flush-mates: retry them one transaction each.
      if (items.length > 1) {
        for (const item of items) this.commitItems([item], item.records.length);
        return;
      }
      const cause = toFleetError(error);
      this.stats.refused += records;
      this.deps.observer?.onRefused('INGEST_FAILED', records);
      const failure = new FleetError('INGEST_FAILED', `telemetry commit failed: ${cause.message}`, {
        cause: cause.code,
      });
      for (const item of items) item.reject(failure);
      return;
    }
    const committed = performance.now();
    let added = 0;
    let duplicates = 0;
    for (const r of results) {
      added += r.added;
      duplicates += r.duplicates;
    }
    this.stats.batches += items.length;
    this.stats.records += records;
    this.stats.added += added;
    this.stats.duplicates += duplicates;
    this.stats.commits++;
    this.deps.observer?.onCommit({
      batches: items.length,
      records,
      added,
      duplicates,
      commitMs: committed - started,
      waitsMs: items.map((item) => committed - item.submittedAt),
    });
    for (let i = 0; i < items.length; i++) items[i].resolve(results[i]);
  }

  /** The body of the one transaction per flush. */
  private write(items: Item[]): IngestResult[] {
    const accumulator = new RollupAccumulator();
    const serving = new ServingAccumulator();
    const now = Date.now();
    const receivedAt = new Date(now).toISOString();
    const lastSeen = new Set<string>();
    const results = items.map((item) => {
      let added = 0;
      for (const record of item.records) {
        if (!this.deps.records.insert(item.deviceId, record, receivedAt)) continue;
        added++;
        // Only new records reach the rollups: a resend must not count twice.
        const at = bucketTime(record, now, this.o);
        accumulator.add(item.deviceId, record, at);
        if (record.serving) serving.add(item.deviceId, record, at);
      }
      lastSeen.add(item.deviceId);
      return { added, duplicates: item.records.length - added };
    });
    this.deps.rollups.write(accumulator);
    this.deps.serving?.write(serving);
    for (const deviceId of lastSeen) this.touch.run(receivedAt, deviceId, receivedAt);
    return results;
  }
}
