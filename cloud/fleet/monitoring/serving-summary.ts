import { LatencySketch, type SketchWire } from '../../../shared/sketch.js';
import { RESOLUTION } from './options.js';

/** One stored serving_rollup row (profile: the device's, when the query joined it). */
export interface ServingRow {
  resolution: number;
  bucket_start: number;
  device_id: string;
  model_name: string;
  version: string;
  model_id: string;
  requests: number;
  errors: number;
  total: string;
  queue: string;
  compute: string;
  profile?: string | null;
}

export type ServingGroupBy = 'fleet' | 'device' | 'model' | 'release' | 'profile';
export const SERVING_GROUP_BY: readonly ServingGroupBy[] = ['fleet', 'device', 'model', 'release', 'profile'];

export interface ServingFilter {
  deviceId?: string;
  /** Served model name. */
  model?: string;
  /** Release: the cloud model id. */
  modelId?: string;
  profile?: string;
  /** Only these devices (e.g. a rollout's). */
  deviceIds?: readonly string[];
}

/** Merged real-traffic figures of one group over a window (latencies in ms, null without requests). */
export interface ServingSummary {
  key: string;
  requests: number;
  errors: number;
  /** errors / requests (0 without requests). */
  errorRate: number;
  /** Devices that reported traffic. */
  devices: number;
  p50Ms: number | null;
  p90Ms: number | null;
  p99Ms: number | null;
  meanMs: number | null;
  maxMs: number | null;
  computeP50Ms: number | null;
  queueP50Ms: number | null;
}

export interface ServingPoint {
  at: string;
  requests: number;
  errors: number;
  p50Ms: number | null;
  p99Ms: number | null;
}

export interface Merged {
  requests: number;
  errors: number;
  devices: Set<string>;
  total: LatencySketch;
  queue: LatencySketch;
  compute: LatencySketch;
}

export function emptyMerged(): Merged {
  return {
    requests: 0,
    errors: 0,
    devices: new Set(),
    total: new LatencySketch(),
    queue: new LatencySketch(),
    compute: new LatencySketch(),
  };
}

export function summarize(key: string, m: Merged): ServingSummary {
  return {
    key,
    requests: m.requests,
    errors: m.errors,
    errorRate: m.requests > 0 ? m.errors / m.requests : 0,
    devices: m.devices.size,
    p50Ms: m.total.quantile(0.5),
    p90Ms: m.total.quantile(0.9),
    p99Ms: m.total.quantile(0.99),
    meanMs: m.total.mean(),
    maxMs: m.total.max,
    computeP50Ms: m.compute.quantile(0.5),
    queueP50Ms: m.queue.quantile(0.5),
  };
}

/** Minute rows for windows up to 3 h, hour rows beyond (fewer sketches to merge). */
export function servingResolution(windowMs: number): number {
  return windowMs <= 3 * RESOLUTION.hour ? RESOLUTION.minute : RESOLUTION.hour;
}

/** The group a row belongs to. */
export function servingKeyOf(row: ServingRow, by: ServingGroupBy): string {
  switch (by) {
    case 'fleet':
      return 'fleet';
    case 'device':
      return row.device_id;
    case 'model':
      return row.model_name;
    case 'release':
      return row.model_id || `${row.model_name}@${row.version}`;
    case 'profile':
      return row.profile ?? '';
  }
}

/** Adds one stored row to a group's merged figures (sketches merge exactly). */
export function mergeServingRow(m: Merged, row: ServingRow): void {
  m.requests += row.requests;
  m.errors += row.errors;
  m.devices.add(row.device_id);
  m.total.mergeWire(JSON.parse(row.total) as SketchWire);
  m.queue.mergeWire(JSON.parse(row.queue) as SketchWire);
  m.compute.mergeWire(JSON.parse(row.compute) as SketchWire);
}
