/**
 * Fleet migrations of the telemetry side (entries 0200_telemetry_… of fleet-migrations.ts),
 * shared by SQLite and PostgreSQL. Append-only, like the rest.
 */
import { type ColumnDefinitionBuilder, type Kysely, PostgresAdapter } from 'kysely';

// biome-ignore lint/suspicious/noExplicitAny: the schema builder works on any database shape
type AnyDb = Kysely<any>;
type ColumnBuilder = ColumnDefinitionBuilder;

const isPostgres = (db: AnyDb) => db.getExecutor().adapter instanceof PostgresAdapter;

/** An auto-numbered primary key: SQLite's rowid alias, PostgreSQL's identity column. */
function idColumn(db: AnyDb) {
  return isPostgres(db)
    ? (c: ColumnBuilder) => c.generatedByDefaultAsIdentity().primaryKey()
    : (c: ColumnBuilder) => c.primaryKey();
}

/**
 * 0200: benchmark reports (with the input shapes of SQLite migration 10) and events, as
 * migrations.ts created them in SQLite; there this adds only the index that serves a device's
 * latest events. Raw telemetry and its rollups on PostgreSQL are pg-migrations.ts's: they are
 * written by store/pg-telemetry.ts, whose pool applies those.
 */
export async function telemetryBaseline(db: AnyDb): Promise<void> {
  await db.schema
    .createTable('bench_reports')
    .ifNotExists()
    .addColumn('id', 'integer', idColumn(db))
    .addColumn('device_id', 'text', (c) => c.notNull())
    .addColumn('model_id', 'text', (c) => c.notNull())
    .addColumn('sha256', 'text', (c) => c.notNull())
    .addColumn('ep', 'text', (c) => c.notNull())
    .addColumn('runs', 'integer', (c) => c.notNull())
    .addColumn('p50_ms', 'double precision', (c) => c.notNull())
    .addColumn('p90_ms', 'double precision', (c) => c.notNull())
    .addColumn('p99_ms', 'double precision', (c) => c.notNull())
    .addColumn('max_ms', 'double precision', (c) => c.notNull())
    .addColumn('mean_ms', 'double precision', (c) => c.notNull())
    .addColumn('throughput', 'double precision', (c) => c.notNull())
    .addColumn('load_ms', 'double precision', (c) => c.notNull())
    .addColumn('at', 'text', (c) => c.notNull())
    .addColumn('received_at', 'text', (c) => c.notNull())
    .addColumn('input_shapes', 'text')
    .execute();
  await db.schema
    .createIndex('bench_by_device')
    .ifNotExists()
    .on('bench_reports')
    .columns(['device_id', 'id'])
    .execute();
  await db.schema
    .createTable('events')
    .ifNotExists()
    .addColumn('id', 'integer', idColumn(db))
    .addColumn('device_id', 'text')
    .addColumn('level', 'text', (c) => c.notNull())
    .addColumn('code', 'text', (c) => c.notNull())
    .addColumn('message', 'text', (c) => c.notNull())
    .addColumn('at', 'text', (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex('events_by_device')
    .ifNotExists()
    .on('events')
    .columns(['device_id', 'id'])
    .execute();
}
