import { deviceTopic, encodeJson, type TargetState } from '../../../shared/protocol/index.js';
import type { ModelRecord } from '../inventory/models.js';
import type { Db } from '../store/db.js';
import type { ManifestService } from './manifests.js';

export interface TargetPublisher {
  publish(topic: string, payload: Buffer, options?: { retain?: boolean; qos?: 0 | 1 }): Promise<void>;
}

/**
 * Desired state per device. The cloud never commands a device: it publishes a retained,
 * versioned target state and the agent converges on it. Versions only grow, so a replayed or
 * reordered message is recognisably stale. The model inside carries its release manifest,
 * signed by the fleet key.
 */
export class TargetService {
  constructor(
    private readonly db: Db,
    private readonly publisher: TargetPublisher,
    private readonly manifests: ManifestService,
  ) {}

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

  /** Sets (and publishes) a device's target model; null clears it. Returns the new state. */
  async setModel(deviceId: string, model: ModelRecord | null): Promise<TargetState> {
    const targetModel = model ? this.manifests.forDeployment(model) : null;
    const previous = this.current(deviceId);
    const version = (previous?.version ?? 0) + 1;
    const issuedAt = new Date().toISOString();
    const state: TargetState = { v: 1, deviceId, version, model: targetModel, issuedAt };
    this.db
      .prepare(
        `INSERT INTO targets (device_id, version, model_id, payload, updated_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT(device_id) DO UPDATE SET version = excluded.version, model_id = excluded.model_id,
           payload = excluded.payload, updated_at = excluded.updated_at`,
      )
      .run(deviceId, version, model?.id ?? null, JSON.stringify(state), issuedAt);
    await this.publish(state);
    return state;
  }

  /** Publishes every stored target again (after a restart of the cloud or of the broker). */
  async republishAll(): Promise<number> {
    const rows = this.db.prepare('SELECT payload FROM targets').all() as Array<{ payload: string }>;
    for (const row of rows) await this.publish(JSON.parse(row.payload));
    return rows.length;
  }

  private async publish(state: TargetState): Promise<void> {
    await this.publisher.publish(deviceTopic(state.deviceId, 'target'), encodeJson(state), {
      retain: true,
      qos: 1,
    });
  }
}
