import { randomUUID } from 'node:crypto';
import { FleetError } from '../../../shared/errors/index.js';
import type { ServingShapes } from '../../../shared/protocol/index.js';
import { checkServingShapes, unresolvedDimensions } from '../../../shared/serving-shape.js';
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
  /** Concrete dims each input is served at (input name -> dims); null when none was given. */
  servingShapes: ServingShapes | null;
  /** Symbolic input dims no serving shape resolves (`input:dim`): devices would guess them. */
  unresolvedDims: string[];
  /** Release of the model name this belongs to (an original upload starts the next one). */
  release: number;
}

export interface AddModelMeta {
  name: string;
  variant?: string;
  /** The original this is a variant of (its name and release are inherited). */
  sourceModelId?: string;
  profile?: string;
  metrics?: Record<string, unknown>;
  /** Serving shapes keyed by input name ('' = the only input); checked against the model. */
  servingShapes?: Record<string, number[]>;
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
  serving_shapes: string | null;
  release: number | null;
}

function toRecord(row: ModelRow): ModelRecord {
  const inputs: TensorSpec[] = JSON.parse(row.inputs);
  const servingShapes: ServingShapes | null = row.serving_shapes ? JSON.parse(row.serving_shapes) : null;
  return {
    id: row.id,
    name: row.name,
    variant: row.variant,
    sha256: row.sha256,
    size: row.size,
    inputs,
    outputs: JSON.parse(row.outputs),
    sourceModelId: row.source_model_id,
    profile: row.profile,
    metrics: row.metrics ? JSON.parse(row.metrics) : null,
    createdAt: row.created_at,
    servingShapes,
    unresolvedDims: unresolvedDimensions(inputs, servingShapes ?? {}),
    release: row.release ?? 1,
  };
}

export { describeOnnx };

/** Registered models and their variants; the bytes live in the content-addressed store. */
export class ModelRegistry {
  constructor(
    private readonly db: Db,
    private readonly store: ArtifactStore,
  ) {}

  async add(bytes: Uint8Array, meta: AddModelMeta): Promise<ModelRecord> {
    const { inputs, outputs } = describeOnnx(bytes);
    const source = meta.sourceModelId ? this.get(meta.sourceModelId) : undefined;
    if (source?.sourceModelId) {
      throw new FleetError(
        'INPUT_INVALID',
        `${source.id} is itself a variant of ${source.sourceModelId}: name the original`,
        { original: source.sourceModelId },
      );
    }
    if (source && meta.name !== source.name) {
      throw new FleetError(
        'INPUT_INVALID',
        `a variant of ${source.id} carries its name ${source.name}, not ${meta.name}`,
      );
    }
    // Variants serve at their original's shapes unless told otherwise.
    const shapes = meta.servingShapes
      ? checkServingShapes(inputs, meta.servingShapes)
      : (source?.servingShapes ?? undefined);
    const { sha256, size } = await this.store.put(bytes);
    const variant = meta.variant ?? 'fp32';
    const existing = this.db
      .prepare('SELECT * FROM models WHERE sha256 = ? AND name = ? AND variant = ?')
      .get(sha256, meta.name, variant) as ModelRow | undefined;
    if (existing) {
      if (meta.servingShapes) {
        this.db
          .prepare('UPDATE models SET serving_shapes = ? WHERE id = ?')
          .run(JSON.stringify(shapes), existing.id);
      }
      return this.get(existing.id);
    }
    const id = `m-${randomUUID().slice(0, 8)}`;
    this.db
      .prepare(
        `INSERT INTO models (id, name, variant, sha256, size, inputs, outputs, source_model_id, profile, metrics, created_at, serving_shapes, release)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        id,
        meta.name,
        variant,
        sha256,
        size,
        JSON.stringify(inputs),
        JSON.stringify(outputs),
        source?.id ?? null,
        meta.profile ?? null,
        meta.metrics ? JSON.stringify(meta.metrics) : null,
        new Date().toISOString(),
        shapes ? JSON.stringify(shapes) : null,
        source ? source.release : this.latestRelease(meta.name) + 1,
      );
    return this.get(id);
  }

  /** Highest release number of a model name; 0 when it has none. */
  latestRelease(name: string): number {
    const row = this.db.prepare('SELECT max(release) AS r FROM models WHERE name = ?').get(name) as {
      r: number | null;
    };
    return row.r ?? 0;
  }

  /** Every model of a name (originals and variants), newest release first. */
  byName(name: string): ModelRecord[] {
    return (
      this.db
        .prepare('SELECT * FROM models WHERE name = ? ORDER BY release DESC, created_at, id')
        .all(name) as ModelRow[]
    ).map(toRecord);
  }

  /**
   * Deletes a model (and its manifest). Refused while a device runs it, a target names it or a
   * rollout of it exists, and for an original that still has variants (remove those first).
   */
  remove(id: string): ModelRecord {
    const model = this.get(id);
    const variants = this.db
      .prepare('SELECT id FROM models WHERE source_model_id = ?')
      .all(model.id) as Array<{
      id: string;
    }>;
    if (variants.length > 0) {
      throw new FleetError(
        'CONFLICT',
        `${model.id} has variants (${variants.map((v) => v.id).join(', ')}): remove them first`,
        { variants: variants.map((v) => v.id) },
      );
    }
    const uses = [
      ['devices', 'SELECT count(*) AS n FROM devices WHERE active_model_id = ?'],
      ['targets', 'SELECT count(*) AS n FROM targets WHERE model_id = ?'],
      ['rollouts', 'SELECT count(*) AS n FROM rollouts WHERE model_id = ?'],
    ] as const;
    for (const [what, sql] of uses) {
      const { n } = this.db.prepare(sql).get(model.id) as { n: number };
      if (n > 0) {
        throw new FleetError('CONFLICT', `${model.id} is still used by ${n} ${what}`, { [what]: n });
      }
    }
    this.db.transaction(() => {
      this.db.prepare('DELETE FROM manifests WHERE model_id = ?').run(model.id);
      this.db.prepare('DELETE FROM models WHERE id = ?').run(model.id);
    })();
    return model;
  }

  find(idOrName: string): ModelRecord | undefined {
    const row = (this.db.prepare('SELECT * FROM models WHERE id = ?').get(idOrName) ??
      // A name alone means its latest release's original.
      this.db
        .prepare(
          'SELECT * FROM models WHERE name = ? ORDER BY source_model_id IS NULL DESC, release DESC, created_at DESC LIMIT 1',
        )
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

  /** Sets a model's serving shapes (checked against its inputs); devices get them with its next manifest. */
  setServingShapes(id: string, shapes: Record<string, number[]>): void {
    const checked = checkServingShapes(this.get(id).inputs, shapes);
    this.db.prepare('UPDATE models SET serving_shapes = ? WHERE id = ?').run(JSON.stringify(checked), id);
  }

  list(): ModelRecord[] {
    return (this.db.prepare('SELECT * FROM models ORDER BY created_at, id').all() as ModelRow[]).map(
      toRecord,
    );
  }
}
