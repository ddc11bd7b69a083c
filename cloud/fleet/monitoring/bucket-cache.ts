import type { Db } from '../store/db.js';

/** The latency part of one rollup row, histogram decoded. */
export interface LatencyRow {
  device_id: string;
  model_id: string;
  records: number;
  lat_count: number;
  lat_sum_ms: number;
  lat_max_ms: number | null;
  /** Histogram bucket of weights[offset]. */
  first: number;
  /** Dense histogram weights weights[offset … offset + length), shared by every row of a bucket. */
  weights: Float32Array;
  offset: number;
  length: number;
}

interface RawRow extends Omit<LatencyRow, 'first' | 'weights' | 'offset' | 'length'> {
  hist: Buffer | null;
}

/**
 * Decodes one bucket's rows: one literal shape for every row (object spread would leave slow
 * dictionary-mode objects) and one Float32Array for all their weights (one ArrayBuffer per row
 * would cost the garbage collector dearly at 100,000 cached rows).
 */
function decodeBucket(raw: RawRow[]): LatencyRow[] {
  let floats = 0;
  for (const row of raw) if (row.hist && row.hist.length >= 6) floats += (row.hist.length - 2) >> 2;
  const weights = new Float32Array(floats);
  let offset = 0;
  return raw.map((row) => {
    const hist = row.hist;
    let first = 0;
    let length = 0;
    if (hist && hist.length >= 6) {
      length = (hist.length - 2) >> 2;
      first = hist.readUInt16LE(0);
      for (let i = 0; i < length; i++) weights[offset + i] = hist.readFloatLE(2 + 4 * i);
    }
    const decoded: LatencyRow = {
      device_id: row.device_id,
      model_id: row.model_id,
      records: row.records,
      lat_count: row.lat_count,
      lat_sum_ms: row.lat_sum_ms,
      lat_max_ms: row.lat_max_ms,
      first,
      weights,
      offset,
      length,
    };
    offset += length;
    return decoded;
  });
}

/**
 * Decoded latency rows per (resolution, bucket), most recently used first, bounded by a row
 * count. Turning SQLite rows into JS objects costs ~2.5 µs a row (a Buffer per histogram),
 * ten times what SQLite needs to find them: a 24 h fleet query over 25,000 hour rows would
 * spend 60 ms on that alone. Buckets are decoded once; writes append their deltas (see
 * append()) and retention deletes drop buckets, so latency answers always equal what SQLite
 * holds. (A write of records without latency leaves the cached `records` count behind until the
 * bucket is re-read; the latency figures are unaffected.)
 */
export class LatencyBucketCache {
  private readonly buckets = new Map<string, LatencyRow[]>();
  /** Delta rows appended to a cached bucket since it was read. */
  private readonly deltas = new Map<string, number>();
  private rowsCached = 0;
  private readonly scan;
  readonly stats = { hits: 0, misses: 0, evictions: 0 };

  constructor(
    db: Db,
    /** Most rows kept decoded (~300 bytes each). */
    private readonly maxRows: number,
  ) {
    this.scan = db.prepare(
      `SELECT device_id, model_id, records, lat_count, lat_sum_ms, lat_max_ms, hist FROM telemetry_rollup
       WHERE resolution = ? AND bucket_start = ? AND lat_count > 0`,
    );
  }

  rows(resolution: number, bucketStart: number): LatencyRow[] {
    const key = `${resolution}|${bucketStart}`;
    const cached = this.buckets.get(key);
    if (cached) {
      this.stats.hits++;
      // Map order is the LRU order: move to the back.
      this.buckets.delete(key);
      this.buckets.set(key, cached);
      return cached;
    }
    this.stats.misses++;
    const rows = decodeBucket(this.scan.all(resolution, bucketStart) as RawRow[]);
    if (rows.length <= this.maxRows) {
      this.buckets.set(key, rows);
      this.rowsCached += rows.length;
      for (const [oldest, old] of this.buckets) {
        if (this.rowsCached <= this.maxRows) break;
        this.buckets.delete(oldest);
        this.deltas.delete(oldest);
        this.rowsCached -= old.length;
        this.stats.evictions++;
      }
    }
    return rows;
  }

  /**
   * A write added `row` (a delta aggregate) to a bucket: histograms and counts are additive, so
   * the cached bucket stays exact by carrying the delta as one more row, until the deltas
   * outnumber the rows read from SQLite; then the bucket is dropped and re-read merged. The
   * current hour thus costs one re-read per ~1,000 writes instead of one per write.
   */
  append(resolution: number, bucketStart: number, row: LatencyRow): void {
    const key = `${resolution}|${bucketStart}`;
    const rows = this.buckets.get(key);
    if (!rows) return;
    const deltas = (this.deltas.get(key) ?? 0) + 1;
    if (deltas > Math.max(64, rows.length - deltas)) {
      this.invalidate(resolution, bucketStart);
      return;
    }
    rows.push(row);
    this.rowsCached++;
    this.deltas.set(key, deltas);
  }

  invalidate(resolution: number, bucketStart: number): void {
    const key = `${resolution}|${bucketStart}`;
    const rows = this.buckets.get(key);
    this.deltas.delete(key);
    if (!rows) return;
    this.buckets.delete(key);
    this.rowsCached -= rows.length;
  }

  /** Drops every cached bucket of `resolution` that starts before `beforeMs`. */
  pruneBefore(resolution: number, beforeMs: number): void {
    for (const [key, rows] of this.buckets) {
      const [r, start] = key.split('|').map(Number);
      if (r !== resolution || start >= beforeMs) continue;
      this.buckets.delete(key);
      this.deltas.delete(key);
      this.rowsCached -= rows.length;
    }
  }

  get size(): number {
    return this.rowsCached;
  }
}
