/**
 * Row types of the fleet tables that go through the shared query layer (store/kysely.ts), for
 * SQLite and PostgreSQL alike. Flags are integers (0/1) and times ISO-8601 text on both, so one
 * query means the same on each. Columns declared `bigint` come back from PostgreSQL as strings:
 * repositories read them through Number().
 */
import type { Generated } from 'kysely';

type BigInt = number | string;

export interface DevicesTable {
  id: string;
  name: string;
  secret_hash: string;
  profile: string | null;
  hardware: string;
  tags: Generated<string>;
  enrolled_at: string;
  last_seen_at: string | null;
  online: Generated<number>;
  phase: string | null;
  active_model_id: string | null;
  active_sha256: string | null;
  applied_version: number | null;
  last_error: string | null;
  revoked: Generated<number>;
  broker_hash: string | null;
}

export interface EnrollTokensTable {
  token_hash: string;
  created_at: string;
  expires_at: string;
  uses_left: number;
  revoked: Generated<number>;
}

/** One row per enrollment request that created a device (fleet migration 0003). */
export interface EnrollRequestsTable {
  token_hash: string;
  request_id: string;
  device_id: string;
  salt: string;
  created_at: string;
}

export interface ApiTokensTable {
  token_hash: string;
  name: string;
  role: string;
  created_at: string;
  revoked: Generated<number>;
}

export interface ModelsTable {
  id: string;
  name: string;
  variant: string;
  sha256: string;
  size: BigInt;
  inputs: string;
  outputs: string;
  source_model_id: string | null;
  profile: string | null;
  metrics: string | null;
  created_at: string;
  serving_shapes: string | null;
  /** Release ordinal of the name (1, 2, …), what people name with `--release`. */
  release: number | null;
  /** The number manifests carry (fleet migration 0002): see inventory/models.ts. */
  release_stamp: BigInt | null;
}

export interface TargetsTable {
  device_id: string;
  version: number;
  model_id: string | null;
  payload: string;
  updated_at: string;
}

export interface RolloutsTable {
  id: string;
  model_id: string;
  selector: string;
  policy: string;
  status: string;
  reason: string | null;
  current_wave: Generated<number>;
  created_by: string;
  created_at: string;
  updated_at: string;
}

export interface RolloutDevicesTable {
  rollout_id: string;
  device_id: string;
  wave: number;
  status: string;
  target_version: number | null;
  previous_model_id: string | null;
  started_at: string | null;
  finished_at: string | null;
  reason: string | null;
  p50_ms: number | null;
  p99_ms: number | null;
  rolled_back: Generated<number>;
}

export interface ManifestsTable {
  model_id: string;
}

export interface GoldensTable {
  model_id: string;
}

/** Before fleet migration 0002 only (it moves these numbers into models.release_stamp). */
export interface ModelReleasesTable {
  model_id: string;
  lineage: string;
  release: BigInt;
}

export interface FleetSchema {
  devices: DevicesTable;
  enroll_tokens: EnrollTokensTable;
  enroll_requests: EnrollRequestsTable;
  api_tokens: ApiTokensTable;
  models: ModelsTable;
  targets: TargetsTable;
  rollouts: RolloutsTable;
  rollout_devices: RolloutDevicesTable;
  manifests: ManifestsTable;
  goldens: GoldensTable;
}

/** What migrations see: the current tables plus those that migrations retire. */
export interface MigrationSchema extends FleetSchema {
  model_releases: ModelReleasesTable;
}
