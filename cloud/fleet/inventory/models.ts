import { randomUUID } from 'node:crypto';
import { FleetError } from '../../../shared/errors/index.js';
import { describeOnnx, type TensorSpec } from '../../compression/index.js';
import type { ArtifactStore } from '../delivery/artifacts.js';
import type { Db } from '../store/db.js';

export type { TensorSpec };

export interface ModelRecord {
  id: string;
  name: string;
  variant: string;
  sha256: string;
  size: number;
  inputs: TensorSpec[];
  outputs: TensorSpec[];
  sourceModelId: string | null;
  profile: string | null;
  metrics: Record<string, unknown> | null;
  createdAt: string;
}

interface ModelRow {
  id: string;
  name: string;
  variant: string;
  sha256: string;
  size: number;
  inputs: string;
  outputs: string;
  source_model_id: string | null;
  profile: string | null;
  metrics: string | null;
  created_at: string;
}

function toRecord(row: ModelRow): ModelRecord {
  return {
    id: row.id,
    name: row.name,
    variant: row.variant,
    sha256: row.sha256,
    size: row.size,
    inputs: JSON.parse(row.inputs),
    outputs: JSON.parse(row.outputs),
    sourceModelId: row.source_model_id,
    profile: row.profile,
    metrics: row.metrics ? JSON.parse(row.metrics) : null,
    createdAt: row.created_at,
  };
}

export { describeOnnx };

/** Registered models and their variants; the bytes live in the content-addressed store. */
export class ModelRegistry {
  constructor(
    private readonly db: Db,
    private readonly store: ArtifactStore,
    /** Runs once per newly registered model (the cloud computes its golden set there). */
    private readonly onRegistered?: (model: ModelRecord, bytes: Uint8Array) => Promise<unknown>,
  ) {}

  async add(
    bytes: Uint8Array,
    meta: {
      name: string;
      variant?: string;
      sourceModelId?: string;
      profile?: string;
      metrics?: Record<string, unknown>;
    },
  ): Promise<ModelRecord> {
    const { inputs, outputs } = describeOnnx(bytes);
    const { sha256, size } = await this.store.put(bytes);
    const variant = meta.variant ?? 'fp32';
    const existing = this.db
      .prepare('SELECT * FROM models WHERE sha256 = ? AND name = ? AND variant = ?')
      .get(sha256, meta.name, variant) as ModelRow | undefined;
    if (existing) return toRecord(existing);
    const id = `m-${randomUUID().slice(0, 8)}`;
    this.db
      .prepare(
        `INSERT INTO models (id, name, variant, sha256, size, inputs, outputs, source_model_id, profile, metrics, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        id,
        meta.name,
        variant,
        sha256,
        size,
        JSON.stringify(inputs),
        JSON.stringify(outputs),
        meta.sourceModelId ?? null,
        meta.profile ?? null,
        meta.metrics ? JSON.stringify(meta.metrics) : null,
        new Date().toISOString(),
      );
    const model = this.get(id);
    await this.onRegistered?.(model, bytes);
    return model;
  }

  find(idOrName: string): ModelRecord | undefined {
    const row = (this.db.prepare('SELECT * FROM models WHERE id = ?').get(idOrName) ??
      this.db
        .prepare('SELECT * FROM models WHERE name = ? ORDER BY created_at DESC LIMIT 1')
        .get(idOrName)) as ModelRow | undefined;
    return row ? toRecord(row) : undefined;
  }

  get(idOrName: string): ModelRecord {
    const model = this.find(idOrName);
    if (!model) throw new FleetError('NOT_FOUND', `no model ${idOrName}`, { model: idOrName });
    return model;
  }

  /** Replaces a model's measured metrics (e.g. the original's, from a compression report). */
  setMetrics(id: string, metrics: Record<string, unknown>): void {
    this.db.prepare('UPDATE models SET metrics = ? WHERE id = ?').run(JSON.stringify(metrics), id);
  }

  list(): ModelRecord[] {
    return (this.db.prepare('SELECT * FROM models ORDER BY created_at, id').all() as ModelRow[]).map(
      toRecord,
    );
  }
}
