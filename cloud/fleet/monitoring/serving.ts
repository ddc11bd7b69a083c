import type { ServingStats, TelemetryRecord } from '../../../shared/protocol/index.js';
import { LatencySketch, type SketchWire } from '../../../shared/sketch.js';
import type { Db } from '../store/db.js';
import { RESOLUTION } from './options.js';

/** One (resolution, bucket, device, release) aggregate being built. */
interface Aggregate {
  resolution: number;
  bucketStart: number;
  deviceId: string;
  model: string;
  version: string;
  modelId: string;
  requests: number;
  errors: number;
  total: LatencySketch;
  queue: LatencySketch;
  compute: LatencySketch;
}

interface Row {
  resolution: number;
  bucket_start: number;
  device_id: string;
  model_name: string;
  version: string;
  model_id: string;
  requests: number;
  errors: number;
  total: string;
  queue: string;
  compute: string;
  profile?: string | null;
}

const RESOLUTIONS = [RESOLUTION.minute, RESOLUTION.hour];

/** Collects one ingest flush's serving stats into minute and hour aggregates. */
export class ServingAccumulator {
  readonly pending = new Map<string, Aggregate>();

  add(deviceId: string, record: TelemetryRecord, atMs: number): void {
    for (const s of record.serving ?? []) this.addStats(deviceId, s, atMs);
  }

  private addStats(deviceId: string, s: ServingStats, atMs: number): void {
    for (const resolution of RESOLUTIONS) {
      const bucketStart = atMs - (atMs % resolution);
      const key = `${resolution}|${bucketStart}|${deviceId}|${s.model}|${s.version}`;
      let agg = this.pending.get(key);
      if (!agg) {
        agg = {
          resolution,
          bucketStart,
          deviceId,
          model: s.model,
          version: s.version,
          modelId: s.modelId ?? '',
          requests: 0,
          errors: 0,
          total: new LatencySketch(),
          queue: new LatencySketch(),
          compute: new LatencySketch(),
        };
        this.pending.set(key, agg);
      }
      agg.requests += s.requests;
      agg.errors += s.errors;
      agg.total.mergeWire(s.totalMs);
      agg.queue.mergeWire(s.queueMs);
      agg.compute.mergeWire(s.computeMs);
    }
  }
}

export type ServingGroupBy = 'fleet' | 'device' | 'model' | 'release' | 'profile';
export const SERVING_GROUP_BY: readonly ServingGroupBy[] = ['fleet', 'device', 'model', 'release', 'profile'];

export interface ServingFilter {
  deviceId?: string;
  /** Served model name. */
  model?: string;
  /** Release: the cloud model id. */
  modelId?: string;
  profile?: string;
  /** Only these devices (e.g. a rollout's). */
  deviceIds?: readonly string[];
}

/** Merged real-traffic figures of one group over a window (latencies in ms, null without requests). */
export interface ServingSummary {
  key: string;
  requests: number;
  errors: number;
  /** errors / requests (0 without requests). */
  errorRate: number;
  /** Devices that reported traffic. */
  devices: number;
  p50Ms: number | null;
  p90Ms: number | null;
  p99Ms: number | null;
  meanMs: number | null;
  maxMs: number | null;
  computeP50Ms: number | null;
  queueP50Ms: number | null;
}

export interface ServingPoint {
  at: string;
  requests: number;
  errors: number;
  p50Ms: number | null;
  p99Ms: number | null;
}

interface Merged {
  requests: number;
  errors: number;
  devices: Set<string>;
  total: LatencySketch;
  queue: LatencySketch;
  compute: LatencySketch;
}

function emptyMerged(): Merged {
  return {
    requests: 0,
    errors: 0,
    devices: new Set(),
    total: new LatencySketch(),
    queue: new LatencySketch(),
    compute: new LatencySketch(),
  };
}

function summarize(key: string, m: Merged): ServingSummary {
  return {
    key,
    requests: m.requests,
    errors: m.errors,
    errorRate: m.requests > 0 ? m.errors / m.requests : 0,
    devices: m.devices.size,
    p50Ms: m.total.quantile(0.5),
    p90Ms: m.total.quantile(0.9),
    p99Ms: m.total.quantile(0.99),
    meanMs: m.total.mean(),
    maxMs: m.total.max,
    computeP50Ms: m.compute.quantile(0.5),
    queueP50Ms: m.queue.quantile(0.5),
  };
}

/** Minute rows for windows up to 3 h, hour rows beyond (fewer sketches to merge). */
export function servingResolution(windowMs: number): number {
  return windowMs <= 3 * RESOLUTION.hour ? RESOLUTION.minute : RESOLUTION.hour;
}

/**
 * Real-traffic latency storage and queries. Rows are merged on write (a resend never reaches
 * here: ingest only passes newly inserted records) and merged again, exactly, at query time for
 * any device, model, release, profile and window; percentiles are read off the merged DDSketch
 * (within 1 % of a value at the requested rank).
 */
export class ServingStore {
  private readonly select;
  private readonly upsert;
  private readonly deleteOld;

  constructor(private readonly db: Db) {
    this.select = db.prepare(
      'SELECT * FROM serving_rollup WHERE resolution = ? AND bucket_start = ? AND device_id = ? AND model_name = ? AND version = ?',
    );
    this.upsert = db.prepare(
      `INSERT OR REPLACE INTO serving_rollup
         (resolution, bucket_start, device_id, model_name, version, model_id, requests, errors, total, queue, compute)
       VALUES (@resolution, @bucket_start, @device_id, @model_name, @version, @model_id, @requests, @errors, @total, @queue, @compute)`,
    );
    this.deleteOld = db.prepare('DELETE FROM serving_rollup WHERE resolution = ? AND bucket_start < ?');
  }

