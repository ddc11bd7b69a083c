import { randomBytes } from 'node:crypto';
import pg from 'pg';

/** The database .ci/run prepares (scripts/ci/postgres.sh); override with FLEETML_TEST_POSTGRES. */
export const TEST_POSTGRES =
  process.env.FLEETML_TEST_POSTGRES ?? 'postgres://fleetml:fleetml@127.0.0.1:5432/fleetml_test';

/**
 * Why the PostgreSQL tests cannot run here, or null when they can. In CI (CI=true) they never
 * skip: .ci/run starts PostgreSQL, so an unreachable server is a failure, not a skip.
 */
export async function postgresUnavailable(): Promise<string | null> {
  if (process.env.CI) return null;
  const client = new pg.Client({ connectionString: TEST_POSTGRES, connectionTimeoutMillis: 3000 });
  try {
    await client.connect();
    await client.end();
    return null;
  } catch (error) {
    return `PostgreSQL not reachable at ${TEST_POSTGRES.replace(/:[^:@/]*@/, ':***@')} (${(error as Error).message}); run scripts/ci/postgres.sh`;
  }
}

/** A new empty database for one test file; drop() removes it. */
export async function freshDatabase(): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `fleetml_t_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: TEST_POSTGRES });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(TEST_POSTGRES);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      const c = new pg.Client({ connectionString: TEST_POSTGRES });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}
