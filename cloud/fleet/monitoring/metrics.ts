import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { IngestObserver } from '../ingest/ingest-queue.js';
import { type FleetStore, toNumber } from '../store/kysely.js';
import type { HealthQuery } from './health.js';
import { NO_PROFILE } from './latency.js';
import type { DeviceLatencySource, ProfileMap } from './latency-source.js';
import type { MonitoringOptions } from './options.js';
import { LatencyAccumulator, resolveWindow } from './windows.js';

export interface FleetMetricsDeps {
  /** Where rollouts live (the fleet store). */
  fleet: FleetStore;
  /** Per-device latency of a window (SQLite rollups, or PostgreSQL raw records). */
  rows: DeviceLatencySource;
  /** Device id -> profile, from the fleet store. */
  profiles: ProfileMap;
  health: HealthQuery;
  options: Pick<
    MonitoringOptions,
    'metricsWindowMs' | 'metricsMaxDevices' | 'metricsMaxModels' | 'minuteQueryMaxMs'
  >;
  /** Records waiting in the ingest queue. */
  pendingRecords?: () => number;
  /** Telemetry batches the router rejected (schema, unknown device, ingest refusal). */
  rejectedBatches?: () => number;
}

function mergeInto(groups: Map<string, LatencyAccumulator>, key: string, part: LatencyAccumulator): void {
  let acc = groups.get(key);
  if (!acc) groups.set(key, (acc = new LatencyAccumulator()));
  acc.merge(part);
}

/**
 * Prometheus metrics (prom-client), in a registry of its own (no global state). Counters and
 * histograms are fed by the ingest queue; gauges are read from the stores when scraped.
 *
 * Label cardinality is bounded: per-device latency gauges only for the `metricsMaxDevices`
 * slowest devices by p99 (default 50), per-model gauges only for the `metricsMaxModels` most
 * used models; profiles and statuses are small fixed sets. The whole fleet is always covered by
 * the per-profile and fleet-wide gauges.
 */
export class FleetMetrics implements IngestObserver {
  readonly registry = new Registry();
  private readonly records;
  private readonly commitSeconds;
  private readonly waitSeconds;
  private readonly commitRecords;
  private readonly devices;
  private readonly throttled;
  private readonly rollouts;
  private readonly pending;
  private readonly rejectedBatches;
  private readonly deviceLatency;
  private readonly profileLatency;
  private readonly modelLatency;
  private readonly fleetLatency;
  private lastRejected = 0;

