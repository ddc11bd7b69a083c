import { describe, expect, it } from 'vitest';
import { abortReason } from '../../../../cloud/fleet/rollouts/abort-rules.js';
import { soakRemainingMs, trafficVerdict } from '../../../../cloud/fleet/rollouts/traffic-gate.js';
import { DEFAULT_POLICY, type Execution } from '../../../../cloud/fleet/rollouts/types.js';
import type { TelemetryRecord } from '../../../../shared/protocol/index.js';
import { LatencySketch } from '../../../../shared/sketch.js';
import { monitorFixture } from './monitoring/fixture.js';

const T0 = Date.now() - 30 * 60_000;

function record(
  seq: number,
  atMs: number,
  modelId: string,
  latencies: number[],
  errors: number,
): TelemetryRecord {
  const total = new LatencySketch();
  for (const v of latencies) total.add(v);
  return {
    seq,
    at: new Date(atMs).toISOString(),
    cpuLoad: 1,
    memUsedBytes: 1,
    memTotalBytes: 2,
    tempC: null,
    modelId,
    latency: null,
    serving: [
      {
        model: 'digits',
        version: modelId,
        modelId,
        requests: latencies.length + errors,
        errors,
        totalMs: total.toWire(),
        queueMs: new LatencySketch().toWire(),
        computeMs: total.toWire(),
      },
    ],
  };
}

function execution(deviceId: string): Execution {
  return {
    rolloutId: 'r-1',
    deviceId,
    wave: 0,
    status: 'succeeded',
    targetVersion: 2,
    previousModelId: 'm-old',
    startedAt: new Date(T0).toISOString(),
    finishedAt: new Date(T0 + 60_000).toISOString(),
    reason: null,
    p50Ms: null,
    p99Ms: null,
    rolledBack: false,
  };
}

async function fleetWith(newLatency: number, newErrors: number) {
  const f = await monitorFixture();
  for (const id of ['a', 'b']) {
    await f.addDevice(id);
    // Old release before the switch, new release after it, on the same devices.
    await f.monitor.ingest.submit(id, [
      record(1, T0 - 5 * 60_000, 'm-old', new Array(200).fill(2), 0),
      record(2, T0 + 5 * 60_000, 'm-new', new Array(200).fill(newLatency), newErrors),
    ]);
  }
  const query = async (from: number, to: number, filter: object) =>
    (await f.monitor.serving.summary(from, to, 'fleet', filter))[0];
  return { f, query };
}

describe('rollouts judged on real traffic', () => {
  const policy = { ...DEFAULT_POLICY, soakS: 600, maxP99IncreasePercent: 20, maxErrorRateIncreasePoints: 1 };
  const wave = [execution('a'), execution('b')];

  it('passes a release that users feel no worse on', async () => {
    const { query } = await fleetWith(2.1, 0);
    expect(await trafficVerdict(policy, 'm-new', wave, Date.now(), query)).toBeNull();
  });

  it("the rollout's abort rules wait for the verdict: none for a good release, the reason for a bad one", async () => {
    const rollout = {
      id: 'r-1',
      modelId: 'm-new',
      selector: { devices: ['a', 'b'] },
      policy,
      status: 'running' as const,
      reason: null,
      currentWave: 0,
      createdBy: 't',
      createdAt: new Date(T0).toISOString(),
      updatedAt: new Date(T0).toISOString(),
    };
    const good = await fleetWith(2.1, 0);
    expect(await abortReason(rollout, wave, Date.now(), good.query)).toBeNull();
    const bad = await fleetWith(3, 0);
    expect(await abortReason(rollout, wave, Date.now(), bad.query)).toMatch(/^wave 0: real-traffic p99 /);
  });

  it('stops a release whose real-traffic p99 regressed beyond the budget', async () => {
    const { query } = await fleetWith(3, 0);
    expect(await trafficVerdict(policy, 'm-new', wave, Date.now(), query)).toMatch(
      /p99 .* vs .* on m-old \(\+5\d % > 20 %\)/,
    );
  });

  it('stops a release whose error rate rose', async () => {
    const { query } = await fleetWith(2, 10);
    expect(await trafficVerdict(policy, 'm-new', wave, Date.now(), query)).toMatch(
      /error rate 4\.76 % .* vs 0\.00 %/,
    );
  });

  it('judges nothing without traffic, and waits out the soak', async () => {
    const f = await monitorFixture();
    const query = async (from: number, to: number, filter: object) =>
      (await f.monitor.serving.summary(from, to, 'fleet', filter))[0];
    expect(await trafficVerdict(policy, 'm-new', wave, Date.now(), query)).toBeNull();
    expect(soakRemainingMs(policy, wave, T0 + 60_000 + 1000)).toBe(599_000);
    expect(soakRemainingMs(policy, wave, T0 + 60_000 + 600_000)).toBe(0);
    expect(soakRemainingMs({ ...policy, soakS: 0 }, wave, T0)).toBe(0);
  });
});
