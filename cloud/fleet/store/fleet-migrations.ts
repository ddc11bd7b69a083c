/**
 * Migrations of the fleet tables shared by SQLite and PostgreSQL, written once with Kysely's
 * schema builder and run by its Migrator (tracked in `kysely_migration`; on PostgreSQL under
 * an advisory lock, so replicas starting together apply each once). Append-only, like
 * migrations.ts: never edit a released entry.
 *
 * SQLite databases already hold these tables from migrations.ts (1–9): the baseline creates
 * them only where they do not exist (a new PostgreSQL database), with the same columns.
 */
import type { Kysely, Migration } from 'kysely';
import { deliveryTables } from './delivery-migrations.js';
import type { MigrationSchema } from './schema.js';
import { telemetryBaseline } from './telemetry-migrations.js';

// biome-ignore lint/suspicious/noExplicitAny: the schema builder works on any database shape
type AnyDb = Kysely<any>;

/** 0001: devices, tokens, models and what references models, as migrations.ts left them at 9. */
async function baseline(db: AnyDb): Promise<void> {
  await db.schema
    .createTable('devices')
    .ifNotExists()
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('secret_hash', 'text', (c) => c.notNull())
    .addColumn('profile', 'text')
    .addColumn('hardware', 'text', (c) => c.notNull())
    .addColumn('tags', 'text', (c) => c.notNull().defaultTo('[]'))
    .addColumn('enrolled_at', 'text', (c) => c.notNull())
    .addColumn('last_seen_at', 'text')
    .addColumn('online', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('phase', 'text')
    .addColumn('active_model_id', 'text')
    .addColumn('active_sha256', 'text')
    .addColumn('applied_version', 'integer')
    .addColumn('last_error', 'text')
    .addColumn('revoked', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('broker_hash', 'text')
    .execute();
  await db.schema
    .createTable('enroll_tokens')
    .ifNotExists()
    .addColumn('token_hash', 'text', (c) => c.primaryKey())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('expires_at', 'text', (c) => c.notNull())
    .addColumn('uses_left', 'integer', (c) => c.notNull())
    .addColumn('revoked', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
  await db.schema
    .createTable('api_tokens')
    .ifNotExists()
    .addColumn('token_hash', 'text', (c) => c.primaryKey())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('role', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('revoked', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
  await db.schema
    .createTable('models')
    .ifNotExists()
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('variant', 'text', (c) => c.notNull())
    .addColumn('sha256', 'text', (c) => c.notNull())
    .addColumn('size', 'bigint', (c) => c.notNull())
    .addColumn('inputs', 'text', (c) => c.notNull())
    .addColumn('outputs', 'text', (c) => c.notNull())
    .addColumn('source_model_id', 'text')
    .addColumn('profile', 'text')
    .addColumn('metrics', 'text')
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('serving_shapes', 'text')
    .addColumn('release', 'integer')
    .execute();
  await baselineDelivery(db);
  await baselineRollouts(db);
}

async function baselineDelivery(db: AnyDb): Promise<void> {
  await db.schema
    .createTable('targets')
    .ifNotExists()
    .addColumn('device_id', 'text', (c) => c.primaryKey().references('devices.id'))
    .addColumn('version', 'integer', (c) => c.notNull())
    .addColumn('model_id', 'text', (c) => c.references('models.id'))
    .addColumn('payload', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .execute();
  await db.schema
    .createTable('manifests')
    .ifNotExists()
    .addColumn('model_id', 'text', (c) => c.primaryKey().references('models.id'))
    .addColumn('body', 'text', (c) => c.notNull())
    .addColumn('signature', 'text')
    .addColumn('created_at', 'text', (c) => c.notNull())
    .execute();
  await db.schema
    .createTable('model_releases')
    .ifNotExists()
    .addColumn('model_id', 'text', (c) => c.primaryKey().references('models.id'))
    .addColumn('lineage', 'text', (c) => c.notNull())
    .addColumn('release', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex('model_releases_by_lineage')
    .ifNotExists()
    .on('model_releases')
    .columns(['lineage', 'release'])
    .execute();
  await db.schema
    .createTable('goldens')
    .ifNotExists()
    .addColumn('model_id', 'text', (c) => c.primaryKey().references('models.id'))
    .addColumn('sha256', 'text', (c) => c.notNull())
    .addColumn('size', 'bigint', (c) => c.notNull())
    .addColumn('max_abs', 'double precision', (c) => c.notNull())
    .addColumn('min_cosine', 'double precision', (c) => c.notNull())
    .addColumn('cases', 'integer', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .execute();
}

async function baselineRollouts(db: AnyDb): Promise<void> {
  await db.schema
    .createTable('rollouts')
    .ifNotExists()
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('model_id', 'text', (c) => c.notNull().references('models.id'))
    .addColumn('selector', 'text', (c) => c.notNull())
    .addColumn('policy', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('reason', 'text')
    .addColumn('current_wave', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('created_by', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .execute();
  await db.schema
    .createTable('rollout_devices')
    .ifNotExists()
    .addColumn('rollout_id', 'text', (c) => c.notNull().references('rollouts.id'))
    .addColumn('device_id', 'text', (c) => c.notNull().references('devices.id'))
    .addColumn('wave', 'integer', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('target_version', 'integer')
    .addColumn('previous_model_id', 'text')
    .addColumn('started_at', 'text')
    .addColumn('finished_at', 'text')
    .addColumn('reason', 'text')
    .addColumn('p50_ms', 'double precision')
    .addColumn('p99_ms', 'double precision')
    .addColumn('rolled_back', 'integer', (c) => c.notNull().defaultTo(0))
    .addPrimaryKeyConstraint('rollout_devices_pk', ['rollout_id', 'device_id'])
    .execute();
  await db.schema.createIndex('rollouts_by_status').ifNotExists().on('rollouts').column('status').execute();
}

/**
 * 0002: one source of truth for releases. Issue 14 numbered releases per name in `models.release`
 * (1, 2, …; variants share their original's) and issue 12 kept a second, timestamp-based number
 * per model in `model_releases` for manifests, assigned at first deployment, so the two could
 * disagree on which release is older. Now `models` holds both, assigned together when the
 * original is registered: `release` for people, `release_stamp` (milliseconds, above every earlier
 * stamp of the name, so it keeps growing after a restore from backup) for manifests and the
 * agents' monotonic check. Stamps already delivered never go down, and stamps grow with the
 * release ordinal.
 */
async function reconcileReleases(db: AnyDb): Promise<void> {
  await db.schema.alterTable('models').addColumn('release_stamp', 'bigint').execute();
  const typed = db as Kysely<MigrationSchema>;
  const models = await typed
    .selectFrom('models')
    .select(['id', 'name', 'release', 'created_at'])
    .orderBy('name')
    .orderBy('release')
    .orderBy('created_at')
    .execute();
  const delivered = new Map(
    (await typed.selectFrom('model_releases').select(['model_id', 'release']).execute()).map((r) => [
      r.model_id,
      Number(r.release),
    ]),
  );
  for (const [id, stamp] of releaseStamps(models, delivered)) {
    await typed.updateTable('models').set({ release_stamp: stamp }).where('id', '=', id).execute();
  }
  await db.schema.dropTable('model_releases').execute();
}

/**
 * Stamps per model: per name, release groups in ascending order, each stamp the largest of the
 * group's delivered stamps, the previous group's stamp + 1 and the group's registration time.
 */
export function releaseStamps(
  models: Array<{ id: string; name: string; release: number | null; created_at: string }>,
  delivered: Map<string, number>,
): Map<string, number> {
  const groups = new Map<string, Array<{ id: string; created_at: string }>>();
  for (const m of models) {
    const key = JSON.stringify([m.name, m.release ?? 1]);
    groups.set(key, [...(groups.get(key) ?? []), m]);
  }
  const ordered = [...groups.entries()]
    .map(([key, members]) => ({ key: JSON.parse(key) as [string, number], members }))
    .sort((a, b) => (a.key[0] === b.key[0] ? a.key[1] - b.key[1] : a.key[0] < b.key[0] ? -1 : 1));
  const stamps = new Map<string, number>();
  const previous = new Map<string, number>();
  for (const { key, members } of ordered) {
    const registered = Math.min(...members.map((m) => Date.parse(m.created_at) || 1));
    const stamp = Math.max(
      registered,
      (previous.get(key[0]) ?? 0) + 1,
      ...members.map((m) => delivered.get(m.id) ?? 0),
    );
    previous.set(key[0], stamp);
    for (const m of members) stamps.set(m.id, stamp);
  }
  return stamps;
}

/**
 * 0300: enrollments by request id (identity/enroll-requests.ts). An agent whose reply was lost
 * sends its request again; the row makes that a replay of the first answer instead of a second
 * use of the token and an orphan device. The salt (with the token, which only the requester
 * holds) derives the device secret again; the secret itself is stored nowhere.
 */
async function enrollRequests(db: AnyDb): Promise<void> {
  await db.schema
    .createTable('enroll_requests')
    .ifNotExists()
    .addColumn('token_hash', 'text', (c) => c.notNull())
    .addColumn('request_id', 'text', (c) => c.notNull())
    .addColumn('device_id', 'text', (c) => c.notNull())
    .addColumn('salt', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('enroll_requests_pk', ['token_hash', 'request_id'])
    .execute();
}

/**
 * 0400: the device time of the state report a device row shows. Reports of one device reach
 * different replicas (shared subscriptions) and may be retried while the store is down: an
 * older report applied after a newer one would show a device as still installing.
 */
async function deviceStateOrder(db: AnyDb): Promise<void> {
  await db.schema.alterTable('devices').addColumn('state_at', 'text').execute();
}

/** By name, applied in name order. */
export const FLEET_MIGRATIONS: Record<string, Migration> = {
  '0001_fleet_baseline': { up: baseline },
  '0002_release_stamps': { up: reconcileReleases },
  '0100_delivery_tables': { up: deliveryTables },
  '0200_telemetry_baseline': { up: telemetryBaseline },
  '0300_enroll_requests': { up: enrollRequests },
  '0400_device_state_order': { up: deviceStateOrder },
};
