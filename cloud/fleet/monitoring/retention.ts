import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import type { Db } from '../store/db.js';
import { type MonitoringOptions, RESOLUTION } from './options.js';
import type { RollupStore } from './rollups.js';
import type { SqliteServingWriter } from './serving-writer.js';

export interface RetentionResult {
  rawDeleted: number;
  minuteDeleted: number;
  hourDeleted: number;
}

export type RetentionOptions = Pick<
  MonitoringOptions,
  'rawRetentionMs' | 'minuteRetentionMs' | 'hourRetentionMs'
>;

/**
 * Deletes raw telemetry older than `rawRetentionMs` (by arrival time) and rollups past their
 * own retention, in the SQLite file (PostgreSQL's retention is store/pg-telemetry.ts sweep). Raw rows are deleted one device at a time through the (device_id,
 * received_at) index, yielding to the event loop in between: better-sqlite3 is synchronous,
 * and one big DELETE would stall ingest (and its acks) for as long as it runs.
 */
export class RetentionSweeper {
  private readonly deleteRaw;

  constructor(
    db: Db,
    /** Every device id, from the fleet store (the devices table may live elsewhere). */
    private readonly deviceIds: () => Promise<string[]>,
    private readonly rollups: RollupStore,
    private readonly o: RetentionOptions,
    /** Real-traffic rows follow the same minute/hour retention. */
    private readonly serving?: SqliteServingWriter,
  ) {
    this.deleteRaw = db.prepare('DELETE FROM telemetry WHERE device_id = ? AND received_at < ?');
  }

  async sweep(nowMs = Date.now()): Promise<RetentionResult> {
    const rawBefore = new Date(nowMs - this.o.rawRetentionMs).toISOString();
    let rawDeleted = 0;
    const ids = await this.deviceIds();
    for (let i = 0; i < ids.length; i++) {
      rawDeleted += this.deleteRaw.run(ids[i], rawBefore).changes;
      if (i % 50 === 49) await yieldToEventLoop();
    }
    const minuteDeleted = this.rollups.prune(RESOLUTION.minute, nowMs - this.o.minuteRetentionMs);
    await yieldToEventLoop();
    const hourDeleted = this.rollups.prune(RESOLUTION.hour, nowMs - this.o.hourRetentionMs);
    this.serving?.deleteBefore(RESOLUTION.minute, nowMs - this.o.minuteRetentionMs);
    this.serving?.deleteBefore(RESOLUTION.hour, nowMs - this.o.hourRetentionMs);
    return { rawDeleted, minuteDeleted, hourDeleted };
  }
}
