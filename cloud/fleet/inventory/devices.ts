import type { Selectable } from 'kysely';
import { FleetError } from '../../../shared/errors/index.js';
import type { HardwareFacts, StateReport } from '../../../shared/protocol/index.js';
import type { FleetDb, FleetStore } from '../store/kysely.js';
import type { DevicesTable } from '../store/schema.js';
import { DeviceCache } from './device-cache.js';

/**
 * How far back a device's clock may step before its reports count as new again: retried and
 * reordered reports are seconds apart, a corrected clock (no RTC, then NTP) can be far off.
 */
const STATE_CLOCK_SLACK_MS = 10 * 60_000;

export interface Device {
  id: string;
  name: string;
  profile: string | null;
  hardware: HardwareFacts;
  tags: string[];
  enrolledAt: string;
  lastSeenAt: string | null;
  online: boolean;
  phase: string | null;
  activeModelId: string | null;
  activeSha256: string | null;
  appliedVersion: number | null;
  lastError: { code: string; message: string } | null;
  revoked: boolean;
}

type DeviceRow = Selectable<DevicesTable>;

/** Ids bound in one `IN (...)` list: both databases cap the parameters of a statement. */
const IDS_PER_QUERY = 500;

function toDevice(row: DeviceRow): Device {
  return {
    id: row.id,
    name: row.name,
    profile: row.profile,
    hardware: JSON.parse(row.hardware),
    tags: JSON.parse(row.tags),
    enrolledAt: row.enrolled_at,
    lastSeenAt: row.last_seen_at,
    online: Number(row.online) === 1,
    phase: row.phase,
    activeModelId: row.active_model_id,
    activeSha256: row.active_sha256,
    appliedVersion: row.applied_version,
    lastError: row.last_error ? JSON.parse(row.last_error) : null,
    revoked: Number(row.revoked) === 1,
  };
}

/** The registry of enrolled devices and what they last reported (SQLite or PostgreSQL). */
export class DeviceRepository {
  private readonly db: FleetDb;
  private readonly recent = new DeviceCache({ find: (id) => this.find(id) });

  constructor(store: FleetStore) {
    this.db = store.db;
  }

  /**
   * The device as read at most a few seconds ago (device-cache.ts), for the per-message path
   * of device traffic: existence, revocation and profile. Changes made through this repository
   * are seen at once; `online` and reported state may lag, so read those with `find`.
   */
  findRecent(id: string): Promise<Device | undefined> {
    return this.recent.find(id);
  }

  async create(input: {
    id: string;
    name: string;
    secretHash: string;
    profile: string | null;
    hardware: HardwareFacts;
  }): Promise<Device> {
    await this.db
      .insertInto('devices')
      .values({
        id: input.id,
        name: input.name,
        secret_hash: input.secretHash,
        profile: input.profile,
        hardware: JSON.stringify(input.hardware),
        enrolled_at: new Date().toISOString(),
      })
      .execute();
    return this.get(input.id);
  }

  async find(id: string): Promise<Device | undefined> {
    const row = await this.db.selectFrom('devices').selectAll().where('id', '=', id).executeTakeFirst();
    return row ? toDevice(row) : undefined;
  }

  /** Several devices, 500 ids per query (a rollout step reads a whole wave at once). */
  async findMany(ids: readonly string[]): Promise<Map<string, Device>> {
    const found = new Map<string, Device>();
    for (let i = 0; i < ids.length; i += IDS_PER_QUERY) {
      const chunk = ids.slice(i, i + IDS_PER_QUERY);
      const rows = await this.db.selectFrom('devices').selectAll().where('id', 'in', chunk).execute();
      for (const row of rows) found.set(row.id, toDevice(row));
    }
    return found;
  }

  async get(id: string): Promise<Device> {
    const device = await this.find(id);
    if (!device) throw new FleetError('NOT_FOUND', `no device ${id}`, { deviceId: id });
    return device;
  }

  /** The stored secret hash, for broker authentication. */
  async secretHash(id: string): Promise<string | undefined> {
    const row = await this.db
      .selectFrom('devices')
      .select('secret_hash')
      .where('id', '=', id)
      .where('revoked', '=', 0)
      .executeTakeFirst();
    return row?.secret_hash;
  }

  async list(): Promise<Device[]> {
    return (await this.db.selectFrom('devices').selectAll().orderBy('id').execute()).map(toDevice);
  }

  async setOnline(id: string, online: boolean, at: string): Promise<void> {
    await this.db
      .updateTable('devices')
      .set({ online: online ? 1 : 0, last_seen_at: at })
      .where('id', '=', id)
      .execute();
  }

  async touch(id: string, at: string): Promise<void> {
    await this.touchMany([id], at);
  }

  /** Last-seen time of several devices at once (after a telemetry commit). */
  async touchMany(ids: string[], at: string): Promise<void> {
    if (ids.length === 0) return;
    await this.db.updateTable('devices').set({ last_seen_at: at }).where('id', 'in', ids).execute();
  }

  /**
   * Shows the device's reported state, unless a report the device made later is already shown
   * (reports reach replicas out of order). A stored time more than STATE_CLOCK_SLACK_MS ahead
   * counts as a clock the device has since corrected, not as a later report.
   */
  async applyState(id: string, state: StateReport): Promise<void> {
    const atMs = Date.parse(state.at);
    const at = new Date(atMs).toISOString();
    await this.db
      .updateTable('devices')
      .set({
        phase: state.phase,
        active_model_id: state.activeModel?.modelId ?? null,
        active_sha256: state.activeModel?.sha256 ?? null,
        applied_version: state.targetVersion,
        last_error: state.error ? JSON.stringify(state.error) : null,
        last_seen_at: new Date().toISOString(),
        state_at: at,
      })
      .where('id', '=', id)
      .where((eb) =>
        eb.or([
          eb('state_at', 'is', null),
          eb('state_at', '<=', at),
          eb('state_at', '>', new Date(atMs + STATE_CLOCK_SLACK_MS).toISOString()),
        ]),
      )
      .execute();
  }

  async setProfile(id: string, profile: string | null): Promise<void> {
    await this.db.updateTable('devices').set({ profile }).where('id', '=', id).execute();
    this.recent.forget(id);
  }

  async setTags(id: string, tags: string[]): Promise<void> {
    await this.db
      .updateTable('devices')
      .set({ tags: JSON.stringify(tags) })
      .where('id', '=', id)
      .execute();
    this.recent.forget(id);
  }

  async setBrokerHash(id: string, hash: string): Promise<void> {
    await this.db.updateTable('devices').set({ broker_hash: hash }).where('id', '=', id).execute();
  }

  /** Usernames and external-broker hashes of every device that may connect. */
  async brokerCredentials(): Promise<Array<{ username: string; hash: string }>> {
    const rows = await this.db
      .selectFrom('devices')
      .select(['id', 'broker_hash'])
      .where('revoked', '=', 0)
      .where('broker_hash', 'is not', null)
      .orderBy('id')
      .execute();
    return rows.map((r) => ({ username: r.id, hash: r.broker_hash as string }));
  }

  async revoke(id: string): Promise<void> {
    await this.db.updateTable('devices').set({ revoked: 1, online: 0 }).where('id', '=', id).execute();
    this.recent.forget(id);
  }
}
