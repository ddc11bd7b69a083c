import type { TelemetryRecord } from '../../../shared/protocol/index.js';
import type { Db } from '../store/db.js';
import type { TelemetryIngest } from './ingest-queue.js';

/**
 * Raw telemetry records into SQLite, the write side of the SQLite backend (PostgreSQL's is
 * store/pg-telemetry.ts). It stays on better-sqlite3's synchronous prepared statement: the
 * ingest queue writes thousands of records, their rollups and last-seen times in one
 * synchronous transaction per flush, which is where SQLite's ingest rate comes from
 * (scripts/bench/ingest.ts). Inserts are idempotent on (device, seq), so a batch resent after a
 * lost acknowledgement is stored once.
 */
export class SqliteTelemetryWriter {
  private readonly insertRecord;

  constructor(private readonly db: Db) {
    this.insertRecord = db.prepare(
      `INSERT OR IGNORE INTO telemetry (device_id, seq, at, received_at, cpu_load, mem_used, mem_total, temp_c, model_id,
        lat_count, p50_ms, p90_ms, p99_ms, max_ms, mean_ms)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
  }

  /** Stores a batch in one transaction; returns how many records were new. */
  ingest(deviceId: string, records: TelemetryRecord[], receivedAt = new Date().toISOString()): number {
    return this.db.transaction(() => {
      let added = 0;
      for (const r of records) if (this.insert(deviceId, r, receivedAt)) added++;
      return added;
    })();
  }

  /**
   * Inserts one record without a transaction of its own (the ingest queue wraps many batches in
   * one); false when (device, seq) is already stored.
   */
  insert(deviceId: string, r: TelemetryRecord, receivedAt: string): boolean {
    const l = r.latency;
    return (
      this.insertRecord.run(
        deviceId,
        r.seq,
        r.at,
        receivedAt,
        r.cpuLoad,
        r.memUsedBytes,
        r.memTotalBytes,
        r.tempC,
        r.modelId,
        l?.count ?? null,
        l?.p50Ms ?? null,
        l?.p90Ms ?? null,
        l?.p99Ms ?? null,
        l?.maxMs ?? null,
        l?.meanMs ?? null,
      ).changes > 0
    );
  }
}

/**
 * Telemetry straight into SQLite, each batch its own transaction, without rollups: for tools
 * and tests that run the router without the monitor's group-commit queue.
 */
export function directIngest(
  writer: SqliteTelemetryWriter,
  touch: (deviceId: string, at: string) => Promise<void>,
): TelemetryIngest {
  return {
    async submit(deviceId, records) {
      const added = writer.ingest(deviceId, records);
      await touch(deviceId, new Date().toISOString());
      return { added, duplicates: records.length - added };
    },
  };
}
