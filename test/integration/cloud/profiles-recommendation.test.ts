import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { taggedSample } from '../../support/models.js';
import { FleetHarness } from '../e2e/fleet-harness.js';

// README "Compress models": your own device profiles through `POST /api/profiles` (admin), and
// `GET /api/models/:id/recommendation`, which picks by what devices of the profile measured
// (FP32 where INT8 ran slower there), else by the compression job's measurement.

describe('device profiles and the recommendation, over HTTP', () => {
  let fleet: FleetHarness;
  let api: (
    method: string,
    path: string,
    body?: unknown,
    token?: string,
  ) => Promise<{ status: number; body: any }>;
  beforeAll(async () => {
    fleet = await FleetHarness.start(1);
    api = (method, path, body, token = fleet.cloud.adminToken) =>
      fetch(`${fleet.cloud.httpUrl}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${token}`,
          ...(body ? { 'content-type': 'application/json' } : {}),
        },
        body: body ? JSON.stringify(body) : undefined,
      }).then(async (r) => ({ status: r.status, body: await r.json() }));
  }, 60_000);
  afterAll(async () => fleet?.stop());

  it('admins add a profile; viewers may not; a bad one is INPUT_INVALID naming the field', async () => {
    const { profiles } = (await api('GET', '/api/profiles')).body;
    const rpi4 = profiles.find((p: { name: string }) => p.name === 'rpi4');
    const custom = { ...rpi4, name: 'rpi4-lowmem', memoryBudgetBytes: 128 * 1024 * 1024 };
    const added = await api('POST', '/api/profiles', custom);
    expect(added.status).toBe(201);
    expect(added.body.name).toBe('rpi4-lowmem');
    const names = (await api('GET', '/api/profiles')).body.profiles.map((p: { name: string }) => p.name);
    expect(names).toContain('rpi4-lowmem');
    const viewer = (await api('POST', '/api/tokens', { name: 'v', role: 'viewer' })).body.token;
    const refused = await api('POST', '/api/profiles', { ...custom, name: 'other' }, viewer);
    expect(refused.status).toBe(403);
    const bad = await api('POST', '/api/profiles', { ...custom, name: 'Bad Name' });
    expect(bad.status).toBe(400);
    expect(bad.body.error).toMatchObject({ code: 'INPUT_INVALID' });
    expect(bad.body.error.message).toMatch(/^profile name/);
  });

  it('recommends by the cloud measurement until devices of the profile report, then by theirs', async () => {
    const { models, devices, telemetry } = fleet.cloud.services;
    const fp32 = await models.add(await taggedSample('rec-fp32'), {
      name: 'rec',
      metrics: { accepted: true, accuracy: 97, latencyMs: 2 },
    });
    const int8 = await models.add(await taggedSample('rec-int8'), {
      name: 'rec',
      variant: 'int8',
      sourceModelId: fp32.id,
      metrics: { accepted: true, accuracy: 96.8, latencyMs: 1 },
    });
    const deviceId = fleet.deviceIds()[0];
    const profile = (await devices.get(deviceId)).profile;
    expect(profile).toBeTruthy();
    const recommended = async () =>
      (await api('GET', `/api/models/${fp32.id}/recommendation?profile=${profile}`)).body.recommended?.name;
    // Nothing measured on a device yet: INT8 was faster on the cloud machine.
    expect(await recommended()).toBe('int8');
    // The device benchmarks both and INT8 runs slower there: FP32 is recommended.
    const bench = (sha256: string, modelId: string, p50Ms: number) => ({
      ...{ v: 1 as const, modelId, sha256, ep: 'cpu' as const, runs: 50, warmupRuns: 5 },
      ...{ p50Ms, p90Ms: p50Ms, p99Ms: p50Ms, maxMs: p50Ms },
      ...{ meanMs: p50Ms, throughput: 1000 / p50Ms, loadMs: 5, at: new Date().toISOString() },
    });
    await telemetry.addBench(deviceId, bench(fp32.sha256, fp32.id, 10));
    await telemetry.addBench(deviceId, bench(int8.sha256, int8.id, 14));
    expect(await recommended()).toBe('fp32');
  });
});
