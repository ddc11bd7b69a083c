import { FleetError } from '../../../shared/errors/index.js';
import { type FleetKeyPair, signManifest, verifyManifest } from '../../../shared/manifest/index.js';
import { type Manifest, manifestSchema } from '../../../shared/protocol/index.js';
import type { ModelRecord } from '../inventory/models.js';
import type { FleetDb, FleetStore } from '../store/kysely.js';

/**
 * How manifests get signed. Online: the cloud holds the key (a file apart from the database)
 * and signs when a model is first deployed. Offline: the cloud holds only the public key;
 * an operator signs pending manifests with `fleetml sign` on another machine and attaches the
 * signatures, and nothing unsigned is ever deployed.
 */
export type SigningMode = { mode: 'online'; keys: FleetKeyPair } | { mode: 'offline'; publicKey: string };

export interface ManifestServiceOptions {
  signing: SigningMode;
  /** Block size for artifact transfer in bytes; default 64 KiB (below every broker's limit). */
  blockSize?: number;
  /** Manifest lifetime in seconds; default 30 days online, 365 days offline; null = never expires. */
  ttlSeconds?: number | null;
  /** The golden set a model's manifest names (GoldenService.find); default none. */
  golden?: (
    modelId: string,
  ) => Promise<{ sha256: string; size: number; maxAbs: number; minCosine: number } | undefined>;
}

export interface SignedManifest {
  manifest: Manifest;
  signature: string | null;
}

/** One manifest per model release; the version grows only when a release is re-issued. */
export class ManifestService {
  private readonly blockSize: number;
  private readonly ttlSeconds: number | null;
  private readonly db: FleetDb;

  constructor(
    store: FleetStore,
    private readonly o: ManifestServiceOptions,
  ) {
    this.db = store.db;
    this.blockSize = o.blockSize ?? 64 * 1024;
    this.ttlSeconds =
      o.ttlSeconds !== undefined ? o.ttlSeconds : o.signing.mode === 'online' ? 30 * 86400 : 365 * 86400;
  }

  get publicKey(): string {
    return this.o.signing.mode === 'online' ? this.o.signing.keys.publicKey : this.o.signing.publicKey;
  }

  async find(modelId: string): Promise<SignedManifest | undefined> {
    const row = await this.db
      .selectFrom('manifests')
      .select(['body', 'signature'])
      .where('model_id', '=', modelId)
      .executeTakeFirst();
    return row ? { manifest: JSON.parse(row.body), signature: row.signature } : undefined;
  }

  /**
   * The signed manifest to deploy `model` with, issuing (online: and signing) a new one when
   * none exists or the current one expires within a day. Offline, an unsigned manifest is a
   * CONFLICT naming the command that signs it.
   */
  async forDeployment(model: ModelRecord): Promise<SignedManifest> {
    let current = await this.find(model.id);
    const goldenSha = (await this.o.golden?.(model.id))?.sha256 ?? null;
    const expiresSoon = (m: Manifest) =>
      m.expiresAt !== null && Date.parse(m.expiresAt) - Date.now() < 86_400_000;
    // Issued before releases and golden sets existed, or the golden set changed since.
    const outdated = (m: Manifest) => m.release === undefined || (m.golden?.sha256 ?? null) !== goldenSha;
    // A serving shape set after the manifest was issued must reach the devices: re-issue.
    const shapesChanged = (m: Manifest) =>
      JSON.stringify(m.servingShapes ?? null) !== JSON.stringify(model.servingShapes ?? null);
    if (
      !current ||
      (this.o.signing.mode === 'online' &&
        (expiresSoon(current.manifest) || outdated(current.manifest) || shapesChanged(current.manifest)))
    ) {
      current = await this.issue(model, (current?.manifest.version ?? 0) + 1);
    }
    if (!current.signature) {
      throw new FleetError(
        'CONFLICT',
        `model ${model.id} has no signed manifest yet: sign it offline and attach it`,
        {
          hint: `npx fleetml manifests pending --out dir; npx fleetml sign dir/${model.id}.json --key <key>; npx fleetml manifests attach ${model.id} --signature <sig>`,
        },
      );
    }
    return current;
  }

  /** Manifests waiting for an offline signature. */
  async pending(): Promise<Manifest[]> {
    const rows = await this.db
      .selectFrom('manifests')
      .select('body')
      .where('signature', 'is', null)
      .orderBy('created_at')
      .orderBy('model_id')
      .execute();
    return rows.map((r) => JSON.parse(r.body));
  }

  /** Prepares the manifest of a model for offline signing (no-op when it has one). */
  async prepare(model: ModelRecord): Promise<Manifest> {
    return ((await this.find(model.id)) ?? (await this.issue(model, 1))).manifest;
  }

  /** Stores an offline signature after checking it against the fleet key. */
  async attach(modelId: string, signature: string): Promise<SignedManifest> {
    const current = await this.find(modelId);
    if (!current) throw new FleetError('NOT_FOUND', `no manifest for model ${modelId}`);
    verifyManifest(current.manifest, signature, this.publicKey);
    await this.db.updateTable('manifests').set({ signature }).where('model_id', '=', modelId).execute();
    return { manifest: current.manifest, signature };
  }

  private async issue(model: ModelRecord, version: number): Promise<SignedManifest> {
    const issuedAt = new Date().toISOString();
    const golden = await this.o.golden?.(model.id);
    const manifest: Manifest = {
      modelId: model.id,
      name: model.name,
      variant: model.variant,
      version,
      sha256: model.sha256,
      size: model.size,
      blockSize: this.blockSize,
      profile: model.profile,
      inputs: model.inputs,
      outputs: model.outputs,
      golden: golden
        ? { sha256: golden.sha256, size: golden.size, tolerance: golden.maxAbs, minCosine: golden.minCosine }
        : null,
      ...(model.servingShapes ? { servingShapes: model.servingShapes } : {}),
      issuedAt,
      expiresAt:
        this.ttlSeconds === null
          ? null
          : new Date(Date.parse(issuedAt) + this.ttlSeconds * 1000).toISOString(),
      // The lineage is the model's name; its release stamp is assigned at registration
      // (inventory/models.ts), the one source of truth for releases.
      release: model.releaseStamp,
    };
    checkManifest(manifest);
    const signature = this.o.signing.mode === 'online' ? signManifest(manifest, this.o.signing.keys) : null;
    const row = { model_id: model.id, body: JSON.stringify(manifest), signature, created_at: issuedAt };
    await this.db
      .insertInto('manifests')
      .values(row)
      .onConflict((c) =>
        c.column('model_id').doUpdateSet({ body: row.body, signature, created_at: issuedAt }),
      )
      .execute();
    return { manifest, signature };
  }
}

/**
 * A manifest the protocol cannot carry (over 16 dimensions, names beyond the schema's limits…)
 * would be dropped by every agent while the rollout waits for its timeout: refuse it here, when
 * it is issued, with the field that does not fit.
 */
export function checkManifest(manifest: Manifest): void {
  const parsed = manifestSchema.safeParse(manifest);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new FleetError(
      'MANIFEST_INVALID',
      `the manifest of model ${manifest.modelId} does not fit the protocol: ${issue?.path.join('.')}: ${issue?.message}`,
      { modelId: manifest.modelId, path: issue?.path.join('.') },
    );
  }
}
