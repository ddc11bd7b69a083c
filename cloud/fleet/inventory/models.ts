import { randomUUID } from 'node:crypto';
import type { Selectable } from 'kysely';
import { FleetError } from '../../../shared/errors/index.js';
import type { ServingShapes } from '../../../shared/protocol/index.js';
import { checkServingShapes, unresolvedDimensions } from '../../../shared/serving-shape.js';
import { describeOnnx, type TensorSpec } from '../../compression/index.js';
import type { ArtifactStore } from '../delivery/artifacts.js';
import { type FleetDb, type FleetStore, inTransaction, toNumber } from '../store/kysely.js';
import { lockForTransaction } from '../store/locks.js';
import type { ModelsTable } from '../store/schema.js';

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
  /**
   * The release number manifests carry (the agents' monotonic check): milliseconds when the
   * original was registered, above every earlier stamp of the name (so it keeps growing after
   * a restore from backup); variants share their original's.
   */
  releaseStamp: number;
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

type ModelRow = Selectable<ModelsTable>;

function toRecord(row: ModelRow): ModelRecord {
  const inputs: TensorSpec[] = JSON.parse(row.inputs);
  const servingShapes: ServingShapes | null = row.serving_shapes ? JSON.parse(row.serving_shapes) : null;
  return {
    id: row.id,
    name: row.name,
    variant: row.variant,
    sha256: row.sha256,
    size: toNumber(row.size),
    inputs,
    outputs: JSON.parse(row.outputs),
    sourceModelId: row.source_model_id,
    profile: row.profile,
    metrics: row.metrics ? JSON.parse(row.metrics) : null,
    createdAt: row.created_at,
    servingShapes,
    unresolvedDims: unresolvedDimensions(inputs, servingShapes ?? {}),
    release: row.release ?? 1,
    releaseStamp: toNumber(row.release_stamp),
  };
}

export { describeOnnx };

/** Registered models and their variants; the bytes live in the content-addressed store. */
export class ModelRegistry {
  private readonly db: FleetDb;

  constructor(
    private readonly fleet: FleetStore,
    private readonly store: ArtifactStore,
    /** Runs once per newly registered model (the cloud computes its golden set there). */
    private readonly onRegistered?: (model: ModelRecord, bytes: Uint8Array) => Promise<unknown>,
  ) {
    this.db = fleet.db;
  }

  async add(bytes: Uint8Array, meta: AddModelMeta): Promise<ModelRecord> {
    const { inputs, outputs } = describeOnnx(bytes);
    const source = meta.sourceModelId ? await this.get(meta.sourceModelId) : undefined;
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
    const existing = await this.db
      .selectFrom('models')
      .select('id')
      .where('sha256', '=', sha256)
      .where('name', '=', meta.name)
      .where('variant', '=', variant)
      .executeTakeFirst();
    if (existing) {
      if (meta.servingShapes) {
        await this.db
          .updateTable('models')
          .set({ serving_shapes: JSON.stringify(shapes) })
          .where('id', '=', existing.id)
          .execute();
      }
      return this.get(existing.id);
    }
    const id = `m-${randomUUID().slice(0, 8)}`;
    await inTransaction(this.fleet, async (tx) => {
      // Release and stamp are assigned together, so they order releases the same way. Replicas
      // registering releases of one name at once take turns: each reads the other's number.
      if (!source) await lockForTransaction(tx, 'release', meta.name);
      const numbers = source
        ? { release: source.release, release_stamp: source.releaseStamp }
        : await nextRelease(tx.db, meta.name);
      await tx.db
        .insertInto('models')
        .values({
          id,
          name: meta.name,
          variant,
          sha256,
          size,
          inputs: JSON.stringify(inputs),
          outputs: JSON.stringify(outputs),
          source_model_id: source?.id ?? null,
          profile: meta.profile ?? null,
          metrics: meta.metrics ? JSON.stringify(meta.metrics) : null,
          created_at: new Date().toISOString(),
          serving_shapes: shapes ? JSON.stringify(shapes) : null,
          ...numbers,
        })
        .execute();
    });
    const model = await this.get(id);
    await this.onRegistered?.(model, bytes);
    return model;
  }

  /** Highest release number of a model name; 0 when it has none. */
  async latestRelease(name: string): Promise<number> {
    return (await releaseMaxima(this.db, name)).release;
  }

  /** Highest release stamp of a model name (what manifests carry); 0 when it has none. */
  async highestReleaseStamp(name: string): Promise<number> {
    return (await releaseMaxima(this.db, name)).stamp;
  }

