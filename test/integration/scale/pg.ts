import { execFile, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
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
    drop: () => dropDatabase(name),
  };
}

/**
 * DROP DATABASE … WITH (FORCE), retried while the server refuses to end a session it will not
 * let this role end: an autovacuum worker visiting the new database ("must be a member of the
 * role whose process is being terminated", 42501) failed a CI run in teardown. It finishes in
 * moments; so does a session still closing (55006).
 */
async function dropDatabase(name: string): Promise<void> {
  const c = new pg.Client({ connectionString: TEST_POSTGRES });
  await c.connect();
  try {
    for (let attempt = 1; ; attempt++) {
      try {
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
        return;
      } catch (error) {
        const code = (error as { code?: string }).code;
        if (attempt >= 25 || (code !== '42501' && code !== '55006')) throw error;
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
  } finally {
    await c.end();
  }
}

/** The local cluster serving TEST_POSTGRES's port (what scripts/ci/postgres.sh starts), by `pg_lsclusters`. */
function localCluster(): { version: string; name: string } | null {
  const listed = spawnSync('pg_lsclusters', ['--no-header'], { encoding: 'utf8' });
  if (listed.status !== 0) return null;
  const port = new URL(TEST_POSTGRES).port || '5432';
  for (const line of listed.stdout.trim().split('\n')) {
    const [version, name, clusterPort] = line.split(/\s+/);
    if (version && name && clusterPort === port) return { version, name };
  }
  return null;
}

/**
 * Why this process cannot restart the local PostgreSQL server, or null when it can (root, and
 * the test server is the local cluster). A restart hits every test using that server, so only
 * the serial tests (*.serial.test.ts, run alone by vitest.serial.config.ts) do it.
 */
export function postgresRestartUnavailable(): string | null {
  if (process.getuid?.() !== 0) return 'restarting PostgreSQL needs root (pg_ctlcluster)';
  if (!['127.0.0.1', 'localhost'].includes(new URL(TEST_POSTGRES).hostname))
    return `${new URL(TEST_POSTGRES).hostname} is not this machine's PostgreSQL`;
  return localCluster()
    ? null
    : `no local PostgreSQL cluster on port ${new URL(TEST_POSTGRES).port || '5432'} (pg_lsclusters)`;
}

/** `pg_ctlcluster restart` of the local server: every connection to it is cut. Resolves when it is back. */
export async function restartPostgres(): Promise<void> {
  const cluster = localCluster();
  if (!cluster) throw new Error('no local PostgreSQL cluster to restart');
  // Asynchronously: the simulated devices of the test share this process's event loop.
  await promisify(execFile)(
    'pg_ctlcluster',
    ['--skip-systemctl-redirect', cluster.version, cluster.name, 'restart'],
    { timeout: 120_000 },
  );
  const deadline = Date.now() + 60_000;
  for (;;) {
    const client = new pg.Client({ connectionString: TEST_POSTGRES, connectionTimeoutMillis: 2000 });
    const up = await client.connect().then(
      () => client.end().then(() => true),
      () => false,
    );
    if (up) return;
    if (Date.now() > deadline) throw new Error('PostgreSQL did not come back within 60 s of a restart');
    await new Promise((r) => setTimeout(r, 200));
  }
}
