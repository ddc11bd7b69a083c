import type { Histogram } from './histogram.js';
import type { LatencyAccumulator, ResolvedWindow } from './windows.js';

/** What a per-device latency row is grouped by. */
export interface DeviceModelKey {
  device_id: string;
  /** '' when no model was active. */
  model_id: string;
}

/**
 * Where per-device latency of a window comes from (regressions, the Prometheus gauges, device
 * series): on SQLite the per-device rollups with their histograms (LatencyRows); on PostgreSQL
 * the raw records of the window (store/pg-device-latency.ts), because per-device rollups there
 * carry no histogram (see store/pg-device-rollups.ts).
 */
export interface DeviceLatencySource {
  /** The window's latency grouped by `keyOf` (null skips a row). */
  group(
    w: ResolvedWindow,
    keyOf: (row: DeviceModelKey) => string | null,
  ): Map<string, LatencyAccumulator> | Promise<Map<string, LatencyAccumulator>>;
  /**
   * One device's latency histogram per bucket of `resolution` in [fromMs, toMs), when the
   * rollup rows do not carry them (PostgreSQL); absent: read the rollups' own histograms.
   */
  deviceHistograms?(
    deviceId: string,
    resolution: number,
    fromMs: number,
    toMs: number,
  ): Promise<Map<number, Histogram>>;
}

/** Device id -> profile name ('(none)' when unset), from whichever store holds the devices. */
export type ProfileMap = () => Promise<Map<string, string>>;
