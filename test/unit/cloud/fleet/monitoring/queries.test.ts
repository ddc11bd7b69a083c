import { describe, expect, it } from 'vitest';
import { FleetLatencyQuery } from '../../../../../cloud/fleet/monitoring/latency.js';
import { RollupStore } from '../../../../../cloud/fleet/monitoring/rollups.js';
import { createRng } from '../../../../../shared/random.js';
import { monitorFixture } from './fixture.js';
import { lognormal, percentile, record, summarize } from './synthetic.js';

const MIN = 60_000;
const HOUR = 60 * MIN;

/** Feeds a device records every `stepMin` minutes over [fromAgoMin, toAgoMin) ago. */
async function feed(
  f: Awaited<ReturnType<typeof monitorFixture>>,
  deviceId: string,
  opts: {
    fromAgoMin: number;
    toAgoMin: number;
    stepMin: number;
    medianMs: number;
    modelId: string;
    seq: number;
  },
  rng: () => number,
  samplesOut?: number[],
): Promise<number> {
  const now = Date.now();
  const records = [];
  let seq = opts.seq;
  for (let ago = opts.fromAgoMin; ago > opts.toAgoMin; ago -= opts.stepMin) {
    const samples = lognormal(rng, 200, opts.medianMs, 0.15);
    if (samplesOut) for (const v of samples) samplesOut.push(v);
    records.push(record(seq++, now - ago * MIN, summarize(samples), { modelId: opts.modelId }));
  }
  await f.monitor.ingest.submit(deviceId, records);
  return seq;
}

describe('fleet latency', () => {
  it('answers p50/p90/p99 per device, model and profile close to the exact values', async () => {
    const f = await monitorFixture();
    const rng = createRng(1);
    const exact = new Map<string, number[]>();
    const setup = [
      ['a', 'rpi4', 'm1', 12],
      ['b', 'rpi4', 'm1', 8],
      ['c', 'rpi5', 'm2', 3],
    ] as const;
    for (const [id, profile, model, median] of setup) {
      await f.addDevice(id, profile);
      const samples: number[] = [];
      await feed(
        f,
        id,
        { fromAgoMin: 23 * 60, toAgoMin: 0, stepMin: 30, medianMs: median, modelId: model, seq: 1 },
        rng,
        samples,
      );
      exact.set(id, samples);
    }
    const byDevice = f.monitor.latency.run('device', 24 * HOUR);
    expect(byDevice.window.resolution).toBe('hour');
    expect(byDevice.groups.map((g) => g.key)).toEqual(['a', 'b', 'c']);
    for (const g of byDevice.groups) {
      const sorted = Float64Array.from(exact.get(g.key)!).sort();
      expect(g.count).toBe(sorted.length);
      expect(Math.abs(g.p50Ms! - percentile(sorted, 50)) / percentile(sorted, 50)).toBeLessThan(0.03);
      expect(Math.abs(g.p99Ms! - percentile(sorted, 99)) / percentile(sorted, 99)).toBeLessThan(0.05);
      expect(g.maxMs).toBe(sorted[sorted.length - 1]);
    }
    const byProfile = f.monitor.latency.run('profile', 24 * HOUR);
    expect(byProfile.groups.map((g) => [g.key, g.devices])).toEqual([
      ['rpi4', 2],
      ['rpi5', 1],
    ]);
    const rpi4 = Float64Array.from([...exact.get('a')!, ...exact.get('b')!]).sort();
    expect(Math.abs(byProfile.groups[0].p90Ms! - percentile(rpi4, 90)) / percentile(rpi4, 90)).toBeLessThan(
      0.03,
    );
    const byModel = f.monitor.latency.run('model', 24 * HOUR);
    expect(byModel.groups.map((g) => g.key)).toEqual(['m1', 'm2']);
    expect(byModel.fleet.devices).toBe(3);
    // A short window reads minute rollups and only the recent records.
    const recent = f.monitor.latency.run('device', HOUR);
    expect(recent.window.resolution).toBe('minute');
    expect(recent.groups.every((g) => g.records <= 3)).toBe(true);
  });
});

