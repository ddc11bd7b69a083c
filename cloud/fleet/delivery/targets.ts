import { FleetError } from '../../../shared/errors/index.js';
import {
  deviceTopic,
  encodeJson,
  type TargetState,
  targetStateSchema,
} from '../../../shared/protocol/index.js';
import type { DeviceRepository } from '../inventory/devices.js';
import type { ModelRecord, ModelRegistry } from '../inventory/models.js';
import { type FleetDb, type FleetStore, inTransaction } from '../store/kysely.js';
import { lockForTransaction } from '../store/locks.js';
import { currentEpoch } from './epoch.js';
import type { ManifestService } from './manifests.js';

export interface TargetPublisher {
  publish(topic: string, payload: Buffer, options?: { retain?: boolean; qos?: 0 | 1 }): Promise<void>;
}

/** Signs a target state as a whole (fleet key online, or a delegated target key offline). */
export type TargetSigner = (target: Omit<TargetState, 'signature'>) => TargetState;

export interface TargetServiceOptions {
  sign: TargetSigner;
  /** The device registry: a revoked device gets no target. */
  devices: Pick<DeviceRepository, 'find'>;
  /** Release stamps per model name (a lower one than the name's highest is a rollback). */
  models: Pick<ModelRegistry, 'highestReleaseStamp'>;
}

/**
 * Desired state per device. The cloud never commands a device: it publishes a retained,
 * versioned target state and the agent converges on it. Each state is signed as a whole and
 * names its device, the cloud's epoch and a sequence (`version`) that only grows within the
 * epoch, so a replayed, reordered or forged message is recognisably not the cloud's newest.
 * The model inside carries its release manifest, itself signed by the fleet key. Replicas
 * sharing the database issue each device's sequence in turn (an advisory lock per device on
 * PostgreSQL) under the newest epoch any of them began.
 */
export class TargetService {
  private readonly db: FleetDb;

  constructor(
    private readonly fleet: FleetStore,
    private readonly publisher: TargetPublisher,
    private readonly manifests: ManifestService,
    private readonly o: TargetServiceOptions,
  ) {
    this.db = fleet.db;
  }

  /** The epoch new targets are signed under (delivery/epoch.ts). */
  currentEpoch(): Promise<number> {
    return currentEpoch(this.db);
  }

  async current(deviceId: string): Promise<TargetState | undefined> {
    const row = await this.db
      .selectFrom('targets')
      .select('payload')
      .where('device_id', '=', deviceId)
      .executeTakeFirst();
    return row ? (JSON.parse(row.payload) as TargetState) : undefined;
  }

  /** Fails (CONFLICT) when the model cannot be deployed yet, e.g. its manifest awaits an offline signature. */
  async checkDeployable(model: ModelRecord): Promise<void> {
    await this.manifests.forDeployment(model);
  }

  /**
   * Sets (and publishes) a device's target model; null clears it. Returns the new state. Going
   * back to an older release of the model's lineage is signed as an explicit rollback. A
   * revoked (or unknown) device gets nothing: DEVICE_REVOKED (NOT_FOUND).
   */
  async setModel(deviceId: string, model: ModelRecord | null): Promise<TargetState> {
    const device = await this.o.devices.find(deviceId);
    if (!device) throw new FleetError('NOT_FOUND', `no device ${deviceId}`, { deviceId });
    if (device.revoked)
      throw new FleetError('DEVICE_REVOKED', `device ${deviceId} is revoked: it gets no target`, {
        deviceId,
      });
    const targetModel = model ? await this.manifests.forDeployment(model) : null;
    const release = targetModel?.manifest.release;
    const rollback =
      model !== null &&
      release !== undefined &&
      release < (await this.o.models.highestReleaseStamp(model.name));
    const state = await inTransaction(this.fleet, async (tx) => {
      await lockForTransaction(tx, 'target', deviceId);
      const previous = await tx.db
        .selectFrom('targets')
        .select('version')
        .where('device_id', '=', deviceId)
        .executeTakeFirst();
      const signed = this.sign({
        v: 1,
        deviceId,
        version: (previous?.version ?? 0) + 1,
        epoch: await currentEpoch(tx.db),
        ...(rollback ? { rollback: true } : {}),
        model: targetModel,
        issuedAt: new Date().toISOString(),
      });
      await storeTarget(tx.db, signed, model?.id ?? null);
      return signed;
    });
    await this.publish(state);
    return state;
  }

