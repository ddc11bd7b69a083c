/**
 * Model lineage (issue 14): a model name has releases (each original upload starts one), and a
 * release has variants linked to their original. Resolving "deploy NAME" to one model happens
 * here: an explicit release and variant, or the recommended variant of the latest release, and
 * an error listing the candidates whenever the choice is ambiguous.
 */
import { FleetError } from '../../../shared/errors/index.js';
import { recommendVariant } from '../../compression/index.js';
import type { FleetStore } from '../store/kysely.js';
import type { ArtifactBenchSource } from './lineage-benches.js';
import type { ModelRecord, ModelRegistry } from './models.js';

export interface FamilyMember extends ModelRecord {
  /** Mean p50 the devices of each profile measured for this variant. */
  deviceLatency: Record<string, { devices: number; p50Ms: number }>;
}

export interface Candidate {
  id: string;
  name: string;
  accepted: boolean;
  latencyMs: number | null;
  deviceLatencyMs: number | null;
}

export interface ResolveRequest {
  /** A model id, or a model name. */
  ref: string;
  /** Release number; default the latest. */
  release?: number;
  /** Variant label (`int8` matches `int8@rpi5`); default the recommended one. */
  variant?: string;
  /** Device profile the variant is for (recommendation and variant matching). */
  profile?: string;
}

export interface Resolved {
  model: ModelRecord;
  /** Why this one, in words (printed by `deploy`). */
  why: string;
}

const describe = (m: ModelRecord) => `${m.id} (release ${m.release}, ${m.variant})`;

export class Lineage {
  constructor(
    private readonly fleet: FleetStore,
    private readonly models: ModelRegistry,
    private readonly benches: ArtifactBenchSource,
  ) {}

  /** The original of `id` and every variant made from it, with device latencies. */
  async family(id: string): Promise<{ root: string; variants: FamilyMember[] }> {
    const model = await this.models.get(id);
    const rootId = model.sourceModelId ?? model.id;
    const members = (await this.models.list()).filter((m) => m.id === rootId || m.sourceModelId === rootId);
    const benches = await this.benches([...new Set(members.map((m) => m.sha256))]);
    const profiles = await this.profilesOf([...new Set(benches.map((b) => b.deviceId))]);
    return {
      root: rootId,
      variants: members.map((m) => {
        const byProfile: Record<string, { devices: number; p50Ms: number }> = {};
        for (const b of benches.filter((x) => x.sha256 === m.sha256)) {
          // Benchmarks of devices since removed count for no profile.
          if (!profiles.has(b.deviceId)) continue;
          const entry = (byProfile[profiles.get(b.deviceId) ?? 'unprofiled'] ??= { devices: 0, p50Ms: 0 });
          entry.p50Ms = (entry.p50Ms * entry.devices + b.p50Ms) / (entry.devices + 1);
          entry.devices++;
        }
        return { ...m, deviceLatency: byProfile };
      }),
    };
  }

  /** Profile per device id (null: unprofiled); devices that no longer exist are absent. */
  private async profilesOf(ids: string[]): Promise<Map<string, string | null>> {
    if (ids.length === 0) return new Map();
    const rows = await this.fleet.db
      .selectFrom('devices')
      .select(['id', 'profile'])
      .where('id', 'in', ids)
      .execute();
    return new Map(rows.map((r) => [r.id, r.profile]));
  }

  /**
   * Closed loop: the variant to ship to a profile. Variants within the accuracy budget compete on
   * what devices of that profile measured, falling back to the compression job's measurement.
   */
  async recommendation(
    id: string,
    profile: string,
  ): Promise<{ recommended: Candidate | null; candidates: Candidate[] }> {
    const { variants } = await this.family(id);
    const candidates = variants
      .filter((v) => v.profile === null || v.profile === profile)
      .map((v) => ({
        id: v.id,
        name: v.variant,
        accepted: v.metrics ? v.metrics.accepted !== false : true,
        latencyMs: (v.metrics?.latencyMs as number | undefined) ?? null,
        deviceLatencyMs: v.deviceLatency[profile]?.p50Ms ?? null,
      }));
    const best = recommendVariant(candidates);
    return { recommended: candidates.find((c) => c.name === best) ?? null, candidates };
  }

  /** One model to deploy for `request`, or NOT_FOUND / CONFLICT listing what there is. */
  async resolve(request: ResolveRequest): Promise<Resolved> {
    const found = await this.models.find(request.ref);
    const byId = found?.id === request.ref ? found : undefined;
    if (byId && request.release === undefined && request.variant === undefined) {
      return { model: byId, why: 'named by id' };
    }
    const name = byId ? byId.name : request.ref;
    const all = await this.models.byName(name);
    if (all.length === 0)
      throw new FleetError('NOT_FOUND', `no model ${request.ref}`, { model: request.ref });
    const release = request.release ?? Math.max(...all.map((m) => m.release));
    let members = all.filter((m) => m.release === release);
    if (members.length === 0) {
      const releases = [...new Set(all.map((m) => m.release))].join(', ');
      throw new FleetError('NOT_FOUND', `${name} has no release ${release}; releases: ${releases}`);
    }
    if (request.profile) members = members.filter((m) => m.profile === null || m.profile === request.profile);
    const list = (ms: ModelRecord[]) => ms.map(describe).join('; ');
    if (request.variant !== undefined) {
      const label = request.variant;
      const matches = members.filter((m) => m.variant === label || m.variant.startsWith(`${label}@`));
      if (matches.length === 1) return { model: matches[0], why: `variant ${label} of release ${release}` };
      const code = matches.length === 0 ? 'NOT_FOUND' : 'CONFLICT';
      throw new FleetError(
        code,
        `${matches.length === 0 ? 'no' : 'more than one'} variant ${label} in release ${release} of ${name}; candidates: ${list(matches.length ? matches : members)}`,
        { candidates: (matches.length ? matches : members).map((m) => m.id) },
      );
    }
    const original = members.find((m) => m.sourceModelId === null);
    if (members.length === 1) {
      return { model: members[0], why: `release ${release} has no other variant` };
    }
    if (!request.profile || !original) {
      throw new FleetError(
        'CONFLICT',
        `release ${release} of ${name} has ${members.length} variants: choose one with --variant or --profile; candidates: ${list(members)}`,
        { candidates: members.map((m) => m.id) },
      );
    }
    const { recommended, candidates } = await this.recommendation(original.id, request.profile);
    if (!recommended) {
      throw new FleetError(
        'CONFLICT',
        `no variant of release ${release} of ${name} is within its accuracy budget for ${request.profile}; candidates: ${list(members)}`,
        { candidates: candidates.map((c) => c.id) },
      );
    }
    return {
      model: await this.models.get(recommended.id),
      why: `recommended for ${request.profile} among ${candidates.length} variants of release ${release}`,
    };
  }
}
