import { sql } from 'kysely';
import type { BenchReport } from '../../../shared/protocol/index.js';
import { type FleetStore, toNumber } from '../store/kysely.js';

export interface LatencyPoint {
  at: string;
  count: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
  /** The model that answered (null: none active), so charts can mark where it changed. */
  modelId: string | null;
  modelName: string | null;
}

export interface BenchSummary {
  modelId: string;
  sha256: string;
  ep: string;
  runs: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
  meanMs: number;
  throughput: number;
  loadMs: number;
  at: string;
  /** The shape each input was benchmarked at; null when the agent did not say (older agents). */
  inputShapes: Record<string, number[]> | null;
}

type BenchRow = Omit<BenchSummary, 'inputShapes'> & { inputShapes: string | null };

const toBenchSummary = ({ inputShapes, ...row }: BenchRow): BenchSummary => ({
  ...row,
  inputShapes: inputShapes === null ? null : (JSON.parse(inputShapes) as Record<string, number[]>),
});

type SnapshotRow = Omit<TelemetrySnapshot, 'at'> & { deviceId: string; at: string | Date };

export interface TelemetrySnapshot {
  at: string;
  cpuLoad: number;
  memUsedBytes: number;
  memTotalBytes: number;
  tempC: number | null;
}

export interface TelemetryRepositoryOptions {
  /** A model's name for the latency series (the models may live in another store). */
  modelName?: (modelId: string) => Promise<string | undefined>;
}

const BENCH_COLUMNS = [
  'model_id as modelId',
  'sha256',
  'ep',
  'runs',
  'p50_ms as p50Ms',
  'p90_ms as p90Ms',
  'p99_ms as p99Ms',
  'max_ms as maxMs',
  'mean_ms as meanMs',
  'throughput',
  'load_ms as loadMs',
  'at',
  'input_shapes as inputShapes',
] as const;

/** PostgreSQL returns timestamptz columns as Date; SQLite keeps the text it was given. */
const isoOf = (value: string | Date): string => (typeof value === 'string' ? value : value.toISOString());

/**
 * Benchmarks, events and the read side of raw telemetry, through the shared query layer: in the
 * SQLite file by default, in PostgreSQL with --database (written there by store/pg-telemetry.ts;
 * the SQLite writer is sqlite-records.ts). Nothing here joins the devices or models tables, so
 * it works whichever store those live in: callers pass device ids, names come from `modelName`.
 */
export class TelemetryRepository {
  constructor(
    private readonly store: FleetStore,
    private readonly o: TelemetryRepositoryOptions = {},
  ) {}

  async addBench(
    deviceId: string,
    report: BenchReport,
    receivedAt = new Date().toISOString(),
  ): Promise<void> {
    // A device sends its last report again, unchanged, when the cloud republishes targets (it
    // may have been lost in a broker restart); MQTT may deliver one twice too: store it once.
    const stored = await this.store.db
      .selectFrom('bench_reports')
      .select('id')
      .where('device_id', '=', deviceId)
      .where('sha256', '=', report.sha256)
      .where('at', '=', report.at)
      .where('p50_ms', '=', report.p50Ms)
      .where('runs', '=', report.runs)
      .executeTakeFirst();
    if (stored) return;
    await this.store.db
      .insertInto('bench_reports')
      .values({
        device_id: deviceId,
        model_id: report.modelId,
        sha256: report.sha256,
        ep: report.ep,
        runs: report.runs,
        p50_ms: report.p50Ms,
        p90_ms: report.p90Ms,
        p99_ms: report.p99Ms,
        max_ms: report.maxMs,
        mean_ms: report.meanMs,
        throughput: report.throughput,
        load_ms: report.loadMs,
        at: report.at,
        received_at: receivedAt,
        input_shapes: report.inputShapes ? JSON.stringify(report.inputShapes) : null,
      })
      .execute();
  }

  async latestBench(deviceId: string): Promise<BenchSummary | null> {
    const row = await this.store.db
      .selectFrom('bench_reports')
      .select(BENCH_COLUMNS)
      .where('device_id', '=', deviceId)
      .orderBy('id', 'desc')
      .limit(1)
      .executeTakeFirst();
    return row ? toBenchSummary(row) : null;
  }

  /**
   * The latest benchmark of every device that has one, in one query (the fleet page): the
   * largest id per device comes off the (device_id, id) index.
   */
  async latestBenchByDevice(): Promise<Map<string, BenchSummary>> {
    const rows = await this.latestBenchRows();
    return new Map(rows.map(({ deviceId, ...bench }) => [deviceId, toBenchSummary(bench)]));
  }

  /** The latest benchmark of each of these devices that has one (a rollout step's whole wave). */
  async latestBenches(deviceIds: readonly string[]): Promise<Map<string, BenchSummary>> {
    const latest = new Map<string, BenchSummary>();
    for (let i = 0; i < deviceIds.length; i += 500) {
      const rows = await this.latestBenchRows(deviceIds.slice(i, i + 500));
      for (const { deviceId, ...bench } of rows) latest.set(deviceId, toBenchSummary(bench));
    }
    return latest;
  }

  /** The latest bench row per device (of these devices, when given). */
  private latestBenchRows(deviceIds?: readonly string[]) {
    return this.store.db
      .selectFrom('bench_reports')
      .select([...BENCH_COLUMNS, 'device_id as deviceId'])
      .where('id', 'in', (eb) =>
        eb
          .selectFrom('bench_reports')
          .select((b) => b.fn.max('id').as('id'))
          .$if(deviceIds !== undefined, (q) => q.where('device_id', 'in', deviceIds!))
          .groupBy('device_id'),
      )
      .execute();
  }

