import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashSecret } from '../../../cloud/fleet/identity/secrets.js';
import { type CloudMqtt, connectCloudMqtt } from '../../../cloud/fleet/transport/mqtt.js';
import { type CloudHandle, startCloud } from '../../../cloud/main.js';
import { createLogger } from '../../../shared/logger.js';
import { deviceTopic, encodeJson } from '../../../shared/protocol/index.js';
import { hardware } from '../../unit/cloud/fleet/monitoring/fixture.js';
import { record, summarize } from '../../unit/cloud/fleet/monitoring/synthetic.js';

const quiet = () => createLogger({ name: 'test', level: 'silent' });
let dir: string;
let cloud: CloudHandle;
let device: CloudMqtt;
let viewer: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fleetml-monitoring-'));
  cloud = await startCloud({
    dataDir: dir,
    httpPort: 0,
    mqttPort: 0,
    logger: quiet(),
    monitoring: { metricsMaxDevices: 2 },
  });
  for (const [id, profile] of [
    ['d1', 'rpi4'],
    ['d2', 'rpi4'],
    ['d3', 'rpi5'],
  ]) {
    await cloud.services.devices.create({ id, name: id, secretHash: hashSecret('s'), profile, hardware });
    await cloud.services.devices.setOnline(id, true, new Date().toISOString());
  }
  viewer = await cloud.services.tokens.createApiToken('grafana', 'viewer');
  // One client speaks for device d1 with its credentials, as its agent would.
  device = await connectCloudMqtt({
    url: cloud.mqttUrl,
    clientId: 'fleetml-d1',
    username: 'd1',
    password: 's',
    logger: quiet(),
  });
});

afterAll(async () => {
  await device?.close();
  await cloud?.stop();
  await rm(dir, { recursive: true, force: true });
});

const get = (path: string, token?: string) =>
  fetch(new URL(path, cloud.httpUrl), { headers: token ? { authorization: `Bearer ${token}` } : {} });
const json = async (path: string): Promise<any> => (await get(path, viewer)).json();

describe('telemetry through the broker', () => {
  it('acknowledges a batch after storing it, and a resent batch again without storing it twice', async () => {
    const acks: Array<{ from: number; to: number }> = [];
    device.onMessage((_topic, payload) => acks.push(JSON.parse(payload.toString())));
    await device.subscribe([deviceTopic('d1', 'telemetry/ack')]);
    const now = Date.now();
    const records = Array.from({ length: 10 }, (_, i) =>
      record(i + 1, now - (10 - i) * 1000, summarize([4, 5, 6, 7, 30]), { tempC: 55 }),
    );
    const payload = encodeJson({ v: 1, records });
    for (let attempt = 1; attempt <= 2; attempt++) {
      await device.publish(deviceTopic('d1', 'telemetry'), payload);
      const deadline = Date.now() + 5000;
      while (acks.length < attempt && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      expect(acks[attempt - 1]).toMatchObject({ from: 1, to: 10 });
      expect(await cloud.services.telemetry.count('d1')).toBe(10);
    }
    for (const id of ['d2', 'd3']) {
      await cloud.services.monitor.ingest.submit(id, [record(1, now, summarize([id === 'd2' ? 9 : 2]))]);
    }
  });
});

describe('monitoring API', () => {
  const routes = [
    '/api/fleet/latency?window=24h&by=device',
    '/api/fleet/regressions',
    '/api/fleet/health',
    '/api/fleet/devices/d1/series?window=1h',
    '/metrics',
  ];

  it('requires a token on every monitoring route, viewer is enough', async () => {
    for (const path of routes) {
      expect((await get(path)).status, path).toBe(401);
      expect((await get(path, 'fml_wrong')).status, path).toBe(401);
      expect((await get(path, viewer)).status, path).toBe(200);
    }
  });

  it('answers fleet latency by device, model and profile', async () => {
    const byDevice = await json('/api/fleet/latency?window=24h');
    expect(byDevice.groups.map((g: { key: string }) => g.key)).toEqual(['d1', 'd2', 'd3']);
    expect(byDevice.groups[0]).toMatchObject({ records: 10, count: 50, maxMs: 30 });
    const byProfile = await json('/api/fleet/latency?window=2h&by=profile');
    expect(byProfile.window.resolution).toBe('minute');
    expect(byProfile.groups.map((g: { key: string; devices: number }) => [g.key, g.devices])).toEqual([
      ['rpi4', 2],
      ['rpi5', 1],
    ]);
    const byModel = await json('/api/fleet/latency?by=model');
    expect(byModel.groups[0]).toMatchObject({ key: 'model-a', name: null, devices: 3 });
    expect((await get('/api/fleet/latency?by=rack', viewer)).status).toBe(400);
    expect((await get('/api/fleet/latency?window=yesterday', viewer)).status).toBe(400);
  });

  it('reports health and a device series from the rollups', async () => {
    const health = await json('/api/fleet/health');
    expect(health.counts).toMatchObject({ total: 3, online: 3 });
    const series = await json('/api/fleet/devices/d1/series?window=1h');
    expect(series.resolution).toBe('minute');
    expect(series.points.reduce((n: number, p: { count: number }) => n + p.count, 0)).toBe(50);
    expect(series.points[0].tempMaxC).toBe(55);
    expect((await get('/api/fleet/devices/nope/series', viewer)).status).toBe(404);
  });

  it('exposes Prometheus metrics with bounded per-device labels', async () => {
    const response = await get('/metrics', viewer);
    expect(response.headers.get('content-type')).toMatch(/text\/plain/);
    const text = await response.text();
    expect(text).toContain('fleetml_telemetry_records_total{result="stored"} 12');
    expect(text).toContain('fleetml_telemetry_records_total{result="duplicate"} 10');
    expect(text).toContain('fleetml_devices{status="online"} 3');
    expect(text).toMatch(/fleetml_ingest_batch_latency_seconds_count \d+/);
    expect(text).toMatch(/fleetml_ingest_commit_seconds_bucket\{le="0.001"\}/);
    expect(text).toMatch(/fleetml_profile_latency_ms\{profile="rpi5",quantile="0.99"\} [\d.]+/);
    expect(text).toMatch(/fleetml_fleet_latency_ms\{quantile="0.5"\} [\d.]+/);
    const devices = new Set(
      [...text.matchAll(/fleetml_device_latency_ms\{device="([^"]+)"/g)].map((m) => m[1]),
    );
    // metricsMaxDevices = 2: the two slowest (d1 with its 30 ms tail, d2 at 9 ms) only.
    expect([...devices].sort()).toEqual(['d1', 'd2']);
  });

  it('lists devices with set-based queries, same fields as the single-device route', async () => {
    const { devices } = await json('/api/devices');
    expect(devices.map((d: { id: string }) => d.id)).toEqual(['d1', 'd2', 'd3']);
    expect(devices[0]).toMatchObject({ tempC: 55, cpuLoad: 20, p50Ms: null });
    const one = await json('/api/devices/d1');
    expect(one).toMatchObject({ id: 'd1', tempC: 55, cpuLoad: 20 });
  });
});
