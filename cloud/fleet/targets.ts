import { FleetError } from '../../shared/errors/index.js';
import { deviceTopic, encodeJson, type Manifest, type TargetState } from '../../shared/protocol/index.js';
import type { Db } from '../store/db.js';
import type { ModelRecord } from './models.js';

/** Signs a manifest; returns null when the fleet runs without a signing key. */
export type ManifestSigner = (manifest: Manifest) => string | null;

export interface TargetPublisher {
  publish(topic: string, payload: Buffer, options?: { retain?: boolean; qos?: 0 | 1 }): Promise<void>;
}

export interface TargetServiceOptions {
  /** Block size for artifact transfer in bytes; default 64 KiB (below every broker's limit). */
  blockSize?: number;
  /** Manifest lifetime in seconds; default 30 days. null = never expires. */
  manifestTtlSeconds?: number | null;
  sign?: ManifestSigner;
}

export const DEFAULT_TARGET_OPTIONS = { blockSize: 64 * 1024, manifestTtlSeconds: 30 * 24 * 3600 };

/**
 * Desired state per device. The cloud never commands a device: it publishes a retained,
 * versioned target state and the agent converges on it. Versions only grow, so a replayed or
 * reordered message is recognisably stale.
 */
export class TargetService {
  private readonly options: Required<Omit<TargetServiceOptions, 'sign'>> & { sign?: ManifestSigner };

  constructor(
    private readonly db: Db,
    private readonly publisher: TargetPublisher,
    options: TargetServiceOptions = {},
  ) {
    this.options = { ...DEFAULT_TARGET_OPTIONS, ...options } as typeof this.options;
  }

  current(deviceId: string): TargetState | undefined {
    const row = this.db.prepare('SELECT payload FROM targets WHERE device_id = ?').get(deviceId) as
      | { payload: string }
      | undefined;
    return row ? (JSON.parse(row.payload) as TargetState) : undefined;
  }

  /** Sets (and publishes) a device's target model; null clears it. Returns the new state. */
  async setModel(deviceId: string, model: ModelRecord | null): Promise<TargetState> {
    const previous = this.current(deviceId);
    const version = (previous?.version ?? 0) + 1;
    const issuedAt = new Date().toISOString();
    let targetModel: TargetState['model'] = null;
    if (model) {
      const manifest = this.manifestFor(model, version, issuedAt);
      targetModel = { manifest, signature: this.options.sign?.(manifest) ?? null };
    }
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

  private manifestFor(model: ModelRecord, version: number, issuedAt: string): Manifest {
    if (model.size <= 0) throw new FleetError('INPUT_INVALID', `model ${model.id} is empty`);
    const ttl = this.options.manifestTtlSeconds;
    return {
      modelId: model.id,
      name: model.name,
      variant: model.variant,
      version,
      sha256: model.sha256,
      size: model.size,
      blockSize: this.options.blockSize,
      profile: model.profile,
      inputs: model.inputs,
      outputs: model.outputs,
      golden: null,
      issuedAt,
      expiresAt: ttl === null ? null : new Date(Date.parse(issuedAt) + ttl * 1000).toISOString(),
    };
  }
}
