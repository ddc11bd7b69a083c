import pg from 'pg';
import { FleetError } from '../../../shared/errors/index.js';
import { PG_MIGRATIONS } from './pg-migrations.js';

export type PgPool = pg.Pool;
export type PgClient = pg.Client;

/** Arbitrary fixed key of the advisory lock that serialises migrations across replicas. */
const MIGRATION_LOCK = 0x666c6d01;

export function isPostgresUrl(url: string | undefined): url is string {
  return !!url && /^postgres(ql)?:\/\//.test(url);
}

/**
 * The cloud's one door to the `pg` package: a pool on the URL, with pending PostgreSQL
 * migrations applied (under an advisory lock, so replicas starting together apply each once).
 */
export async function openPostgres(url: string, options: { max?: number } = {}): Promise<PgPool> {
  if (!isPostgresUrl(url)) throw new FleetError('CONFIG_INVALID', `not a postgres:// URL: ${url}`);
  const pool = new pg.Pool({ connectionString: url, max: options.max ?? 8, connectionTimeoutMillis: 10_000 });
  // An idle client's error (server restart) must not crash the process; the pool replaces it.
  pool.on('error', () => {});
  // Nor may a checked-out one's: pg-pool listens on idle clients only, and a client whose
  // session the server ends between two queries of a transaction (or of a Kysely call) emits
  // 'error' with nobody listening, which kills the process. Its query fails on its own; the
  // pool drops the broken client when it is released.
  pool.on('connect', (client) => client.on('error', () => {}));
  try {
    await migratePostgres(pool);
  } catch (error) {
    await pool.end().catch(() => {});
    throw new FleetError('CONFIG_INVALID', `PostgreSQL at ${redact(url)}: ${(error as Error).message}`);
  }
  return pool;
}

/** A dedicated connection (leader election holds its advisory lock on one). */
export function newPostgresClient(url: string): PgClient {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000, keepAlive: true });
  client.on('error', () => {}); // the owner notices through its next query
  return client;
}

/** Applies pending PostgreSQL migrations (pg-migrations.ts) to the pool's schema. */
export async function migratePostgres(pool: PgPool): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
    await client.query('CREATE TABLE IF NOT EXISTS fleetml_pg_schema (version integer NOT NULL)');
    const { rows } = await client.query<{ version: number }>(
      'SELECT max(version) version FROM fleetml_pg_schema',
    );
    for (let version = rows[0]?.version ?? 0; version < PG_MIGRATIONS.length; version++) {
      await client.query('BEGIN');
      try {
        await client.query(PG_MIGRATIONS[version]);
        await client.query('INSERT INTO fleetml_pg_schema (version) VALUES ($1)', [version + 1]);
        await client.query('COMMIT');
      } catch (error) {
        await client.query('ROLLBACK');
        throw error;
      }
    }
  } finally {
    await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]).catch(() => {});
    client.release();
  }
}

/** The URL without its password, for messages. */
export function redact(url: string): string {
  return url.replace(/\/\/([^:/@]+):[^@]*@/, '//$1:***@');
}
