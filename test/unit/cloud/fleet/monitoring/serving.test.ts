import { describe, expect, it } from 'vitest';
import type { ServingStats, TelemetryRecord } from '../../../../../shared/protocol/index.js';
import { telemetryBatchSchema } from '../../../../../shared/protocol/index.js';
import { createRng } from '../../../../../shared/random.js';
import { LatencySketch } from '../../../../../shared/sketch.js';
import { monitorFixture } from './fixture.js';

const DEVICES = 1000;
const RECORDS_PER_DEVICE = 3;
const REQUESTS_PER_RECORD = 100;

/** Exact percentile at rank q·(n−1) (the rank a DDSketch reads). */
function exact(sorted: Float64Array, q: number): number {
  return sorted[Math.floor(q * (sorted.length - 1))];
}

type Draw = (device: number, rng: () => number) => number;

function normal(rng: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - rng())) * Math.cos(2 * Math.PI * rng());
}

/** Skewed: log-normal per device, medians spread over 20x, tails of different weight. */
const skewed: Draw = (d, rng) => {
  const median = 0.5 * 20 ** ((d % 97) / 97);
  const sigma = 0.2 + ((d * 7) % 13) / 20;
  return median * Math.exp(sigma * normal(rng));
};

/** Bimodal: 85 % fast (cache hit), 15 % four times slower, on every device. */
const bimodal: Draw = (d, rng) => {
  const base = 1 + (d % 10) / 10;
  const mode = rng() < 0.85 ? base : 4 * base;
  return mode * Math.exp(0.05 * normal(rng));
};

function stats(samples: number[], errors: number): ServingStats {
  const total = new LatencySketch();
  const compute = new LatencySketch();
  for (const v of samples) {
    total.add(v);
    compute.add(v * 0.8);
  }
  return {
    model: 'mnist-mlp',
    version: '3',
    modelId: 'm-3',
    requests: samples.length + errors,
    errors,
    totalMs: total.toWire(),
    queueMs: new LatencySketch().toWire(),
    computeMs: compute.toWire(),
  };
}

async function simulate(draw: Draw, seed: number) {
  const f = await monitorFixture();
  const rng = createRng(seed);
  const all: number[] = [];
  const byProfile = new Map<string, number[]>();
  let requests = 0;
  let errors = 0;
  const now = Date.now();
  const submitted: Promise<unknown>[] = [];
  for (let d = 0; d < DEVICES; d++) {
    const profile = d % 3 === 0 ? 'rpi4' : 'rpi5';
    await f.addDevice(`dev-${d}`, profile);
    const records: TelemetryRecord[] = [];
    for (let r = 0; r < RECORDS_PER_DEVICE; r++) {
      const samples = Array.from({ length: REQUESTS_PER_RECORD }, () => draw(d, rng));
      const failed = d % 10 === 0 ? 2 : 0;
      all.push(...samples);
      const list = byProfile.get(profile) ?? [];
      list.push(...samples);
      byProfile.set(profile, list);
      requests += samples.length + failed;
      errors += failed;
      records.push({
        seq: r + 1,
        at: new Date(now - 60_000 + r * 10_000).toISOString(),
        cpuLoad: 10,
        memUsedBytes: 1,
        memTotalBytes: 2,
        tempC: null,
        modelId: 'm-3',
        latency: null,
        serving: [stats(samples, failed)],
      });
    }
    // Through the wire schema, as the MQTT router would see it.
    const batch = telemetryBatchSchema.parse(JSON.parse(JSON.stringify({ v: 1, records })));
    submitted.push(f.monitor.ingest.submit(`dev-${d}`, batch.records));
  }
  f.monitor.ingest.flush();
  await Promise.all(submitted);
  return { f, all, byProfile, requests, errors, now };
}

describe('real-traffic latency merged across the fleet', () => {
  for (const [label, draw, seed] of [
    ['skewed (log-normal, medians over 20x)', skewed, 1],
    ['bimodal (85 % fast, 15 % 4x slower)', bimodal, 2],
  ] as const) {
    it(`${label}: 1,000 devices, fleet p50/p90/p99 within 2 % of the exact percentiles`, async () => {
      const { f, all, byProfile, requests, errors, now } = await simulate(draw, seed);
      const sorted = Float64Array.from(all).sort();
      const [fleet] = await f.monitor.serving.summary(now - 3_600_000, now + 60_000, 'fleet');
      expect(fleet.requests).toBe(requests);
      expect(fleet.errors).toBe(errors);
      expect(fleet.errorRate).toBeCloseTo(errors / requests, 12);
      expect(fleet.devices).toBe(DEVICES);
      for (const [q, got] of [
        [0.5, fleet.p50Ms],
        [0.9, fleet.p90Ms],
        [0.99, fleet.p99Ms],
      ] as const) {
        const want = exact(sorted, q);
        expect(Math.abs(got! - want) / want, `q${q}: ${got} vs ${want}`).toBeLessThanOrEqual(0.02);
      }
      expect(fleet.maxMs).toBe(sorted[sorted.length - 1]);

      // Any slice merges just as exactly: per profile.
      for (const group of await f.monitor.serving.summary(now - 3_600_000, now + 60_000, 'profile')) {
        const mine = Float64Array.from(byProfile.get(group.key)!).sort();
        const want = exact(mine, 0.99);
        expect(Math.abs(group.p99Ms! - want) / want).toBeLessThanOrEqual(0.02);
      }
      f.db.close();
    }, 120_000);
  }

  it('a resent batch is not counted twice; release and device filters; series per minute', async () => {
    const f = await monitorFixture();
    await f.addDevice('a');
    await f.addDevice('b');
    const now = Date.now();
    const record = (seq: number, version: string, values: number[]): TelemetryRecord => ({
      seq,
      at: new Date(now).toISOString(),
      cpuLoad: 1,
      memUsedBytes: 1,
      memTotalBytes: 2,
      tempC: null,
      modelId: `m-${version}`,
      latency: null,
      serving: [{ ...stats(values, 1), version, modelId: `m-${version}` }],
    });
    await f.monitor.ingest.submit('a', [record(1, '1', [1, 1, 1])]);
    await f.monitor.ingest.submit('a', [record(1, '1', [1, 1, 1])]); // resend
    await f.monitor.ingest.submit('b', [record(1, '2', [5, 5])]);
    const byRelease = await f.monitor.serving.summary(now - 60_000, now + 60_000, 'release');
    expect(byRelease.map((g) => [g.key, g.requests, g.errors])).toEqual([
      ['m-1', 4, 1],
      ['m-2', 3, 1],
    ]);
    const [onlyB] = await f.monitor.serving.summary(now - 60_000, now + 60_000, 'fleet', { deviceId: 'b' });
    expect(onlyB.p50Ms).toBeCloseTo(5, 1);
    const [series] = await f.monitor.serving.series(now - 600_000, now + 60_000, 60_000, 'fleet');
    expect(series.points).toHaveLength(1);
    expect(series.points[0].requests).toBe(7);
    f.db.close();
  });
});
