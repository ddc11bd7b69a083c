import Database from 'better-sqlite3';
import { MIGRATIONS } from './migrations.js';

export type Db = Database.Database;
export type Statement = Database.Statement;

export interface OpenDatabaseOptions {
  /** SQLite file path, or ':memory:'. */
  path: string;
}

/**
 * The cloud's one door to better-sqlite3: opens the file in WAL mode (readers never block the
 * ingest writer) and applies pending migrations in order, tracked by `PRAGMA user_version`.
 */
export function openDatabase(options: OpenDatabaseOptions): Db {
  const db = new Database(options.path);
  db.pragma('journal_mode = WAL');
  // NORMAL is durable across application crashes in WAL mode; only an OS crash can lose
  // the last transactions, which the agents' outboxes resend (ingest is idempotent).
  db.pragma('synchronous = NORMAL');
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 5000');
  // 64 MiB page cache (default 2 MiB): telemetry inserts land all over the (device, seq) tree,
  // 1,000 devices at a time, and a small cache turns that into page reads on every commit.
  db.pragma('cache_size = -65536');
  // PostgreSQL's bit_or, which the fleet health query uses on either backend.
  db.aggregate('fleetml_bit_or', { start: 0, step: (acc: number, bits: number) => acc | bits });
  migrate(db);
  return db;
}

function migrate(db: Db): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  for (let version = current; version < MIGRATIONS.length; version++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[version]);
      db.pragma(`user_version = ${version + 1}`);
    })();
  }
}
