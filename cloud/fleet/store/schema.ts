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
  /** Device time of the state report shown (fleet migration 0400); older reports are ignored. */
  state_at: string | null;
}

export interface EnrollTokensTable {
  token_hash: string;
  created_at: string;
  expires_at: string;
  uses_left: number;
  revoked: Generated<number>;
}

/** One row per enrollment request that created a device (fleet migration 0300). */
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
  /** The manifest as JSON. */
  body: string;
  /** Null while it waits for an offline signature. */
  signature: string | null;
  created_at: string;
}

export interface GoldensTable {
  model_id: string;
  sha256: string;
  size: BigInt;
  max_abs: number;
  min_cosine: number;
  cases: number;
  created_at: string;
}

/** Small named values of the cloud as a whole (the epoch). */
export interface CloudStateTable {
  key: string;
  value: string;
}

export interface AuditTable {
  id: Generated<number>;
  at: string;
  actor: string;
  action: string;
  /** JSON object. */
  details: string;
}

/** User-defined device profiles (the built-in ones live in code). */
export interface ProfilesTable {
  name: string;
  /** The profile as JSON. */
  body: string;
  created_at: string;
}

export interface DeviceAlarmsTable {
  device_id: string;
  code: string;
  message: string;
  count: number;
  first_at: string;
  last_at: string;
}

export interface DeviceFidelityTable {
  device_id: string;
  model_id: string;
  sha256: string;
  cases: number;
  cosine: number | null;
  max_abs: number;
  accuracy: number | null;
  at: string;
}

/** Before fleet migration 0002 only (it moves these numbers into models.release_stamp). */
export interface ModelReleasesTable {
  model_id: string;
  lineage: string;
  release: BigInt;
}

/** One benchmark a device ran on a model it received (fleet migration 0200 on PostgreSQL). */
export interface BenchReportsTable {
  id: Generated<number>;
  device_id: string;
  model_id: string;
  sha256: string;
  ep: string;
  runs: number;
  p50_ms: number;
  p90_ms: number;
  p99_ms: number;
  max_ms: number;
  mean_ms: number;
  throughput: number;
  load_ms: number;
  at: string;
  received_at: string;
  /** JSON object input name -> dims; null from agents that predate it. */
  input_shapes: string | null;
}

/** Coded events: the devices' own, and the cloud's about them (online/offline). */
export interface EventsTable {
  id: Generated<number>;
  device_id: string | null;
  level: string;
  code: string;
  message: string;
  at: string;
}

/**
 * Raw telemetry records, the columns both backends share: SQLite's table (migrations.ts 1) and
 * PostgreSQL's day-partitioned one (pg-migrations.ts 1, written by store/pg-telemetry.ts, where
 * `at` and `received_at` are timestamptz and come back as Date).
 */
export interface TelemetryTable {
  device_id: string;
  seq: BigInt;
  at: string | Date;
  received_at: string | Date;
  cpu_load: number;
  mem_used: number;
  mem_total: number;
  temp_c: number | null;
  model_id: string | null;
  lat_count: number | null;
  p50_ms: number | null;
  p90_ms: number | null;
  p99_ms: number | null;
  max_ms: number | null;
  mean_ms: number | null;
}

/** Per (minute|hour, device, model) telemetry aggregates (monitoring/rollups.ts). */
export interface TelemetryRollupTable {
  resolution: number;
  bucket_start: BigInt;
  device_id: string;
  model_id: string;
  records: BigInt;
  lat_count: BigInt;
  lat_sum_ms: number;
  lat_max_ms: number | null;
  /** Encoded latency histogram (monitoring/histogram.ts); null on PostgreSQL (see pg-device-rollups.ts). */
  hist: Buffer | null;
  cpu_sum: number;
  temp_n: BigInt;
  temp_sum: number;
  temp_max: number | null;
  throttled_records: BigInt;
  throttled_bits: BigInt;
  last_at: BigInt;
}

/** Per (minute|hour, device, release) real-traffic sketches (monitoring/serving.ts). */
export interface ServingRollupTable {
  resolution: number;
  bucket_start: BigInt;
  device_id: string;
  model_name: string;
  version: string;
  model_id: string;
  requests: BigInt;
  errors: BigInt;
  total: string;
  queue: string;
  compute: string;
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
  cloud_state: CloudStateTable;
  audit: AuditTable;
  profiles: ProfilesTable;
  device_alarms: DeviceAlarmsTable;
  device_fidelity: DeviceFidelityTable;
  bench_reports: BenchReportsTable;
  events: EventsTable;
  telemetry: TelemetryTable;
  telemetry_rollup: TelemetryRollupTable;
  serving_rollup: ServingRollupTable;
}

/** What migrations see: the current tables plus those that migrations retire. */
export interface MigrationSchema extends FleetSchema {
  model_releases: ModelReleasesTable;
}