  /** Every model of a name (originals and variants), newest release first. */
  async byName(name: string): Promise<ModelRecord[]> {
    const rows = await this.db
      .selectFrom('models')
      .selectAll()
      .where('name', '=', name)
      .orderBy('release', 'desc')
      .orderBy('created_at')
      .orderBy('id')
      .execute();
    return rows.map(toRecord);
  }

  /**
   * Deletes a model (and its manifest). Refused while a device runs it, a target names it or a
   * rollout of it exists, and for an original that still has variants (remove those first).
   */
  async remove(id: string): Promise<ModelRecord> {
    const model = await this.get(id);
    const variants = await this.db
      .selectFrom('models')
      .select('id')
      .where('source_model_id', '=', model.id)
      .execute();
    if (variants.length > 0) {
      throw new FleetError(
        'CONFLICT',
        `${model.id} has variants (${variants.map((v) => v.id).join(', ')}): remove them first`,
        { variants: variants.map((v) => v.id) },
      );
    }
    const count = { n: this.db.fn.countAll<number | string>().as('n') };
    const uses = {
      devices: () =>
        this.db
          .selectFrom('devices')
          .select(count.n)
          .where('active_model_id', '=', model.id)
          .executeTakeFirst(),
      targets: () =>
        this.db.selectFrom('targets').select(count.n).where('model_id', '=', model.id).executeTakeFirst(),
      rollouts: () =>
        this.db.selectFrom('rollouts').select(count.n).where('model_id', '=', model.id).executeTakeFirst(),
    };
    for (const [what, query] of Object.entries(uses)) {
      const n = toNumber((await query())?.n);
      if (n > 0) {
        throw new FleetError('CONFLICT', `${model.id} is still used by ${n} ${what}`, { [what]: n });
      }
    }
    await inTransaction(this.fleet, async (tx) => {
      // Everything keyed by the model goes with it; release stamps are timestamps, so a later
      // release of the name still counts upwards without this row.
      await tx.db.deleteFrom('manifests').where('model_id', '=', model.id).execute();
      await tx.db.deleteFrom('goldens').where('model_id', '=', model.id).execute();
      await tx.db.deleteFrom('models').where('id', '=', model.id).execute();
    });
    return model;
  }

  async find(idOrName: string): Promise<ModelRecord | undefined> {
    const row =
      (await this.db.selectFrom('models').selectAll().where('id', '=', idOrName).executeTakeFirst()) ??
      // A name alone means its latest release's original.
      (await this.db
        .selectFrom('models')
        .selectAll()
        .where('name', '=', idOrName)
        .orderBy((eb) => eb('source_model_id', 'is', null), 'desc')
        .orderBy('release', 'desc')
        .orderBy('created_at', 'desc')
        .limit(1)
        .executeTakeFirst());
    return row ? toRecord(row) : undefined;
  }

  async get(idOrName: string): Promise<ModelRecord> {
    const model = await this.find(idOrName);
    if (!model) throw new FleetError('NOT_FOUND', `no model ${idOrName}`, { model: idOrName });
    return model;
  }

  /** Replaces a model's measured metrics (e.g. the original's, from a compression report). */
  async setMetrics(id: string, metrics: Record<string, unknown>): Promise<void> {
    await this.db
      .updateTable('models')
      .set({ metrics: JSON.stringify(metrics) })
      .where('id', '=', id)
      .execute();
  }

  /** Sets a model's serving shapes (checked against its inputs); devices get them with its next manifest. */
  async setServingShapes(id: string, shapes: Record<string, number[]>): Promise<void> {
    const checked = checkServingShapes((await this.get(id)).inputs, shapes);
    await this.db
      .updateTable('models')
      .set({ serving_shapes: JSON.stringify(checked) })
      .where('id', '=', id)
      .execute();
  }

  async list(): Promise<ModelRecord[]> {
    return (await this.db.selectFrom('models').selectAll().orderBy('created_at').orderBy('id').execute()).map(
      toRecord,
    );
  }
}

async function releaseMaxima(db: FleetDb, name: string): Promise<{ release: number; stamp: number }> {
  const row = await db
    .selectFrom('models')
    .select((eb) => [eb.fn.max('release').as('release'), eb.fn.max('release_stamp').as('stamp')])
    .where('name', '=', name)
    .executeTakeFirst();
  return { release: toNumber(row?.release), stamp: toNumber(row?.stamp) };
}

/** The numbers of a new original: the next ordinal, and a stamp above every earlier one. */
async function nextRelease(db: FleetDb, name: string): Promise<{ release: number; release_stamp: number }> {
  const last = await releaseMaxima(db, name);
  return { release: last.release + 1, release_stamp: Math.max(Date.now(), last.stamp + 1) };
}
