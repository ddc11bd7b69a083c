/** Schema migrations, applied in order; never edit a released entry, append a new one. */
export const MIGRATIONS: string[] = [
  `
  CREATE TABLE devices (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    profile TEXT,
    hardware TEXT NOT NULL,
    tags TEXT NOT NULL DEFAULT '[]',
    enrolled_at TEXT NOT NULL,
    last_seen_at TEXT,
    online INTEGER NOT NULL DEFAULT 0,
    phase TEXT,
    active_model_id TEXT,
    active_sha256 TEXT,
    applied_version INTEGER,
    last_error TEXT,
    revoked INTEGER NOT NULL DEFAULT 0
  );
  CREATE TABLE enroll_tokens (
    token_hash TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    uses_left INTEGER NOT NULL,
    revoked INTEGER NOT NULL DEFAULT 0
  );
  CREATE TABLE api_tokens (
    token_hash TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    created_at TEXT NOT NULL,
    revoked INTEGER NOT NULL DEFAULT 0
  );
  CREATE TABLE models (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    variant TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    inputs TEXT NOT NULL,
    outputs TEXT NOT NULL,
    source_model_id TEXT,
    profile TEXT,
    metrics TEXT,
    created_at TEXT NOT NULL
  );
  CREATE TABLE targets (
    device_id TEXT PRIMARY KEY REFERENCES devices(id),
    version INTEGER NOT NULL,
    model_id TEXT REFERENCES models(id),
    payload TEXT NOT NULL,
    updated_at TEXT NOT NULL
  );
  CREATE TABLE telemetry (
    device_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    at TEXT NOT NULL,
    received_at TEXT NOT NULL,
    cpu_load REAL NOT NULL,
    mem_used INTEGER NOT NULL,
    mem_total INTEGER NOT NULL,
    temp_c REAL,
    model_id TEXT,
    lat_count INTEGER,
    p50_ms REAL,
    p90_ms REAL,
    p99_ms REAL,
    max_ms REAL,
    mean_ms REAL,
    PRIMARY KEY (device_id, seq)
  ) WITHOUT ROWID;
  CREATE INDEX telemetry_by_time ON telemetry (device_id, received_at);
  CREATE TABLE bench_reports (
    id INTEGER PRIMARY KEY,
    device_id TEXT NOT NULL,
    model_id TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    ep TEXT NOT NULL,
    runs INTEGER NOT NULL,
    p50_ms REAL NOT NULL,
    p90_ms REAL NOT NULL,
    p99_ms REAL NOT NULL,
    max_ms REAL NOT NULL,
    mean_ms REAL NOT NULL,
    throughput REAL NOT NULL,
    load_ms REAL NOT NULL,
    at TEXT NOT NULL,
    received_at TEXT NOT NULL
  );
  CREATE INDEX bench_by_device ON bench_reports (device_id, id);
  CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    device_id TEXT,
    level TEXT NOT NULL,
    code TEXT NOT NULL,
    message TEXT NOT NULL,
    at TEXT NOT NULL
  );
  CREATE TABLE audit (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    details TEXT NOT NULL
  );
  `,
];

// 2: rollouts in waves with per-device executions (AWS IoT Jobs vocabulary).
MIGRATIONS.push(`
  CREATE TABLE rollouts (
    id TEXT PRIMARY KEY,
    model_id TEXT NOT NULL REFERENCES models(id),
    selector TEXT NOT NULL,
    policy TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    current_wave INTEGER NOT NULL DEFAULT 0,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
  );
  CREATE TABLE rollout_devices (
    rollout_id TEXT NOT NULL REFERENCES rollouts(id),
    device_id TEXT NOT NULL REFERENCES devices(id),
    wave INTEGER NOT NULL,
    status TEXT NOT NULL,
    target_version INTEGER,
    previous_model_id TEXT,
    started_at TEXT,
    finished_at TEXT,
    reason TEXT,
    p50_ms REAL,
    p99_ms REAL,
    rolled_back INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (rollout_id, device_id)
  );
  CREATE INDEX rollouts_by_status ON rollouts (status);
`);

// 3: a device's password hash in the external broker's own format (Mosquitto $7$), kept so
// that the broker's password file can be regenerated without the plaintext secret.
MIGRATIONS.push(`ALTER TABLE devices ADD COLUMN broker_hash TEXT;`);

// 4: compression jobs and user-defined device profiles.
MIGRATIONS.push(`
  CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    params TEXT NOT NULL,
    progress REAL NOT NULL DEFAULT 0,
    stage TEXT,
    result TEXT,
    error TEXT,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
  );
  CREATE TABLE profiles (
    name TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    created_at TEXT NOT NULL
  );
`);

// 5: one signed manifest per model release (signed online, or offline and attached later).
MIGRATIONS.push(`
  CREATE TABLE manifests (
    model_id TEXT PRIMARY KEY REFERENCES models(id),
    body TEXT NOT NULL,
    signature TEXT,
    created_at TEXT NOT NULL
  );
`);

