/**
 * The cloud's one door to Kysely, the query layer that speaks both SQLite (over the
 * better-sqlite3 handle of db.ts) and PostgreSQL (over the `pg` pool of postgres.ts). Fleet
 * repositories take a FleetStore and never see which one it is.
 */
import { Kysely, type Migration, Migrator, PostgresDialect, SqliteDialect, sql } from 'kysely';
import { FleetError } from '../../../shared/errors/index.js';
import type { Db } from './db.js';
import { FLEET_MIGRATIONS } from './fleet-migrations.js';
import type { PgPool } from './postgres.js';
import type { FleetSchema } from './schema.js';

export type FleetDb = Kysely<FleetSchema>;
export type FleetDialect = 'sqlite' | 'postgres';

export interface FleetStore {
  db: FleetDb;
  dialect: FleetDialect;
}

/** Where the fleet tables live: the SQLite handle, or a PostgreSQL pool. */
export type FleetStoreSource = { sqlite: Db } | { postgres: PgPool };

export interface OpenFleetStoreOptions {
  /** Stop after this migration (tests of a migration); default: apply all. */
  migrateTo?: string;
}

/**
 * Wraps the source in Kysely and applies pending fleet migrations. Closing stays with the
 * source's owner (db.close(), pool.end()): destroying the Kysely instance would close the
 * handle the telemetry code shares.
 */
export async function openFleetStore(
  source: FleetStoreSource,
  options: OpenFleetStoreOptions = {},
): Promise<FleetStore> {
  const store: FleetStore =
    'sqlite' in source
      ? {
          dialect: 'sqlite',
          db: new Kysely<FleetSchema>({ dialect: new SqliteDialect({ database: source.sqlite }) }),
        }
      : {
          dialect: 'postgres',
          db: new Kysely<FleetSchema>({ dialect: new PostgresDialect({ pool: source.postgres }) }),
        };
  await migrateFleetStore(store, options.migrateTo);
  return store;
}

/** Applies pending fleet migrations (up to `to` when given); `migrations`: tests only. */
export async function migrateFleetStore(
  store: FleetStore,
  to?: string,
  migrations: Record<string, Migration> = FLEET_MIGRATIONS,
): Promise<void> {
  const migrator = new Migrator({
    db: store.db,
    provider: { getMigrations: async (): Promise<Record<string, Migration>> => migrations },
    // Kysely finds its bookkeeping tables in any schema unless told which: name the store's own
    // (the first of its search_path), so two stores in one PostgreSQL database stay apart.
    migrationTableSchema: store.dialect === 'postgres' ? await currentSchema(store) : undefined,
    // Helpers append migrations in numbered ranges (0100_delivery_…, 0200_telemetry_…) that can
    // land in either order: a database that applied a later-numbered one first still takes the other.
    allowUnorderedMigrations: true,
  });
  const { error, results } = to ? await migrator.migrateTo(to) : await migrator.migrateToLatest();
  if (error) {
    const failed = results?.find((r) => r.status === 'Error')?.migrationName ?? 'setup';
    throw new FleetError('CONFIG_INVALID', `fleet migration ${failed} failed: ${(error as Error).message}`);
  }
}

async function currentSchema(store: FleetStore): Promise<string> {
  const { rows } = await sql<{ schema: string }>`SELECT current_schema() AS schema`.execute(store.db);
  return rows[0].schema;
}

/** A count or bigint column as a number (PostgreSQL returns int8 as a string). */
export function toNumber(value: number | string | bigint | null | undefined): number {
  return value === null || value === undefined ? 0 : Number(value);
}

/**
 * Runs `fn` in one transaction, with repositories built on the FleetStore it is given. On
 * SQLite the transaction holds the one connection until `fn` ends: keep it to the store's own
 * queries (no network waits inside).
 */
export function inTransaction<T>(store: FleetStore, fn: (tx: FleetStore) => Promise<T>): Promise<T> {
  return store.db.transaction().execute((trx) => fn({ db: trx, dialect: store.dialect }));
}
