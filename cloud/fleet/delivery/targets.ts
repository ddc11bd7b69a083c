import { FleetError } from '../../../shared/errors/index.js';
import {
  deviceTopic,
  encodeJson,
  type TargetState,
  targetStateSchema,
} from '../../../shared/protocol/index.js';
import type { DeviceRepository } from '../inventory/devices.js';
import type { ModelRecord } from '../inventory/models.js';
import type { Db } from '../store/db.js';
import type { ManifestService } from './manifests.js';

export interface TargetPublisher {
  publish(topic: string, payload: Buffer, options?: { retain?: boolean; qos?: 0 | 1 }): Promise<void>;
}

/** Signs a target state as a whole (fleet key online, or a delegated target key offline). */
export type TargetSigner = (target: Omit<TargetState, 'signature'>) => TargetState;

export interface TargetServiceOptions {
  /** This run's epoch (delivery/epoch.ts). */
  epoch: number;
  sign: TargetSigner;
  /** The device registry: a revoked device gets no target. */
  devices: Pick<DeviceRepository, 'find'>;
}

/**
 * Desired state per device. The cloud never commands a device: it publishes a retained,
 * versioned target state and the agent converges on it. Each state is signed as a whole and
 * names its device, the cloud's epoch and a sequence (`version`) that only grows within the
 * epoch, so a replayed, reordered or forged message is recognisably not the cloud's newest.
 * The model inside carries its release manifest, itself signed by the fleet key.
 */
export class TargetService {
  constructor(
    private readonly db: Db,
    private readonly publisher: TargetPublisher,
    private readonly manifests: ManifestService,
    private readonly o: TargetServiceOptions,
  ) {}

  get epoch(): number {
    return this.o.epoch;
  }

  current(deviceId: string): TargetState | undefined {
    const row = this.db.prepare('SELECT payload FROM targets WHERE device_id = ?').get(deviceId) as
      | { payload: string }
      | undefined;
    return row ? (JSON.parse(row.payload) as TargetState) : undefined;
  }

  /** Fails (CONFLICT) when the model cannot be deployed yet, e.g. its manifest awaits an offline signature. */
  checkDeployable(model: ModelRecord): void {
    this.manifests.forDeployment(model);
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
    const targetModel = model ? this.manifests.forDeployment(model) : null;
    const previous = this.current(deviceId);
    const version = (previous?.version ?? 0) + 1;
    const issuedAt = new Date().toISOString();
    const release = targetModel?.manifest.release;
    const rollback =
      model !== null && release !== undefined && release < this.manifests.highestRelease(model.name);
    const state = this.sign({
      v: 1,
      deviceId,
      version,
      epoch: this.o.epoch,
      ...(rollback ? { rollback: true } : {}),
      model: targetModel,
      issuedAt,
    });
    this.store(state, model?.id ?? null);
    await this.publish(state);
    return state;
  }

  /**
   * Publishes every stored target again (after a restart of the cloud or of the broker), signed
   * anew under this run's epoch: a device that saw higher sequences from a database since
   * restored from a backup follows the new epoch instead of ignoring its targets. Revoked
   * devices' targets stay unpublished.
   */
  async republishAll(): Promise<number> {
    const rows = this.db
      .prepare(
        'SELECT t.payload, t.model_id FROM targets t JOIN devices d ON d.id = t.device_id WHERE d.revoked = 0',
      )
      .all() as Array<{
      payload: string;
      model_id: string | null;
    }>;
    for (const row of rows) {
      let state = JSON.parse(row.payload) as TargetState;
      if (state.epoch !== this.o.epoch) {
        const { signature: _old, signer: _signer, ...rest } = state;
        state = this.sign({ ...rest, epoch: this.o.epoch });
        this.store(state, row.model_id);
      }
      await this.publish(state);
    }
    return rows.length;
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

  private store(state: TargetState, modelId: string | null): void {
    this.db
      .prepare(
        `INSERT INTO targets (device_id, version, model_id, payload, updated_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT(device_id) DO UPDATE SET version = excluded.version, model_id = excluded.model_id,
           payload = excluded.payload, updated_at = excluded.updated_at`,
      )
      .run(state.deviceId, state.version, modelId, JSON.stringify(state), state.issuedAt);
  }

  private async publish(state: TargetState): Promise<void> {
    await this.publisher.publish(deviceTopic(state.deviceId, 'target'), encodeJson(state), {
      retain: true,
      qos: 1,
    });
  }
}