// 6: telemetry rollups (1-minute and 1-hour) with mergeable latency histograms; see
// cloud/fleet/monitoring/. The key leads with the resolution and bucket so that fleet-wide
// window scans and retention deletes are range scans; the second index serves one device.
MIGRATIONS.push(`
  CREATE TABLE telemetry_rollup (
    resolution INTEGER NOT NULL,
    bucket_start INTEGER NOT NULL,
    device_id TEXT NOT NULL,
    model_id TEXT NOT NULL,
    records INTEGER NOT NULL,
    lat_count INTEGER NOT NULL,
    lat_sum_ms REAL NOT NULL,
    lat_max_ms REAL,
    hist BLOB,
    cpu_sum REAL NOT NULL,
    temp_n INTEGER NOT NULL,
    temp_sum REAL NOT NULL,
    temp_max REAL,
    throttled_records INTEGER NOT NULL,
    throttled_bits INTEGER NOT NULL,
    last_at INTEGER NOT NULL,
    PRIMARY KEY (resolution, bucket_start, device_id, model_id)
  ) WITHOUT ROWID;
  CREATE INDEX telemetry_rollup_by_device ON telemetry_rollup (device_id, resolution, bucket_start);
`);

// 7: real-traffic latency from the agents' inference services (issue 13): per minute/hour,
// device and served release, request and error counts and three DDSketches (total, queue,
// compute; JSON wire form, see shared/sketch.ts) that merge exactly. See
// cloud/fleet/monitoring/serving.ts.
MIGRATIONS.push(`
  CREATE TABLE serving_rollup (
    resolution INTEGER NOT NULL,
    bucket_start INTEGER NOT NULL,
    device_id TEXT NOT NULL,
    model_name TEXT NOT NULL,
    version TEXT NOT NULL,
    model_id TEXT NOT NULL,
    requests INTEGER NOT NULL,
    errors INTEGER NOT NULL,
    total TEXT NOT NULL,
    queue TEXT NOT NULL,
    compute TEXT NOT NULL,
    PRIMARY KEY (resolution, bucket_start, device_id, model_name, version)
  ) WITHOUT ROWID;
  CREATE INDEX serving_rollup_by_device ON serving_rollup (device_id, resolution, bucket_start);
`);

// 8 (issue 14): a model's serving shapes (input name -> dims, JSON) and its release number: an
// original upload of a name starts release n+1; its variants carry the original's release.
MIGRATIONS.push(`
  ALTER TABLE models ADD COLUMN serving_shapes TEXT;
  ALTER TABLE models ADD COLUMN release INTEGER;
  UPDATE models SET release = (
    SELECT count(*) FROM models o
    WHERE o.name = models.name AND o.source_model_id IS NULL AND o.created_at <= models.created_at
  ) WHERE source_model_id IS NULL;
  UPDATE models SET release = (SELECT o.release FROM models o WHERE o.id = models.source_model_id)
  WHERE source_model_id IS NOT NULL;
`);

// 9: delivery trust (issue 12). The cloud's epoch (a new one on every start, so that agents
// follow a restarted or restored cloud only under the fleet key); release numbers per model
// lineage (monotonic, timestamp-based so a restored database still counts upwards); golden
// sets computed at registration; alarms about devices (e.g. a version the cloud never issued)
// and the golden-check fidelity each device measured last.
MIGRATIONS.push(`
  CREATE TABLE cloud_state (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
  );
  CREATE TABLE model_releases (
    model_id TEXT PRIMARY KEY REFERENCES models(id),
    lineage TEXT NOT NULL,
    release INTEGER NOT NULL
  );
  CREATE INDEX model_releases_by_lineage ON model_releases (lineage, release);
  CREATE TABLE goldens (
    model_id TEXT PRIMARY KEY REFERENCES models(id),
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    max_abs REAL NOT NULL,
    min_cosine REAL NOT NULL,
    cases INTEGER NOT NULL,
    created_at TEXT NOT NULL
  );
  CREATE TABLE device_alarms (
    device_id TEXT NOT NULL,
    code TEXT NOT NULL,
    message TEXT NOT NULL,
    count INTEGER NOT NULL,
    first_at TEXT NOT NULL,
    last_at TEXT NOT NULL,
    PRIMARY KEY (device_id, code)
  );
  CREATE TABLE device_fidelity (
    device_id TEXT PRIMARY KEY,
    model_id TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    cases INTEGER NOT NULL,
    cosine REAL,
    max_abs REAL NOT NULL,
    accuracy REAL,
    at TEXT NOT NULL
  );
`);

// 10: the shape each input was benchmarked at (issue 14), so `fleetml latency` says what a
// device's figure describes. JSON object input name -> dims; NULL from agents that predate it.
MIGRATIONS.push(`
  ALTER TABLE bench_reports ADD COLUMN input_shapes TEXT;
`);
