import pg from 'pg';
import { z } from 'zod';
import { FleetError } from '../../../shared/errors/index.js';
import { PG_MIGRATIONS } from './pg-migrations.js';

export type PgPool = pg.Pool;
export type PgClient = pg.Client;

/** Arbitrary fixed key of the advisory lock that serialises migrations across replicas. */
const MIGRATION_LOCK = 0x666c6d01;

export function isPostgresUrl(url: string | undefined): url is string {
  return !!url && /^postgres(ql)?:\/\//.test(url);
}

/** The pool's size and wait unless the database URL says otherwise (`?pool_max=&pool_wait_ms=`). */
export const DEFAULT_POOL: PoolSettings = { max: 8, waitMs: 10_000 };

export interface PoolSettings {
  /** Connections the pool opens at most (PostgreSQL's own max_connections bounds all replicas'). */
  max: number;
  /**
   * How long a query waits for a connection (a free one, or a new one to open) before it fails
   * with STORE_UNAVAILABLE (store/unavailable.ts).
   */
  waitMs: number;
}

/** fleetml's own query parameters of the database URL; `pg` never sees them. */
const poolParams = z.object({
  pool_max: z.coerce.number().int().min(1).max(1000).optional(),
  pool_wait_ms: z.coerce.number().int().min(1).max(600_000).optional(),
});

/**
 * The connection string for `pg` and the pool settings, from a `--database` URL such as
 * `postgres://u:p@db/fleetml?pool_max=20&pool_wait_ms=30000`. Other parameters (sslmode…) stay.
 */
export function parseDatabaseUrl(url: string): { connectionString: string; pool: PoolSettings } {
  if (!isPostgresUrl(url)) throw new FleetError('CONFIG_INVALID', `not a postgres:// URL: ${redact(url)}`);
  const parsed = urlOrNull(url);
  if (!parsed) throw new FleetError('CONFIG_INVALID', `not a valid URL: ${redact(url)}`);
  const params = poolParams.safeParse({
    pool_max: parsed.searchParams.get('pool_max') ?? undefined,
    pool_wait_ms: parsed.searchParams.get('pool_wait_ms') ?? undefined,
  });
  if (!params.success) {
    const issue = params.error.issues[0];
    throw new FleetError(
      'CONFIG_INVALID',
      `database URL ${redact(url)}: ${issue.path.join('.')}: ${issue.message} (pool_max: 1–1000 connections, pool_wait_ms: 1–600000)`,
    );
  }
  const ours = parsed.searchParams.has('pool_max') || parsed.searchParams.has('pool_wait_ms');
  parsed.searchParams.delete('pool_max');
  parsed.searchParams.delete('pool_wait_ms');
  return {
    // Untouched when it has none of ours: URL serialisation could re-encode a password.
    connectionString: ours ? parsed.toString() : url,
    pool: {
      max: params.data.pool_max ?? DEFAULT_POOL.max,
      waitMs: params.data.pool_wait_ms ?? DEFAULT_POOL.waitMs,
    },
  };
}

/**
 * The cloud's one door to the `pg` package: a pool on the URL (sized by its `pool_max` and
 * `pool_wait_ms`), with pending PostgreSQL migrations applied (under an advisory lock, so
 * replicas starting together apply each once).
 */
export async function openPostgres(url: string): Promise<PgPool> {
  const { connectionString, pool: settings } = parseDatabaseUrl(url);
  const pool = new pg.Pool({ connectionString, max: settings.max, connectionTimeoutMillis: settings.waitMs });
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
  const { connectionString } = parseDatabaseUrl(url);
  const client = new pg.Client({ connectionString, connectionTimeoutMillis: 10_000, keepAlive: true });
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

function urlOrNull(url: string): URL | null {
  try {
    return new URL(url);
  } catch {
    return null;
  }
}

/** The URL without its password, for messages. */
export function redact(url: string): string {
  return url.replace(/\/\/([^:/@]+):[^@]*@/, '//$1:***@');
}
