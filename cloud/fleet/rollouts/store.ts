import type { Db } from '../store/db.js';
import type { Execution, ExecutionStatus, Rollout, RolloutPolicy, RolloutStatus, Selector } from './types.js';

interface RolloutRow {
  id: string;
  model_id: string;
  selector: string;
  policy: string;
  status: RolloutStatus;
  reason: string | null;
  current_wave: number;
  created_by: string;
  created_at: string;
  updated_at: string;
}

interface ExecutionRow {
  rollout_id: string;
  device_id: string;
  wave: number;
  status: ExecutionStatus;
  target_version: number | null;
  previous_model_id: string | null;
  started_at: string | null;
  finished_at: string | null;
  reason: string | null;
  p50_ms: number | null;
  p99_ms: number | null;
  rolled_back: number;
}

const toRollout = (r: RolloutRow): Rollout => ({
  id: r.id,
  modelId: r.model_id,
  selector: JSON.parse(r.selector),
  policy: JSON.parse(r.policy),
  status: r.status,
  reason: r.reason,
  currentWave: r.current_wave,
  createdBy: r.created_by,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

const toExecution = (r: ExecutionRow): Execution => ({
  rolloutId: r.rollout_id,
  deviceId: r.device_id,
  wave: r.wave,
  status: r.status,
  targetVersion: r.target_version,
  previousModelId: r.previous_model_id,
  startedAt: r.started_at,
  finishedAt: r.finished_at,
  reason: r.reason,
  p50Ms: r.p50_ms,
  p99Ms: r.p99_ms,
  rolledBack: r.rolled_back === 1,
});

/** Persistence of rollouts and their device executions: the engine's only state. */
export class RolloutStore {
  constructor(private readonly db: Db) {}

  create(input: {
    id: string;
    modelId: string;
    selector: Selector;
    policy: RolloutPolicy;
    createdBy: string;
    waves: string[][];
    previousModel: (deviceId: string) => string | null;
  }): Rollout {
    const now = new Date().toISOString();
    this.db.transaction(() => {
      this.db
        .prepare(
          `INSERT INTO rollouts (id, model_id, selector, policy, status, current_wave, created_by, created_at, updated_at)
           VALUES (?, ?, ?, ?, 'running', 0, ?, ?, ?)`,
        )
        .run(
          input.id,
          input.modelId,
          JSON.stringify(input.selector),
          JSON.stringify(input.policy),
          input.createdBy,
          now,
          now,
        );
      const insert = this.db.prepare(
        `INSERT INTO rollout_devices (rollout_id, device_id, wave, status, previous_model_id) VALUES (?, ?, ?, 'queued', ?)`,
      );
      input.waves.forEach((wave, index) => {
        for (const deviceId of wave) insert.run(input.id, deviceId, index, input.previousModel(deviceId));
      });
    })();
    return this.get(input.id)!;
  }

  get(id: string): Rollout | undefined {
    const row = this.db.prepare('SELECT * FROM rollouts WHERE id = ?').get(id) as RolloutRow | undefined;
    return row ? toRollout(row) : undefined;
  }

  list(limit = 100): Rollout[] {
    return (
      this.db
        .prepare('SELECT * FROM rollouts ORDER BY created_at DESC, id DESC LIMIT ?')
        .all(limit) as RolloutRow[]
    ).map(toRollout);
  }

  active(): Rollout[] {
    return (
      this.db
        .prepare(`SELECT * FROM rollouts WHERE status IN ('running', 'paused') ORDER BY created_at`)
        .all() as RolloutRow[]
    ).map(toRollout);
  }

  setStatus(id: string, status: RolloutStatus, reason: string | null = null): void {
    this.db
      .prepare('UPDATE rollouts SET status = ?, reason = COALESCE(?, reason), updated_at = ? WHERE id = ?')
      .run(status, reason, new Date().toISOString(), id);
  }

  setWave(id: string, wave: number): void {
    this.db
      .prepare('UPDATE rollouts SET current_wave = ?, updated_at = ? WHERE id = ?')
      .run(wave, new Date().toISOString(), id);
  }

  executions(rolloutId: string): Execution[] {
    return (
      this.db
        .prepare('SELECT * FROM rollout_devices WHERE rollout_id = ? ORDER BY wave, device_id')
        .all(rolloutId) as ExecutionRow[]
    ).map(toExecution);
  }

  start(rolloutId: string, deviceId: string, targetVersion: number): void {
    this.db
      .prepare(
        `UPDATE rollout_devices SET status = 'in_progress', target_version = ?, started_at = ? WHERE rollout_id = ? AND device_id = ?`,
      )
      .run(targetVersion, new Date().toISOString(), rolloutId, deviceId);
  }

  finish(
    rolloutId: string,
    deviceId: string,
    status: ExecutionStatus,
    details: { reason?: string | null; p50Ms?: number | null; p99Ms?: number | null } = {},
  ): void {
    this.db
      .prepare(
        `UPDATE rollout_devices SET status = ?, finished_at = ?, reason = ?, p50_ms = ?, p99_ms = ?
         WHERE rollout_id = ? AND device_id = ?`,
      )
      .run(
        status,
        new Date().toISOString(),
        details.reason ?? null,
        details.p50Ms ?? null,
        details.p99Ms ?? null,
        rolloutId,
        deviceId,
      );
  }

  markRolledBack(rolloutId: string, deviceId: string): void {
    this.db
      .prepare('UPDATE rollout_devices SET rolled_back = 1 WHERE rollout_id = ? AND device_id = ?')
      .run(rolloutId, deviceId);
  }

  /** Devices started in the last minute, across all rollouts (for the rate limit). */
  startedSince(rolloutId: string, sinceIso: string): number {
    const row = this.db
      .prepare('SELECT count(*) n FROM rollout_devices WHERE rollout_id = ? AND started_at >= ?')
      .get(rolloutId, sinceIso) as { n: number };
    return row.n;
  }
}
