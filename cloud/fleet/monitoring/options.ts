/** Every tunable of telemetry ingest and fleet monitoring, with its unit and default. */
export interface MonitoringOptions {
  /** Group commit: flush at the latest this many ms after the first pending batch. Default 5. */
  ingestMaxDelayMs: number;
  /** Group commit: flush as soon as this many records are pending (batches are never split). Default 2000. */
  ingestMaxRecords: number;
  /** Backpressure: refuse batches (no ack, the agent resends) above this many pending records. Default 50 000. */
  ingestMaxPendingRecords: number;
  /**
   * A record's own timestamp is trusted for bucketing when it lies within this many ms before
   * its arrival (Pis boot at 1970; resent backlogs are legitimately old). Default 7 days.
   */
  maxBackfillMs: number;
  /** …or at most this many ms after its arrival (clock skew). Default 120 000 (2 min). */
  maxFutureSkewMs: number;
  /** Raw telemetry rows are kept this long after arrival, in ms. Default 1 day. */
  rawRetentionMs: number;
  /** 1-minute aggregates are kept this long, in ms. Default 30 days. */
  minuteRetentionMs: number;
  /** 1-hour aggregates are kept this long, in ms. Default 400 days. */
  hourRetentionMs: number;
  /** How often the retention sweep runs, in ms. Default 600 000 (10 min). */
  retentionIntervalMs: number;
  /** Windows up to this many ms are answered from 1-minute aggregates, longer ones from 1-hour aggregates. Default 2 h. */
  minuteQueryMaxMs: number;
  /** Rollup rows kept decoded in memory for queries (~300 bytes each; 100 000 ≈ 30 MB, a 24 h window of 4,000 devices). Default 100 000. */
  queryCacheRows: number;
  /** The agents' telemetry interval, in seconds (agent default). Default 10. */
  expectedIntervalS: number;
  /** A device not heard from for this many intervals counts as stale (offline) even if its status says online. Default 3. */
  offlineAfterIntervals: number;
  /** Regression: flag when the current p99 exceeds the baseline p99 by more than this fraction. Default 0.25 (+25 %). */
  regressionThreshold: number;
  /** Regression: the current window, in ms. Default 1 h. */
  regressionWindowMs: number;
  /** Regression: the baseline window that ends where the current one starts, in ms. Default 24 h. */
  regressionBaselineMs: number;
  /** Regression: fewest inferences each side needs before a comparison counts. Default 100. */
  regressionMinSamples: number;
  /** Regression: fewest peer devices of a profile for a device-vs-profile comparison. Default 2. */
  regressionMinPeers: number;
  /** Health: window for throttling flags and temperature, in ms. Default 15 min. */
  healthWindowMs: number;
  /** Prometheus: window of the latency gauges, in ms. Default 15 min. */
  metricsWindowMs: number;
  /** Prometheus: most devices exported with per-device latency gauges (the slowest by p99). Default 50. */
  metricsMaxDevices: number;
  /** Prometheus: most model ids exported with per-model latency gauges (the most used). Default 50. */
  metricsMaxModels: number;
}

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

export const DEFAULT_MONITORING_OPTIONS: MonitoringOptions = {
  ingestMaxDelayMs: 5,
  ingestMaxRecords: 2000,
  ingestMaxPendingRecords: 50_000,
  maxBackfillMs: 7 * DAY,
  maxFutureSkewMs: 2 * MINUTE,
  rawRetentionMs: DAY,
  minuteRetentionMs: 30 * DAY,
  hourRetentionMs: 400 * DAY,
  retentionIntervalMs: 10 * MINUTE,
  minuteQueryMaxMs: 2 * HOUR,
  queryCacheRows: 100_000,
  expectedIntervalS: 10,
  offlineAfterIntervals: 3,
  regressionThreshold: 0.25,
  regressionWindowMs: HOUR,
  regressionBaselineMs: DAY,
  regressionMinSamples: 100,
  regressionMinPeers: 2,
  healthWindowMs: 15 * MINUTE,
  metricsWindowMs: 15 * MINUTE,
  metricsMaxDevices: 50,
  metricsMaxModels: 50,
};

export const RESOLUTION = { minute: MINUTE, hour: HOUR } as const;

export function resolveMonitoringOptions(overrides: Partial<MonitoringOptions> = {}): MonitoringOptions {
  return { ...DEFAULT_MONITORING_OPTIONS, ...overrides };
}