describe('regression detection', () => {
  async function scenario() {
    const f = await monitorFixture();
    const rng = createRng(2);
    const base = { fromAgoMin: 20 * 60, toAgoMin: 3 * 60, stepMin: 30 };
    const cur = { fromAgoMin: 55, toAgoMin: 0, stepMin: 5 };
    const devices = [
      // id, profile, baseline (model, ms), current (model, ms)
      ['a1', 'rpi4', 'm1', 10, 'm1', 10],
      ['a2', 'rpi4', 'm1', 10, 'm1', 10.3],
      ['a3', 'rpi4', 'm1', 10, 'm1', 20],
      ['a4', 'rpi4', 'm1', 10, 'm1', 9.8],
      ['b1', 'rpi5', 'm1', 5, 'm2', 9],
      ['b2', 'rpi5', 'm1', 5, 'm2', 9.2],
    ] as const;
    for (const [id, profile, m0, ms0, m1, ms1] of devices) {
      await f.addDevice(id, profile);
      const seq = await feed(f, id, { ...base, medianMs: ms0, modelId: m0, seq: 1 }, rng);
      await feed(f, id, { ...cur, medianMs: ms1, modelId: m1, seq }, rng);
    }
    return f;
  }

  it('flags a device slower than its own baseline and than its profile peers, and a slower new version', async () => {
    const f = await scenario();
    const found = await f.monitor.regressions.detect();
    const of = (kind: string, key: (r: (typeof found)[number]) => string | null) =>
      found
        .filter((r) => r.kind === kind)
        .map(key)
        .sort();
    expect(of('device-baseline', (r) => r.deviceId)).toEqual(['a3', 'b1', 'b2']);
    const a3 = found.find((r) => r.kind === 'device-baseline' && r.deviceId === 'a3')!;
    expect(a3.ratio).toBeGreaterThan(1.8);
    expect(a3.ratio).toBeLessThan(2.2);
    expect(of('device-vs-profile', (r) => r.deviceId)).toEqual(['a3']);
    expect(of('model-vs-profile', (r) => `${r.profile}/${r.modelId}`)).toEqual(['rpi5/m2']);
    // m1 on rpi4 got slower too (a3 is a quarter of it); m2 has no baseline of its own.
    expect(of('model-baseline', (r) => `${r.profile}/${r.modelId}`)).toEqual(['rpi4/m1']);
    expect(found[0].ratio).toBeGreaterThanOrEqual(found[found.length - 1].ratio);
  });

  it('respects the threshold and the minimum sample count', async () => {
    const f = await scenario();
    expect(await f.monitor.regressions.detect(Date.now(), { regressionThreshold: 1.5 })).toEqual([]);
    expect(await f.monitor.regressions.detect(Date.now(), { regressionMinSamples: 1e9 })).toEqual([]);
  });
});

