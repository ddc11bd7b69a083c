import type { Selectable } from 'kysely';
import { type FleetDb, type FleetStore, inTransaction, toNumber } from '../store/kysely.js';
import type { RolloutDevicesTable, RolloutsTable } from '../store/schema.js';
import type { Execution, ExecutionStatus, Rollout, RolloutPolicy, RolloutStatus, Selector } from './types.js';

type RolloutRow = Selectable<RolloutsTable>;

type ExecutionRow = Selectable<RolloutDevicesTable>;

const toRollout = (r: RolloutRow): Rollout => ({
  id: r.id,
  modelId: r.model_id,
  selector: JSON.parse(r.selector),
  policy: JSON.parse(r.policy),
  status: r.status as RolloutStatus,
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
  status: r.status as ExecutionStatus,
  targetVersion: r.target_version,
  previousModelId: r.previous_model_id,
  startedAt: r.started_at,
  finishedAt: r.finished_at,
  reason: r.reason,
  p50Ms: r.p50_ms,
  p99Ms: r.p99_ms,
  rolledBack: Number(r.rolled_back) === 1,
});

/** Persistence of rollouts and their device executions: the engine's only state. */
export class RolloutStore {
  private readonly db: FleetDb;

  constructor(private readonly fleet: FleetStore) {
    this.db = fleet.db;
  }

  async create(input: {
    id: string;
    modelId: string;
    selector: Selector;
    policy: RolloutPolicy;
    createdBy: string;
    waves: string[][];
    previousModel: (deviceId: string) => string | null;
  }): Promise<Rollout> {
    const now = new Date().toISOString();
    const executions = input.waves.flatMap((wave, index) =>
      wave.map((deviceId) => ({
        rollout_id: input.id,
        device_id: deviceId,
        wave: index,
        status: 'queued',
        previous_model_id: input.previousModel(deviceId),
      })),
    );
    await inTransaction(this.fleet, async (tx) => {
      await tx.db
        .insertInto('rollouts')
        .values({
          id: input.id,
          model_id: input.modelId,
          selector: JSON.stringify(input.selector),
          policy: JSON.stringify(input.policy),
          status: 'running',
          created_by: input.createdBy,
          created_at: now,
          updated_at: now,
        })
        .execute();
      // In chunks: both databases cap the parameters of one statement.
      for (let i = 0; i < executions.length; i += 500) {
        await tx.db
          .insertInto('rollout_devices')
          .values(executions.slice(i, i + 500))
          .execute();
      }
    });
    return (await this.get(input.id))!;
  }

  async get(id: string): Promise<Rollout | undefined> {
    const row = await this.db.selectFrom('rollouts').selectAll().where('id', '=', id).executeTakeFirst();
    return row ? toRollout(row) : undefined;
  }

  async list(limit = 100): Promise<Rollout[]> {
    const rows = await this.db
      .selectFrom('rollouts')
      .selectAll()
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc')
      .limit(limit)
      .execute();
    return rows.map(toRollout);
  }

  async active(): Promise<Rollout[]> {
    const rows = await this.db
      .selectFrom('rollouts')
      .selectAll()
      .where('status', 'in', ['running', 'paused'])
      .orderBy('created_at')
      .execute();
    return rows.map(toRollout);
  }

  async setStatus(id: string, status: RolloutStatus, reason: string | null = null): Promise<void> {
    await this.db
      .updateTable('rollouts')
      .set((eb) => ({
        status,
        reason: eb.fn.coalesce(eb.val(reason), eb.ref('reason')),
        updated_at: new Date().toISOString(),
      }))
      .where('id', '=', id)
      .execute();
  }

  async setWave(id: string, wave: number): Promise<void> {
    await this.db
      .updateTable('rollouts')
      .set({ current_wave: wave, updated_at: new Date().toISOString() })
      .where('id', '=', id)
      .execute();
  }

  async executions(rolloutId: string): Promise<Execution[]> {
    const rows = await this.db
      .selectFrom('rollout_devices')
      .selectAll()
      .where('rollout_id', '=', rolloutId)
      .orderBy('wave')
      .orderBy('device_id')
      .execute();
    return rows.map(toExecution);
  }

  async start(rolloutId: string, deviceId: string, targetVersion: number): Promise<void> {
    await this.db
      .updateTable('rollout_devices')
      .set({ status: 'in_progress', target_version: targetVersion, started_at: new Date().toISOString() })
      .where('rollout_id', '=', rolloutId)
      .where('device_id', '=', deviceId)
      .execute();
  }

  async finish(
    rolloutId: string,
    deviceId: string,
    status: ExecutionStatus,
    details: { reason?: string | null; p50Ms?: number | null; p99Ms?: number | null } = {},
  ): Promise<void> {
    await this.db
      .updateTable('rollout_devices')
      .set({
        status,
        finished_at: new Date().toISOString(),
        reason: details.reason ?? null,
        p50_ms: details.p50Ms ?? null,
        p99_ms: details.p99Ms ?? null,
      })
      .where('rollout_id', '=', rolloutId)
      .where('device_id', '=', deviceId)
      .execute();
  }

  async markRolledBack(rolloutId: string, deviceId: string): Promise<void> {
    await this.db
      .updateTable('rollout_devices')
      .set({ rolled_back: 1 })
      .where('rollout_id', '=', rolloutId)
      .where('device_id', '=', deviceId)
      .execute();
  }

  /** Devices of a rollout started since `sinceIso` (for the rate limit). */
  async startedSince(rolloutId: string, sinceIso: string): Promise<number> {
    const row = await this.db
      .selectFrom('rollout_devices')
      .select((eb) => eb.fn.countAll().as('n'))
      .where('rollout_id', '=', rolloutId)
      .where('started_at', '>=', sinceIso)
      .executeTakeFirst();
    return toNumber(row?.n as number | string | undefined);
  }
}
