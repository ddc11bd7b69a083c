import type { SketchWire } from '../../../shared/sketch.js';
import type { Db } from '../store/db.js';
import type { ServingAccumulator } from './serving-accumulator.js';
import type { ServingRow } from './serving-summary.js';

/**
 * Real-traffic rows into the SQLite file, inside the ingest queue's synchronous transaction:
 * each aggregate merged with the stored row (a resend never reaches here: ingest only passes
 * newly inserted records). PostgreSQL's counterpart is store/pg-device-rollups.ts.
 */
export class SqliteServingWriter {
  private readonly select;
  private readonly upsert;
  private readonly deleteOld;

  constructor(db: Db) {
    this.select = db.prepare(
      'SELECT * FROM serving_rollup WHERE resolution = ? AND bucket_start = ? AND device_id = ? AND model_name = ? AND version = ?',
    );
    this.upsert = db.prepare(
      `INSERT OR REPLACE INTO serving_rollup
         (resolution, bucket_start, device_id, model_name, version, model_id, requests, errors, total, queue, compute)
       VALUES (@resolution, @bucket_start, @device_id, @model_name, @version, @model_id, @requests, @errors, @total, @queue, @compute)`,
    );
    this.deleteOld = db.prepare('DELETE FROM serving_rollup WHERE resolution = ? AND bucket_start < ?');
  }

  /** Adds a flush's aggregates to the stored rows (inside the ingest transaction). */
  write(acc: ServingAccumulator): void {
    for (const a of acc.pending.values()) {
      const old = this.select.get(a.resolution, a.bucketStart, a.deviceId, a.model, a.version) as
        | ServingRow
        | undefined;
      if (old) {
        a.requests += old.requests;
        a.errors += old.errors;
        a.total.mergeWire(JSON.parse(old.total) as SketchWire);
        a.queue.mergeWire(JSON.parse(old.queue) as SketchWire);
        a.compute.mergeWire(JSON.parse(old.compute) as SketchWire);
      }
      this.upsert.run({
        resolution: a.resolution,
        bucket_start: a.bucketStart,
        device_id: a.deviceId,
        model_name: a.model,
        version: a.version,
        model_id: a.modelId || old?.model_id || '',
        requests: a.requests,
        errors: a.errors,
        total: JSON.stringify(a.total.toWire()),
        queue: JSON.stringify(a.queue.toWire()),
        compute: JSON.stringify(a.compute.toWire()),
      });
    }
  }

  deleteBefore(resolution: number, beforeMs: number): number {
    return this.deleteOld.run(resolution, beforeMs).changes;
  }
}