  constructor(private readonly deps: FleetMetricsDeps) {
    const registers = [this.registry];
    this.records = new Counter({
      name: 'fleetml_telemetry_records_total',
      help: 'Telemetry records received, by result: stored, duplicate (resent, already stored), refused (not stored, not acknowledged)',
      labelNames: ['result'],
      registers,
    });
    for (const result of ['stored', 'duplicate', 'refused']) this.records.inc({ result }, 0);
    this.rejectedBatches = new Counter({
      name: 'fleetml_telemetry_batches_rejected_total',
      help: 'Telemetry batches rejected by the MQTT router (bad schema, unknown device, ingest refused)',
      registers,
    });
    this.commitSeconds = new Histogram({
      name: 'fleetml_ingest_commit_seconds',
      help: 'Duration of one group-commit transaction',
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1],
      registers,
    });
    this.waitSeconds = new Histogram({
      name: 'fleetml_ingest_batch_latency_seconds',
      help: 'Time from a telemetry batch entering the ingest queue to its commit (its ack follows)',
      buckets: [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1, 5],
      registers,
    });
    this.commitRecords = new Histogram({
      name: 'fleetml_ingest_commit_records',
      help: 'Telemetry records written per group-commit transaction',
      buckets: [1, 10, 50, 100, 250, 500, 1000, 2000, 5000],
      registers,
    });
    this.pending = new Gauge({
      name: 'fleetml_ingest_pending_records',
      help: 'Records waiting in the ingest queue',
      registers,
    });
    this.devices = new Gauge({
      name: 'fleetml_devices',
      help: 'Devices by status: online, offline (status/last will), stale (status online but silent too long)',
      labelNames: ['status'],
      registers,
    });
    this.throttled = new Gauge({
      name: 'fleetml_devices_throttled',
      help: 'Devices that reported throttling within the health window',
      registers,
    });
    this.rollouts = new Gauge({
      name: 'fleetml_rollouts',
      help: 'Rollouts by status',
      labelNames: ['status'],
      registers,
    });
    const latencyGauge = (name: string, help: string, labelNames: string[]) =>
      new Gauge({
        name,
        help: `${help} (ms, over the metrics window)`,
        labelNames: [...labelNames, 'quantile'],
        registers,
      });
    this.deviceLatency = latencyGauge(
      'fleetml_device_latency_ms',
      'Inference latency of the slowest devices',
      ['device', 'profile'],
    );
    this.profileLatency = latencyGauge('fleetml_profile_latency_ms', 'Inference latency per device profile', [
      'profile',
    ]);
    this.modelLatency = latencyGauge('fleetml_model_latency_ms', 'Inference latency per model version', [
      'model',
    ]);
    this.fleetLatency = latencyGauge('fleetml_fleet_latency_ms', 'Inference latency across the fleet', []);
  }

  onCommit(info: {
    added: number;
    duplicates: number;
    records: number;
    commitMs: number;
    waitsMs: number[];
  }): void {
    this.records.inc({ result: 'stored' }, info.added);
    this.records.inc({ result: 'duplicate' }, info.duplicates);
    this.commitSeconds.observe(info.commitMs / 1000);
    this.commitRecords.observe(info.records);
    for (const ms of info.waitsMs) this.waitSeconds.observe(ms / 1000);
  }

  onRefused(_code: string, records: number): void {
    this.records.inc({ result: 'refused' }, records);
  }

  /** The exposition text, after refreshing the gauges from the stores. */
  async render(nowMs = Date.now()): Promise<{ contentType: string; body: string }> {
    await this.refresh(nowMs);
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }

  private async refresh(nowMs: number): Promise<void> {
    this.pending.set(this.deps.pendingRecords?.() ?? 0);
    const rejected = this.deps.rejectedBatches?.() ?? 0;
    if (rejected > this.lastRejected) this.rejectedBatches.inc(rejected - this.lastRejected);
    this.lastRejected = rejected;

    const [health, rollouts] = await Promise.all([
      this.deps.health.run(nowMs),
      this.deps.fleet.db
        .selectFrom('rollouts')
        .select((eb) => ['status', eb.fn.countAll<number | string>().as('n')])
        .groupBy('status')
        .execute(),
    ]);
    for (const status of ['online', 'offline', 'stale'] as const)
      this.devices.set({ status }, health.counts[status]);
    this.throttled.set(health.counts.throttled);

    this.rollouts.reset();
    for (const r of rollouts) this.rollouts.set({ status: r.status }, toNumber(r.n));
    await this.refreshLatency(nowMs);
  }

  private async refreshLatency(nowMs: number): Promise<void> {
    const o = this.deps.options;
    const window = resolveWindow(nowMs - o.metricsWindowMs, nowMs, o, true);
    // One read of the window (by device and model), then merged both ways: histograms add up.
    const [profiles, byDeviceModel] = await Promise.all([
      this.deps.profiles(),
      this.deps.rows.group(window, (row) => `${row.device_id}\u0000${row.model_id}`),
    ]);
    const byDevice = new Map<string, LatencyAccumulator>();
    const byModel = new Map<string, LatencyAccumulator>();
    for (const [key, acc] of byDeviceModel) {
      const [deviceId, modelId] = key.split('\u0000');
      mergeInto(byDevice, deviceId, acc);
      mergeInto(byModel, modelId, acc);
    }
    const byProfile = new Map<string, LatencyAccumulator>();
    const fleet = new LatencyAccumulator();
    const deviceStats = [...byDevice.entries()].map(([id, acc]) => {
      const profile = profiles.get(id) ?? NO_PROFILE;
      let p = byProfile.get(profile);
      if (!p) byProfile.set(profile, (p = new LatencyAccumulator()));
      p.merge(acc);
      fleet.merge(acc);
      return { id, profile, s: acc.summary() };
    });
    const set = (
      gauge: Gauge<string>,
      labels: Record<string, string>,
      s: ReturnType<LatencyAccumulator['summary']>,
    ) => {
      if (s.p50Ms !== null) gauge.set({ ...labels, quantile: '0.5' }, s.p50Ms);
      if (s.p90Ms !== null) gauge.set({ ...labels, quantile: '0.9' }, s.p90Ms);
      if (s.p99Ms !== null) gauge.set({ ...labels, quantile: '0.99' }, s.p99Ms);
    };
    for (const g of [this.deviceLatency, this.profileLatency, this.modelLatency, this.fleetLatency])
      g.reset();
    deviceStats
      .sort((a, b) => (b.s.p99Ms ?? 0) - (a.s.p99Ms ?? 0))
      .slice(0, o.metricsMaxDevices)
      .forEach((d) => {
        set(this.deviceLatency, { device: d.id, profile: d.profile }, d.s);
      });
    for (const [profile, acc] of byProfile) set(this.profileLatency, { profile }, acc.summary());
    [...byModel.entries()]
      .sort(([, a], [, b]) => b.count - a.count)
      .slice(0, o.metricsMaxModels)
      .forEach(([model, acc]) => {
        set(this.modelLatency, { model }, acc.summary());
      });
    set(this.fleetLatency, {}, fleet.summary());
  }
}