  /** Adds a flush's aggregates to the stored rows (inside the ingest transaction). */
  write(acc: ServingAccumulator): void {
    for (const a of acc.pending.values()) {
      const old = this.select.get(a.resolution, a.bucketStart, a.deviceId, a.model, a.version) as
        | Row
        | undefined;
      if (old) {
        a.requests += old.requests;
        a.errors += old.errors;
        a.total.mergeWire(JSON.parse(old.total) as SketchWire);
        a.queue.mergeWire(JSON.parse(old.queue) as SketchWire);
        a.compute.mergeWire(JSON.parse(old.compute) as SketchWire);
      }
      this.upsert.run({
        resolution: a.resolution,
        bucket_start: a.bucketStart,
        device_id: a.deviceId,
        model_name: a.model,
        version: a.version,
        model_id: a.modelId || old?.model_id || '',
        requests: a.requests,
        errors: a.errors,
        total: JSON.stringify(a.total.toWire()),
        queue: JSON.stringify(a.queue.toWire()),
        compute: JSON.stringify(a.compute.toWire()),
      });
    }
  }

  deleteBefore(resolution: number, beforeMs: number): number {
    return this.deleteOld.run(resolution, beforeMs).changes;
  }

  private rows(fromMs: number, toMs: number, resolution: number, filter: ServingFilter): Row[] {
    const where = ['s.resolution = ?', 's.bucket_start >= ?', 's.bucket_start < ?'];
    const args: (string | number)[] = [resolution, fromMs - (fromMs % resolution), toMs];
    if (filter.deviceId) {
      where.push('s.device_id = ?');
      args.push(filter.deviceId);
    }
    if (filter.model) {
      where.push('s.model_name = ?');
      args.push(filter.model);
    }
    if (filter.modelId) {
      where.push('s.model_id = ?');
      args.push(filter.modelId);
    }
    if (filter.profile) {
      where.push('d.profile = ?');
      args.push(filter.profile);
    }
    if (filter.deviceIds) {
      if (filter.deviceIds.length === 0) return [];
      where.push(`s.device_id IN (${filter.deviceIds.map(() => '?').join(',')})`);
      args.push(...filter.deviceIds);
    }
    return this.db
      .prepare(
        `SELECT s.*, d.profile AS profile FROM serving_rollup s LEFT JOIN devices d ON d.id = s.device_id
         WHERE ${where.join(' AND ')}`,
      )
      .all(...args) as Row[];
  }

  private static keyOf(row: Row, by: ServingGroupBy): string {
    switch (by) {
      case 'fleet':
        return 'fleet';
      case 'device':
        return row.device_id;
      case 'model':
        return row.model_name;
      case 'release':
        return row.model_id || `${row.model_name}@${row.version}`;
      case 'profile':
        return row.profile ?? '';
    }
  }

  private static mergeRow(m: Merged, row: Row): void {
    m.requests += row.requests;
    m.errors += row.errors;
    m.devices.add(row.device_id);
    m.total.mergeWire(JSON.parse(row.total) as SketchWire);
    m.queue.mergeWire(JSON.parse(row.queue) as SketchWire);
    m.compute.mergeWire(JSON.parse(row.compute) as SketchWire);
  }

  /** Merged figures per group over [fromMs, toMs). */
  summary(fromMs: number, toMs: number, by: ServingGroupBy, filter: ServingFilter = {}): ServingSummary[] {
    const groups = new Map<string, Merged>();
    for (const row of this.rows(fromMs, toMs, servingResolution(toMs - fromMs), filter)) {
      const key = ServingStore.keyOf(row, by);
      let m = groups.get(key);
      if (!m) groups.set(key, (m = emptyMerged()));
      ServingStore.mergeRow(m, row);
    }
    return [...groups.entries()]
      .map(([key, m]) => summarize(key, m))
      .sort((a, b) => a.key.localeCompare(b.key));
  }

  /** Per group, points every `stepMs` (a multiple of the resolution) with p50/p99 and counts. */
  series(
    fromMs: number,
    toMs: number,
    stepMs: number,
    by: ServingGroupBy,
    filter: ServingFilter = {},
  ): { key: string; points: ServingPoint[] }[] {
    const resolution = servingResolution(toMs - fromMs);
    const step = Math.max(resolution, stepMs - (stepMs % resolution));
    const groups = new Map<string, Map<number, Merged>>();
    for (const row of this.rows(fromMs, toMs, resolution, filter)) {
      const key = ServingStore.keyOf(row, by);
      let byStep = groups.get(key);
      if (!byStep) groups.set(key, (byStep = new Map()));
      const t = row.bucket_start - (row.bucket_start % step);
      let m = byStep.get(t);
      if (!m) byStep.set(t, (m = emptyMerged()));
      ServingStore.mergeRow(m, row);
    }
    return [...groups.entries()].map(([key, byStep]) => ({
      key,
      points: [...byStep.entries()]
        .sort((a, b) => a[0] - b[0])
        .map(([t, m]) => ({
          at: new Date(t).toISOString(),
          requests: m.requests,
          errors: m.errors,
          p50Ms: m.total.quantile(0.5),
          p99Ms: m.total.quantile(0.99),
        })),
    }));
  }
}
