import type { BenchReport, TelemetryRecord } from '../../../shared/protocol/index.js';
import type { Db } from '../store/db.js';

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

export interface TelemetrySnapshot {
  at: string;
  cpuLoad: number;
  memUsedBytes: number;
  memTotalBytes: number;
  tempC: number | null;
}

/**
 * Telemetry and benchmark storage. Inserts are idempotent on (device, seq), so a batch resent
 * after a lost acknowledgement is stored once.
 */
export class TelemetryRepository {
  private readonly insertRecord;
  private readonly insertBench;

  constructor(private readonly db: Db) {
    this.insertRecord = db.prepare(
      `INSERT OR IGNORE INTO telemetry (device_id, seq, at, received_at, cpu_load, mem_used, mem_total, temp_c, model_id,
        lat_count, p50_ms, p90_ms, p99_ms, max_ms, mean_ms)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    this.insertBench = db.prepare(
      `INSERT INTO bench_reports (device_id, model_id, sha256, ep, runs, p50_ms, p90_ms, p99_ms, max_ms, mean_ms,
        throughput, load_ms, at, received_at, input_shapes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
  }

  /** Stores a batch in one transaction; returns how many records were new. */
  ingest(deviceId: string, records: TelemetryRecord[], receivedAt = new Date().toISOString()): number {
    return this.db.transaction(() => {
      let added = 0;
      for (const r of records) if (this.insert(deviceId, r, receivedAt)) added++;
      return added;
    })();
  }

  /**
   * Inserts one record without a transaction of its own (the ingest queue wraps many batches in
   * one); false when (device, seq) is already stored.
   */
  insert(deviceId: string, r: TelemetryRecord, receivedAt: string): boolean {
    const l = r.latency;
    return (
      this.insertRecord.run(
        deviceId,
        r.seq,
        r.at,
        receivedAt,
        r.cpuLoad,
        r.memUsedBytes,
        r.memTotalBytes,
        r.tempC,
        r.modelId,
        l?.count ?? null,
        l?.p50Ms ?? null,
        l?.p90Ms ?? null,
        l?.p99Ms ?? null,
        l?.maxMs ?? null,
        l?.meanMs ?? null,
      ).changes > 0
    );
  }

  addBench(deviceId: string, report: BenchReport, receivedAt = new Date().toISOString()): void {
    this.insertBench.run(
      deviceId,
      report.modelId,
      report.sha256,
      report.ep,
      report.runs,
      report.p50Ms,
      report.p90Ms,
      report.p99Ms,
      report.maxMs,
      report.meanMs,
      report.throughput,
      report.loadMs,
      report.at,
      receivedAt,
      report.inputShapes ? JSON.stringify(report.inputShapes) : null,
    );
  }

  latestBench(deviceId: string): BenchSummary | null {
    const row = this.db
      .prepare(
        `SELECT model_id modelId, sha256, ep, runs, p50_ms p50Ms, p90_ms p90Ms, p99_ms p99Ms, max_ms maxMs,
           mean_ms meanMs, throughput, load_ms loadMs, at, input_shapes inputShapes
         FROM bench_reports WHERE device_id = ? ORDER BY id DESC LIMIT 1`,
      )
      .get(deviceId) as BenchRow | undefined;
    return row ? toBenchSummary(row) : null;
  }

  /**
   * The latest benchmark of every device in one query (the fleet page). CROSS JOIN keeps
   * devices as the outer loop, so each device costs two index seeks whatever the table size.
   */
  latestBenchByDevice(): Map<string, BenchSummary> {
    const rows = this.db
      .prepare(
        `SELECT d.id deviceId, b.model_id modelId, b.sha256, b.ep, b.runs, b.p50_ms p50Ms, b.p90_ms p90Ms,
           b.p99_ms p99Ms, b.max_ms maxMs, b.mean_ms meanMs, b.throughput, b.load_ms loadMs, b.at,
           b.input_shapes inputShapes
         FROM devices d CROSS JOIN bench_reports b
           ON b.id = (SELECT max(id) FROM bench_reports WHERE device_id = d.id)`,
      )
      .all() as Array<BenchRow & { deviceId: string }>;
    return new Map(rows.map(({ deviceId, ...bench }) => [deviceId, toBenchSummary(bench)]));
  }

  /**
   * The latest telemetry snapshot of every device in one query: two primary-key seeks per
   * device (a plain JOIN lets SQLite scan all raw telemetry instead: 150 ms at 60k rows).
   */
  latestSnapshotByDevice(): Map<string, TelemetrySnapshot> {
    const rows = this.db
      .prepare(
        `SELECT d.id deviceId, t.at, t.cpu_load cpuLoad, t.mem_used memUsedBytes, t.mem_total memTotalBytes,
           t.temp_c tempC
         FROM devices d CROSS JOIN telemetry t
           ON t.device_id = d.id AND t.seq = (SELECT max(seq) FROM telemetry WHERE device_id = d.id)`,
      )
      .all() as Array<TelemetrySnapshot & { deviceId: string }>;
    return new Map(rows.map(({ deviceId, ...snapshot }) => [deviceId, snapshot]));
  }

  /** Inference latency reported in telemetry since `sinceIso`, oldest first. */
  latencySeries(deviceId: string, sinceIso: string, limit = 2000): LatencyPoint[] {
    return this.db
      .prepare(
        `SELECT t.at, t.lat_count count, t.p50_ms p50Ms, t.p90_ms p90Ms, t.p99_ms p99Ms, t.max_ms maxMs,
           t.model_id modelId, m.name modelName
         FROM telemetry t LEFT JOIN models m ON m.id = t.model_id
         WHERE t.device_id = ? AND t.received_at >= ? AND t.lat_count > 0 ORDER BY t.seq DESC LIMIT ?`,
      )
      .all(deviceId, sinceIso, limit)
      .reverse() as LatencyPoint[];
  }

  latestSnapshot(deviceId: string): TelemetrySnapshot | null {
    const row = this.db
      .prepare(
        `SELECT at, cpu_load cpuLoad, mem_used memUsedBytes, mem_total memTotalBytes, temp_c tempC FROM telemetry
         WHERE device_id = ? ORDER BY seq DESC LIMIT 1`,
      )
      .get(deviceId) as TelemetrySnapshot | undefined;
    return row ?? null;
  }

  count(deviceId?: string): number {
    const row = (
      deviceId
        ? this.db.prepare('SELECT count(*) n FROM telemetry WHERE device_id = ?').get(deviceId)
        : this.db.prepare('SELECT count(*) n FROM telemetry').get()
    ) as { n: number };
    return row.n;
  }

  addEvent(deviceId: string | null, level: string, code: string, message: string, at: string): void {
    this.db
      .prepare('INSERT INTO events (device_id, level, code, message, at) VALUES (?, ?, ?, ?, ?)')
      .run(deviceId, level, code, message, at);
  }

  events(deviceId: string, limit = 50): Array<{ level: string; code: string; message: string; at: string }> {
    return this.db
      .prepare('SELECT level, code, message, at FROM events WHERE device_id = ? ORDER BY id DESC LIMIT ?')
      .all(deviceId, limit) as Array<{ level: string; code: string; message: string; at: string }>;
  }
}
