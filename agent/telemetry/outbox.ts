/**
 * The agent's one door to better-sqlite3: a bounded, durable outbox for telemetry. Records get
 * their sequence number when they enter (AUTOINCREMENT never reuses one, even after the table
 * empties), leave in order after the broker acknowledged them, and survive restarts and power
 * loss (WAL, synchronous=NORMAL). When full, the oldest records are dropped and counted.
 */
import Database from 'better-sqlite3';
import type { TelemetryRecord } from '../../shared/protocol/index.js';

export type OutboxRecord = TelemetryRecord;

const DROPPED_KEY = 'droppedTotal';

export interface OutboxOptions {
  /** SQLite file path (':memory:' for tests). */
  path: string;
  /** Most records kept; oldest dropped beyond. Default 10 000. */
  maxRecords?: number;
}

export class TelemetryOutbox {
  private readonly db: Database.Database;
  private readonly maxRecords: number;
  private readonly insert: Database.Statement;
  private readonly selectBatch: Database.Statement;
  private readonly deleteRange: Database.Statement;
  private readonly getMeta: Database.Statement;
  private readonly setMeta: Database.Statement;
  private readonly countRows: Database.Statement;
  private readonly trim: Database.Statement;
  /** Records dropped because the outbox was full, since the outbox file was created (persisted). */
  dropped = 0;

  constructor(options: OutboxOptions) {
    this.maxRecords = options.maxRecords ?? 10_000;
    this.db = new Database(options.path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.exec(
      'CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL)',
    );
    this.db.exec('CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)');
    this.insert = this.db.prepare('INSERT INTO outbox (body) VALUES (?)');
    this.selectBatch = this.db.prepare('SELECT seq, body FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?');
    this.deleteRange = this.db.prepare('DELETE FROM outbox WHERE seq BETWEEN ? AND ?');
    this.getMeta = this.db.prepare('SELECT value FROM meta WHERE key = ?');
    this.setMeta = this.db.prepare('INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)');
    this.countRows = this.db.prepare('SELECT COUNT(*) AS n FROM outbox');
    this.trim = this.db.prepare(
      'DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox ORDER BY seq LIMIT max(0, (SELECT COUNT(*) FROM outbox) - ?))',
    );
    this.dropped = Number(this.meta(DROPPED_KEY) ?? 0);
  }

  /**
   * Stores a record; returns its sequence number. When full, the oldest records make room first,
   * and the record carries the running drop count (`droppedTotal`), so the cloud learns of
   * the loss from the very record that caused it.
   */
  append(record: Omit<OutboxRecord, 'seq'>): number {
    return this.db.transaction(() => {
      const removed = this.trim.run(this.maxRecords - 1).changes;
      if (removed > 0) {
        this.dropped += removed;
        this.setMeta.run(DROPPED_KEY, String(this.dropped));
      }
      const body = this.dropped > 0 ? { ...record, droppedTotal: this.dropped } : record;
      return Number(this.insert.run(JSON.stringify(body)).lastInsertRowid);
    })();
  }

  /** Oldest records with seq > `after` first, at most `limit`. */
  peek(limit: number, after = 0): OutboxRecord[] {
    const rows = this.selectBatch.all(after, limit) as { seq: number; body: string }[];
    return rows.map((r) => ({ ...(JSON.parse(r.body) as Omit<OutboxRecord, 'seq'>), seq: r.seq }));
  }

  /** Forgets records `from`..`to` inclusive (the cloud stored them). */
  ack(from: number, to: number): void {
    this.deleteRange.run(from, to);
  }

  /** Small persistent flags (e.g. whether this cloud sends telemetry acks). */
  meta(key: string): string | undefined {
    return (this.getMeta.get(key) as { value: string } | undefined)?.value;
  }

  setMetaValue(key: string, value: string): void {
    this.setMeta.run(key, value);
  }

  get size(): number {
    return (this.countRows.get() as { n: number }).n;
  }

  close(): void {
    this.db.close();
  }
}