  /**
   * Publishes every stored target again (after a restart of the cloud or of the broker), signed
   * anew under this run's epoch: a device that saw higher sequences from a database since
   * restored from a backup follows the new epoch instead of ignoring its targets. Revoked
   * devices' targets stay unpublished.
   *
   * A target issued while this runs (here, or by another replica) may be read as its older
   * version and that one published after the newer: the broker would keep the older as the
   * retained target, and a device that subscribes later would never see the newer. So the
   * targets are read again once every publish was acknowledged, and those that changed are
   * published again: a target stored after that read is published by its issuer after it.
   */
  async republishAll(): Promise<number> {
    const epoch = await this.currentEpoch();
    const published = new Map<string, number>();
    const rows = await this.storedTargets();
    for (const row of rows) published.set(row.deviceId, await this.republish(row.payload, epoch));
    for (const row of await this.storedTargets()) {
      if (published.get(row.deviceId) !== row.version) await this.republish(row.payload, epoch);
    }
    return rows.length;
  }

  /**
   * Publishes one device's stored target again, same version: the device answers with its state
   * and its last benchmark (a rollout asks when it has heard nothing decisive for a while).
   * False when the device has no target or is revoked.
   */
  async republishOne(deviceId: string): Promise<boolean> {
    const row = await this.db
      .selectFrom('targets as t')
      .innerJoin('devices as d', 'd.id', 't.device_id')
      .select('t.payload')
      .where('t.device_id', '=', deviceId)
      .where('d.revoked', '=', 0)
      .executeTakeFirst();
    if (!row) return false;
    await this.republish(row.payload, await this.currentEpoch());
    return true;
  }

  private async storedTargets(): Promise<Array<{ deviceId: string; version: number; payload: string }>> {
    return this.db
      .selectFrom('targets as t')
      .innerJoin('devices as d', 'd.id', 't.device_id')
      .select(['t.device_id as deviceId', 't.version', 't.payload'])
      .where('d.revoked', '=', 0)
      .execute();
  }

  /** Publishes one stored target (re-signed under the current epoch if needed); its version. */
  private async republish(payload: string, epoch: number): Promise<number> {
    let state = JSON.parse(payload) as TargetState;
    if (state.epoch !== epoch) {
      const { signature: _old, signer: _signer, ...rest } = state;
      state = this.sign({ ...rest, epoch });
      // Only over the same sequence: a replica that issued a newer target meanwhile keeps it.
      await this.db
        .updateTable('targets')
        .set({ payload: JSON.stringify(state), updated_at: state.issuedAt })
        .where('device_id', '=', state.deviceId)
        .where('version', '=', state.version)
        .execute();
    }
    await this.publish(state);
    return state.version;
  }

  /** Signs and checks against the protocol schema: what cannot be carried is refused here. */
  private sign(unsigned: Omit<TargetState, 'signature'>): TargetState {
    const state = this.o.sign(unsigned);
    const parsed = targetStateSchema.safeParse(state);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new FleetError(
        'MANIFEST_INVALID',
        `the target of device ${state.deviceId} does not fit the protocol: ${issue?.path.join('.')}: ${issue?.message}`,
        { deviceId: state.deviceId, path: issue?.path.join('.') },
      );
    }
    return state;
  }

  private async publish(state: TargetState): Promise<void> {
    await this.publisher.publish(deviceTopic(state.deviceId, 'target'), encodeJson(state), {
      retain: true,
      qos: 1,
    });
  }
}

async function storeTarget(db: FleetDb, state: TargetState, modelId: string | null): Promise<void> {
  const row = {
    version: state.version,
    model_id: modelId,
    payload: JSON.stringify(state),
    updated_at: state.issuedAt,
  };
  await db
    .insertInto('targets')
    .values({ device_id: state.deviceId, ...row })
    .onConflict((c) => c.column('device_id').doUpdateSet(row))
    .execute();
}
