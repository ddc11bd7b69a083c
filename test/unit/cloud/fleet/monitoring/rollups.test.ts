import { describe, expect, it } from 'vitest';
import { decodeHistogram, total } from '../../../../../cloud/fleet/monitoring/histogram.js';
import type { RollupRow } from '../../../../../cloud/fleet/monitoring/rollups.js';
import { monitorFixture } from './fixture.js';
import { record, summarize } from './synthetic.js';

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;

describe('rollups (downsampling)', () => {
  it('aggregates records into minute and hour buckets with exact sums and mergeable histograms', async () => {
    const f = await monitorFixture();
    await f.addDevice('d1');
    const hourStart = Date.now() - (Date.now() % HOUR) - 2 * HOUR;
    // 3 records in minute 0, 2 in minute 1, 1 in the next hour; temperatures, throttling, models.
    const recs = [
      record(1, hourStart + 1_000, summarize([1, 2, 3]), { tempC: 50, cpuLoad: 10 }),
      record(2, hourStart + 20_000, summarize([2, 3, 4]), { tempC: 60, cpuLoad: 20, throttledBits: 0x4 }),
      record(3, hourStart + 40_000, summarize([3, 4, 50]), { tempC: -1, cpuLoad: 30 }),
      record(4, hourStart + MIN + 1, summarize([5, 5]), { throttledBits: 0x50000 }),
      record(5, hourStart + MIN + 2, null, { modelId: null, throttled: true }),
      record(6, hourStart + HOUR + 5, summarize([7]), {}),
    ];
    await f.monitor.ingest.submit('d1', recs);
    const minute = f.monitor.rollups.device('d1', MIN, 0, Date.now() + HOUR);
    const m0 = minute.find((r) => r.bucket_start === hourStart && r.model_id === 'model-a') as RollupRow;
    expect(m0).toMatchObject({
      records: 3,
      lat_count: 9,
      lat_max_ms: 50,
      cpu_sum: 60,
      temp_n: 2,
      temp_max: 60,
    });
    expect(m0.temp_sum).toBe(110);
    expect(m0.throttled_records).toBe(1);
    expect(m0.lat_sum_ms).toBeCloseTo(1 + 2 + 3 + 2 + 3 + 4 + 3 + 4 + 50, 9);
    expect(total(decodeHistogram(m0.hist))).toBeCloseTo(9, 4);
    const m1 = minute.filter((r) => r.bucket_start === hourStart + MIN);
    expect(m1.map((r) => r.model_id).sort()).toEqual(['', 'model-a']);
    const noModel = m1.find((r) => r.model_id === '') as RollupRow;
    expect(noModel).toMatchObject({ records: 1, lat_count: 0, hist: null, throttled_records: 1 });
    // 0x50000: throttling happened since boot (bits 16, 18) but is not current.
    expect(m1.find((r) => r.model_id === 'model-a')).toMatchObject({
      throttled_records: 0,
      throttled_bits: 0x50000,
    });

    const hours = f.monitor.rollups.device('d1', HOUR, 0, Date.now() + HOUR);
    const h0 = hours.filter((r) => r.bucket_start === hourStart);
    const sum = (rows: RollupRow[], k: keyof RollupRow) => rows.reduce((s, r) => s + Number(r[k]), 0);
    const m0to1 = minute.filter((r) => r.bucket_start < hourStart + HOUR);
    for (const k of ['records', 'lat_count', 'cpu_sum', 'temp_n', 'throttled_records'] as const) {
      expect(sum(h0, k)).toBe(sum(m0to1, k));
    }
    expect(hours.filter((r) => r.bucket_start === hourStart + HOUR)).toHaveLength(1);
  });

  it('merges late records into existing buckets (upsert), histogram included', async () => {
    const f = await monitorFixture();
    await f.addDevice('d1');
    const t = Date.now() - 10 * MIN;
    await f.monitor.ingest.submit('d1', [record(1, t, summarize([1, 1, 1, 1]))]);
    await f.monitor.ingest.submit('d1', [record(2, t + 1, summarize([8, 8, 8, 8, 8, 8]))]);
    const [row] = f.monitor.rollups.device('d1', MIN, t - MIN, t + MIN);
    expect(row).toMatchObject({ records: 2, lat_count: 10, lat_max_ms: 8 });
    expect(total(decodeHistogram(row.hist))).toBeCloseTo(10, 4);
  });
});

describe('retention', () => {
  it('keeps raw rows a day, minute rollups a month and hour rollups 400 days by default', async () => {
    const f = await monitorFixture();
    await f.addDevice('d1');
    const now = Date.now();
    const iso = (ms: number) => new Date(ms).toISOString();
    f.records.insert('d1', record(1, now - 2 * DAY, null), iso(now - 2 * DAY));
    f.records.insert('d1', record(2, now - DAY - MIN, null), iso(now - DAY - MIN));
    f.records.insert('d1', record(3, now - DAY + MIN, null), iso(now - DAY + MIN));
    f.records.insert('d1', record(4, now, null), iso(now));
    const put = f.db.prepare(
      `INSERT INTO telemetry_rollup (resolution, bucket_start, device_id, model_id, records, lat_count, lat_sum_ms,
        cpu_sum, temp_n, temp_sum, throttled_records, throttled_bits, last_at) VALUES (?, ?, 'd1', '', 1, 0, 0, 0, 0, 0, 0, 0, 0)`,
    );
    for (const age of [31 * DAY, 29 * DAY]) put.run(MIN, now - age);
    for (const age of [401 * DAY, 399 * DAY]) put.run(HOUR, now - age);
    const result = await f.monitor.sweep(now);
    expect(result).toEqual({ rawDeleted: 2, minuteDeleted: 1, hourDeleted: 1 });
    expect(await f.telemetry.count('d1')).toBe(2);
    const left = f.db
      .prepare('SELECT resolution, bucket_start FROM telemetry_rollup ORDER BY resolution')
      .all();
    expect(left).toEqual([
      { resolution: MIN, bucket_start: now - 29 * DAY },
      { resolution: HOUR, bucket_start: now - 399 * DAY },
    ]);
  });

  it('honours configured retention', async () => {
    const f = await monitorFixture({ rawRetentionMs: HOUR });
    await f.addDevice('d1');
    const now = Date.now();
    f.records.insert('d1', record(1, now, null), new Date(now - 2 * HOUR).toISOString());
    expect((await f.monitor.sweep(now)).rawDeleted).toBe(1);
  });
});
