import { FleetError } from '../../../shared/errors/index.js';
import type { HardwareFacts, StateReport } from '../../../shared/protocol/index.js';
import type { Db, Statement } from '../store/db.js';

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

interface DeviceRow {
  id: string;
  name: string;
  profile: string | null;
  hardware: string;
  tags: string;
  enrolled_at: string;
  last_seen_at: string | null;
  online: number;
  phase: string | null;
  active_model_id: string | null;
  active_sha256: string | null;
  applied_version: number | null;
  last_error: string | null;
  revoked: number;
}

function toDevice(row: DeviceRow): Device {
  return {
    id: row.id,
    name: row.name,
    profile: row.profile,
    hardware: JSON.parse(row.hardware),
    tags: JSON.parse(row.tags),
    enrolledAt: row.enrolled_at,
    lastSeenAt: row.last_seen_at,
    online: row.online === 1,
    phase: row.phase,
    activeModelId: row.active_model_id,
    activeSha256: row.active_sha256,
    appliedVersion: row.applied_version,
    lastError: row.last_error ? JSON.parse(row.last_error) : null,
    revoked: row.revoked === 1,
  };
}

/** The registry of enrolled devices and what they last reported. */
export class DeviceRepository {
  private findStatement: Statement | undefined;

  constructor(private readonly db: Db) {}

  create(input: {
    id: string;
    name: string;
    secretHash: string;
    profile: string | null;
    hardware: HardwareFacts;
  }): Device {
    this.db
      .prepare(
        'INSERT INTO devices (id, name, secret_hash, profile, hardware, enrolled_at) VALUES (?, ?, ?, ?, ?, ?)',
      )
      .run(
        input.id,
        input.name,
        input.secretHash,
        input.profile,
        JSON.stringify(input.hardware),
        new Date().toISOString(),
      );
    return this.get(input.id);
  }

  find(id: string): Device | undefined {
    // The MQTT router looks up the sender of every message: prepare once, not per call.
    this.findStatement ??= this.db.prepare('SELECT * FROM devices WHERE id = ?');
    const row = this.findStatement.get(id) as DeviceRow | undefined;
    return row ? toDevice(row) : undefined;
  }

  get(id: string): Device {
    const device = this.find(id);
    if (!device) throw new FleetError('NOT_FOUND', `no device ${id}`, { deviceId: id });
    return device;
  }

  /** The stored secret hash, for broker authentication. */
  secretHash(id: string): string | undefined {
    const row = this.db.prepare('SELECT secret_hash FROM devices WHERE id = ? AND revoked = 0').get(id) as
      | { secret_hash: string }
      | undefined;
    return row?.secret_hash;
  }

  list(): Device[] {
    return (this.db.prepare('SELECT * FROM devices ORDER BY id').all() as DeviceRow[]).map(toDevice);
  }

  setOnline(id: string, online: boolean, at: string): void {
    this.db
      .prepare('UPDATE devices SET online = ?, last_seen_at = ? WHERE id = ?')
      .run(online ? 1 : 0, at, id);
  }

  touch(id: string, at: string): void {
    this.db.prepare('UPDATE devices SET last_seen_at = ? WHERE id = ?').run(at, id);
  }

  applyState(id: string, state: StateReport): void {
    this.db
      .prepare(
        `UPDATE devices SET phase = ?, active_model_id = ?, active_sha256 = ?, applied_version = ?,
         last_error = ?, last_seen_at = ? WHERE id = ?`,
      )
      .run(
        state.phase,
        state.activeModel?.modelId ?? null,
        state.activeModel?.sha256 ?? null,
        state.targetVersion,
        state.error ? JSON.stringify(state.error) : null,
        new Date().toISOString(),
        id,
      );
  }

  setProfile(id: string, profile: string | null): void {
    this.db.prepare('UPDATE devices SET profile = ? WHERE id = ?').run(profile, id);
  }

  setTags(id: string, tags: string[]): void {
    this.db.prepare('UPDATE devices SET tags = ? WHERE id = ?').run(JSON.stringify(tags), id);
  }

  setBrokerHash(id: string, hash: string): void {
    this.db.prepare('UPDATE devices SET broker_hash = ? WHERE id = ?').run(hash, id);
  }

  /** Usernames and external-broker hashes of every device that may connect. */
  brokerCredentials(): Array<{ username: string; hash: string }> {
    return this.db
      .prepare(
        'SELECT id username, broker_hash hash FROM devices WHERE revoked = 0 AND broker_hash IS NOT NULL ORDER BY id',
      )
      .all() as Array<{ username: string; hash: string }>;
  }

  revoke(id: string): void {
    this.db.prepare('UPDATE devices SET revoked = 1, online = 0 WHERE id = ?').run(id);
  }
}
