/**
 * Runs a suite against every fleet store backend: SQLite always, PostgreSQL when the test
 * server answers (FLEETML_TEST_POSTGRES, which .ci/run provides; in CI it never skips). Each
 * open() is a new, empty store: an in-memory SQLite database, or a fresh schema in one
 * PostgreSQL database per test file.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, describe } from 'vitest';
import { type Db, openDatabase } from '../../../cloud/fleet/store/db.js';
import {
  type FleetStore,
  type OpenFleetStoreOptions,
  openFleetStore,
} from '../../../cloud/fleet/store/kysely.js';
import { freshDatabase, postgresUnavailable } from '../scale/pg.js';

export type BackendName = 'sqlite' | 'postgres';

export interface TestBackend {
  name: BackendName;
  /** A new, empty, migrated fleet store (migrateTo: stop early, to test a migration). */
  open(options?: OpenFleetStoreOptions): Promise<FleetStore>;
  /** The SQLite handle of the last store opened (SQLite only: the tables not yet on Kysely). */
  sqlite(): Db;
}

const postgresSkip = await postgresUnavailable();

function sqliteBackend(): TestBackend & { close(): Promise<void> } {
  const handles: Db[] = [];
  return {
    name: 'sqlite',
    async open(options) {
      const db = openDatabase({ path: ':memory:' });
      handles.push(db);
      return openFleetStore({ sqlite: db }, options);
    },
    sqlite() {
      const last = handles.at(-1);
      if (!last) throw new Error('open() a store first');
      return last;
    },
    async close() {
      for (const db of handles) db.close();
    },
  };
}

function postgresBackend(): TestBackend & { close(): Promise<void> } {
  let database: Promise<Awaited<ReturnType<typeof freshDatabase>>> | undefined;
  const pools: pg.Pool[] = [];
  return {
    name: 'postgres',
    async open(options) {
      database ??= freshDatabase();
      const { url } = await database;
      const schema = `s_${randomBytes(4).toString('hex')}`;
      const admin = new pg.Client({ connectionString: url });
      await admin.connect();
      await admin.query(`CREATE SCHEMA ${schema}`);
      await admin.end();
      const pool = new pg.Pool({ connectionString: url, max: 4, options: `-c search_path=${schema}` });
      pools.push(pool);
      return openFleetStore({ postgres: pool }, options);
    },
    sqlite() {
      throw new Error('not a SQLite backend');
    },
    async close() {
      for (const pool of pools) await pool.end();
      if (database !== undefined) await (await database).drop();
    },
  };
}

/** `body` once per backend, in a describe named after it (skipped PostgreSQL says why). */
export function describeEachBackend(title: string, body: (backend: TestBackend) => void): void {
  for (const name of ['sqlite', 'postgres'] as const) {
    const skip = name === 'postgres' ? postgresSkip : null;
    describe.skipIf(skip !== null)(`${title} [${name}]${skip ? ` (skipped: ${skip})` : ''}`, () => {
      const backend = name === 'sqlite' ? sqliteBackend() : postgresBackend();
      afterAll(() => backend.close());
      body(backend);
    });
  }
}
