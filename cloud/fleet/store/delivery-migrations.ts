/**
 * Fleet migrations of the delivery side (issue 17): the tables that targets, manifests and golden
 * sets (already in 0001) are used with — the cloud's epoch, the audit log, user-defined device
 * profiles, device alarms and golden-check fidelity — so that with `--database postgres://…`
 * they live in PostgreSQL too. SQLite files already hold them from migrations.ts (1, 4, 9): like
 * the baseline, each is created only where it does not exist, with the same columns.
 */
import { type Kysely, PostgresAdapter } from 'kysely';

// biome-ignore lint/suspicious/noExplicitAny: the schema builder works on any database shape
type AnyDb = Kysely<any>;

/** 0100: cloud_state, audit, profiles, device_alarms, device_fidelity. */
export async function deliveryTables(db: AnyDb): Promise<void> {
  await db.schema
    .createTable('cloud_state')
    .ifNotExists()
    .addColumn('key', 'text', (c) => c.primaryKey())
    .addColumn('value', 'text', (c) => c.notNull())
    .execute();
  // SQLite numbers `INTEGER PRIMARY KEY` rows itself; PostgreSQL needs a sequence.
  const postgres = db.getExecutor().adapter instanceof PostgresAdapter;
  await db.schema
    .createTable('audit')
    .ifNotExists()
    .addColumn('id', postgres ? 'bigserial' : 'integer', (c) => c.primaryKey())
    .addColumn('at', 'text', (c) => c.notNull())
    .addColumn('actor', 'text', (c) => c.notNull())
    .addColumn('action', 'text', (c) => c.notNull())
    .addColumn('details', 'text', (c) => c.notNull())
    .execute();
  await db.schema
    .createTable('profiles')
    .ifNotExists()
    .addColumn('name', 'text', (c) => c.primaryKey())
    .addColumn('body', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .execute();
  await deviceWatchTables(db);
}

async function deviceWatchTables(db: AnyDb): Promise<void> {
  await db.schema
    .createTable('device_alarms')
    .ifNotExists()
    .addColumn('device_id', 'text', (c) => c.notNull())
    .addColumn('code', 'text', (c) => c.notNull())
    .addColumn('message', 'text', (c) => c.notNull())
    .addColumn('count', 'integer', (c) => c.notNull())
    .addColumn('first_at', 'text', (c) => c.notNull())
    .addColumn('last_at', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('device_alarms_pk', ['device_id', 'code'])
    .execute();
  await db.schema
    .createTable('device_fidelity')
    .ifNotExists()
    .addColumn('device_id', 'text', (c) => c.primaryKey())
    .addColumn('model_id', 'text', (c) => c.notNull())
    .addColumn('sha256', 'text', (c) => c.notNull())
    .addColumn('cases', 'integer', (c) => c.notNull())
    .addColumn('cosine', 'double precision')
    .addColumn('max_abs', 'double precision', (c) => c.notNull())
    .addColumn('accuracy', 'double precision')
    .addColumn('at', 'text', (c) => c.notNull())
    .execute();
}