describe('fleet health', () => {
  it('tells online, offline (status / last will) and stale devices apart and flags throttling', async () => {
    const f = await monitorFixture();
    await f.addDevice('ok');
    await f.addDevice('hot');
    await f.addDevice('gone', 'rpi4', false);
    await f.addDevice('silent');
    await f.devices.setOnline('silent', true, new Date(Date.now() - 5 * MIN).toISOString());
    await f.addDevice('revoked');
    await f.devices.revoke('revoked');
    const now = Date.now();
    await f.monitor.ingest.submit('ok', [record(1, now, null, { tempC: 45, throttledBits: 0x50000 })]);
    await f.monitor.ingest.submit('hot', [
      record(1, now - 2 * MIN, null, { tempC: 71 }),
      record(2, now, null, { tempC: 83, throttledBits: 0x4 }),
    ]);
    const health = await f.monitor.health.run();
    expect(health.counts).toEqual({ total: 4, online: 2, offline: 1, stale: 1, throttled: 1 });
    const by = new Map(health.devices.map((d) => [d.id, d]));
    expect(by.get('gone')?.status).toBe('offline');
    expect(by.get('silent')?.status).toBe('stale');
    expect(by.get('silent')?.silentForS).toBeGreaterThanOrEqual(299);
    expect(by.get('hot')).toMatchObject({
      status: 'online',
      throttled: true,
      throttledBits: 0x4,
      tempMaxC: 83,
      records: 2,
    });
    expect(by.get('hot')?.tempMeanC).toBe(77);
    expect(by.get('ok')).toMatchObject({ throttled: false, throttledBits: 0x50000 });
    // Three missed 10 s intervals make a device stale: the threshold is configurable.
    expect(health.staleAfterS).toBe(30);
    const lenient = await monitorFixture({ offlineAfterIntervals: 60 });
    await lenient.addDevice('silent');
    await lenient.devices.setOnline('silent', true, new Date(Date.now() - 5 * MIN).toISOString());
    expect((await lenient.monitor.health.run()).devices[0].status).toBe('online');
  });
});

describe('query cache', () => {
  it('never serves a bucket that changed or was pruned since it was decoded', async () => {
    const f = await monitorFixture({ queryCacheRows: 10 });
    await f.addDevice('d1');
    const t = Date.now() - 3 * HOUR;
    await f.monitor.ingest.submit('d1', [record(1, t, summarize([5, 5, 5, 5]))]);
    expect(f.monitor.latency.run('device', 24 * HOUR).groups[0].count).toBe(4);
    const hits = f.monitor.rollups.cache.stats.hits;
    expect(f.monitor.latency.run('device', 24 * HOUR).groups[0].count).toBe(4);
    expect(f.monitor.rollups.cache.stats.hits).toBeGreaterThan(hits);
    // A late record lands in the cached (closed) hour.
    await f.monitor.ingest.submit('d1', [record(2, t + 1000, summarize([50, 50]))]);
    const after = f.monitor.latency.run('device', 24 * HOUR).groups[0];
    expect(after.count).toBe(6);
    expect(after.maxMs).toBe(50);
    await f.monitor.sweep(Date.now() + 500 * 24 * HOUR);
    expect(f.monitor.latency.run('device', 24 * HOUR).groups).toEqual([]);
    expect(f.monitor.rollups.cache.size).toBeLessThanOrEqual(10);
  });

  it('answers exactly as an uncached read while writes append deltas and trigger re-reads', async () => {
    const f = await monitorFixture();
    const rng = createRng(9);
    for (const id of ['a', 'b', 'c']) await f.addDevice(id);
    const t = Date.now() - 30 * MIN;
    const fresh = () =>
      new FleetLatencyQuery(f.db, new RollupStore(f.db, { cacheRows: 0 }), f.monitor.options).run(
        'device',
        24 * HOUR,
      );
    let seq = 1;
    for (let round = 0; round < 150; round++) {
      if (round % 25 === 0) f.monitor.latency.run('device', 24 * HOUR); // (re)fills the cache
      const id = ['a', 'b', 'c'][round % 3];
      await f.monitor.ingest.submit(id, [
        record(seq++, t + round * 1000, summarize(lognormal(rng, 50, 3 + round / 50, 0.2))),
      ]);
    }
    const cached = f.monitor.latency.run('device', 24 * HOUR);
    const uncached = fresh();
    expect(cached.groups.map((g) => [g.key, g.count, g.maxMs])).toEqual(
      uncached.groups.map((g) => [g.key, g.count, g.maxMs]),
    );
    cached.groups.forEach((g, i) => {
      expect(g.p99Ms).toBeCloseTo(uncached.groups[i].p99Ms!, 3);
      expect(g.p50Ms).toBeCloseTo(uncached.groups[i].p50Ms!, 3);
    });
  });
});