  /** The latest benchmark per (device, artifact) of these artifacts (model lineage's device latency). */
  async artifactBenches(
    sha256s: readonly string[],
  ): Promise<Array<{ sha256: string; deviceId: string; p50Ms: number }>> {
    if (sha256s.length === 0) return [];
    return this.store.db
      .selectFrom('bench_reports')
      .select(['sha256', 'device_id as deviceId', 'p50_ms as p50Ms'])
      .where('id', 'in', (eb) =>
        eb
          .selectFrom('bench_reports')
          .select((b) => b.fn.max('id').as('id'))
          .where('sha256', 'in', [...sha256s])
          .groupBy(['device_id', 'sha256']),
      )
      .execute();
  }

  /**
   * The latest telemetry snapshot of each of `deviceIds` in one query: per device, one seek for
   * its highest seq and one for the row (scanning raw telemetry instead cost 150 ms at 60k rows).
   */
  async latestSnapshotByDevice(deviceIds: readonly string[]): Promise<Map<string, TelemetrySnapshot>> {
    if (deviceIds.length === 0) return new Map();
    const query =
      this.store.dialect === 'postgres'
        ? sql<SnapshotRow>`SELECT d.id "deviceId", t.at, t.cpu_load "cpuLoad", t.mem_used "memUsedBytes",
             t.mem_total "memTotalBytes", t.temp_c "tempC"
           FROM unnest(${[...deviceIds]}::text[]) AS d(id) CROSS JOIN LATERAL (
             SELECT at, cpu_load, mem_used, mem_total, temp_c FROM telemetry WHERE device_id = d.id
             ORDER BY seq DESC LIMIT 1) t`
        : sql<SnapshotRow>`SELECT j.value "deviceId", t.at, t.cpu_load "cpuLoad", t.mem_used "memUsedBytes",
             t.mem_total "memTotalBytes", t.temp_c "tempC"
           FROM json_each(${JSON.stringify(deviceIds)}) j CROSS JOIN telemetry t
             ON t.device_id = j.value AND t.seq = (SELECT max(seq) FROM telemetry WHERE device_id = j.value)`;
    const { rows } = await query.execute(this.store.db);
    return new Map(rows.map(({ deviceId, at, ...snapshot }) => [deviceId, { at: isoOf(at), ...snapshot }]));
  }

  async latestSnapshot(deviceId: string): Promise<TelemetrySnapshot | null> {
    const row = await this.store.db
      .selectFrom('telemetry')
      .select([
        'at',
        'cpu_load as cpuLoad',
        'mem_used as memUsedBytes',
        'mem_total as memTotalBytes',
        'temp_c as tempC',
      ])
      .where('device_id', '=', deviceId)
      .orderBy('seq', 'desc')
      .limit(1)
      .executeTakeFirst();
    return row ? { ...row, at: isoOf(row.at) } : null;
  }

  /** Inference latency reported in telemetry since `sinceIso` (arrival time), oldest first. */
  async latencySeries(deviceId: string, sinceIso: string, limit = 2000): Promise<LatencyPoint[]> {
    const rows = await this.store.db
      .selectFrom('telemetry')
      .select([
        'at',
        'lat_count as count',
        'p50_ms as p50Ms',
        'p90_ms as p90Ms',
        'p99_ms as p99Ms',
        'max_ms as maxMs',
        'model_id as modelId',
      ])
      .where('device_id', '=', deviceId)
      .where('received_at', '>=', sinceIso)
      .where('lat_count', '>', 0)
      .orderBy('seq', 'desc')
      .limit(limit)
      .execute();
    const names = new Map<string, string | null>();
    for (const id of new Set(rows.map((r) => r.modelId))) {
      if (id) names.set(id, (await this.o.modelName?.(id)) ?? null);
    }
    return rows.reverse().map((r) => ({
      at: isoOf(r.at),
      count: r.count ?? 0,
      p50Ms: r.p50Ms ?? 0,
      p90Ms: r.p90Ms ?? 0,
      p99Ms: r.p99Ms ?? 0,
      maxMs: r.maxMs ?? 0,
      modelId: r.modelId,
      modelName: r.modelId ? (names.get(r.modelId) ?? null) : null,
    }));
  }

  /** Raw records stored, of one device or all. */
  async count(deviceId?: string): Promise<number> {
    let query = this.store.db.selectFrom('telemetry').select((eb) => eb.fn.countAll().as('n'));
    if (deviceId) query = query.where('device_id', '=', deviceId);
    return toNumber((await query.executeTakeFirstOrThrow()).n as number | string);
  }

  async addEvent(
    deviceId: string | null,
    level: string,
    code: string,
    message: string,
    at: string,
  ): Promise<void> {
    await this.store.db
      .insertInto('events')
      .values({ device_id: deviceId, level, code, message, at })
      .execute();
  }

  async events(
    deviceId: string,
    limit = 50,
  ): Promise<Array<{ level: string; code: string; message: string; at: string }>> {
    return this.store.db
      .selectFrom('events')
      .select(['level', 'code', 'message', 'at'])
      .where('device_id', '=', deviceId)
      .orderBy('id', 'desc')
      .limit(limit)
      .execute();
  }
}
