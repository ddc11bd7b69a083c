import { toFleetError } from '../../../shared/errors/index.js';
import type { Logger } from '../../../shared/logger.js';
import { decodeGoldenSet, encodeGoldenSet, goldenTolerance } from '../../../shared/manifest/index.js';
import { computeGoldenSet, type NpyArray } from '../../compression/index.js';
import type { ModelRecord } from '../inventory/models.js';
import { type FleetDb, type FleetStore, toNumber } from '../store/kysely.js';
import type { ArtifactStore } from './artifacts.js';

/** A model's golden set: an artifact in the store, with the bounds its variant's precision allows. */
export interface GoldenRecord {
  modelId: string;
  sha256: string;
  size: number;
  /** Largest |diff| allowed per output value. */
  maxAbs: number;
  /** Smallest cosine allowed per output tensor. */
  minCosine: number;
  cases: number;
}

/**
 * Golden inputs and outputs per registered model, computed by the cloud's onnxruntime when the
 * model is registered: from sample inputs when the upload or the compression job brings them,
 * from the source model's golden inputs for a variant, otherwise from seeded inputs. The
 * manifest names the set; devices check it before they activate the model.
 */
export class GoldenService {
  private readonly db: FleetDb;

  constructor(
    fleet: FleetStore,
    private readonly store: ArtifactStore,
    private readonly logger: Logger,
  ) {
    this.db = fleet.db;
  }

  async find(modelId: string): Promise<GoldenRecord | undefined> {
    const row = await this.db
      .selectFrom('goldens')
      .select(['model_id', 'sha256', 'size', 'max_abs', 'min_cosine', 'cases'])
      .where('model_id', '=', modelId)
      .executeTakeFirst();
    return row
      ? {
          modelId: row.model_id,
          sha256: row.sha256,
          size: toNumber(row.size),
          maxAbs: row.max_abs,
          minCosine: row.min_cosine,
          cases: row.cases,
        }
      : undefined;
  }

  /**
   * Computes and stores the golden set of `model`. Never throws: a model the cloud cannot run
   * gets no golden set (logged), and is still checked on the device by its isolated load-and-run.
   */
  async register(
    model: ModelRecord,
    bytes: Uint8Array,
    samples?: NpyArray,
  ): Promise<GoldenRecord | undefined> {
    try {
      const inputs = samples ?? (await this.sourceInputs(model));
      const set = await computeGoldenSet(bytes, inputs);
      if (!set) return undefined;
      const encoded = encodeGoldenSet(set);
      const { sha256, size } = await this.store.put(encoded);
      const { tolerance, minCosine } = goldenTolerance(set, model.variant);
      const row = {
        sha256,
        size,
        max_abs: tolerance,
        min_cosine: minCosine,
        cases: set.cases.length,
        created_at: new Date().toISOString(),
      };
      await this.db
        .insertInto('goldens')
        .values({ model_id: model.id, ...row })
        .onConflict((c) => c.column('model_id').doUpdateSet(row))
        .execute();
      return this.find(model.id);
    } catch (error) {
      const e = toFleetError(error);
      this.logger.warn({ modelId: model.id, code: e.code, err: e.message }, 'no golden set for this model');
      return undefined;
    }
  }

  /** A variant is checked on the inputs its source model was checked on. */
  private async sourceInputs(model: ModelRecord) {
    const source = model.sourceModelId ? await this.find(model.sourceModelId) : undefined;
    if (!source) return undefined;
    const bytes = await this.store.get(source.sha256);
    return decodeGoldenSet(bytes).cases.map((c) => c.inputs);
  }
}
