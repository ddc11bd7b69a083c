import type { ServingStats, TelemetryRecord } from '../../../shared/protocol/index.js';
import { LatencySketch } from '../../../shared/sketch.js';
import { RESOLUTION } from './options.js';

/** One (resolution, bucket, device, release) aggregate being built. */
export interface ServingAggregate {
  resolution: number;
  bucketStart: number;
  deviceId: string;
  model: string;
  version: string;
  modelId: string;
  requests: number;
  errors: number;
  total: LatencySketch;
  queue: LatencySketch;
  compute: LatencySketch;
}

const RESOLUTIONS = [RESOLUTION.minute, RESOLUTION.hour];

/** Collects one ingest flush's serving stats into minute and hour aggregates. */
export class ServingAccumulator {
  readonly pending = new Map<string, ServingAggregate>();

  add(deviceId: string, record: TelemetryRecord, atMs: number): void {
    for (const s of record.serving ?? []) this.addStats(deviceId, s, atMs);
  }

  private addStats(deviceId: string, s: ServingStats, atMs: number): void {
    for (const resolution of RESOLUTIONS) {
      const bucketStart = atMs - (atMs % resolution);
      const key = `${resolution}|${bucketStart}|${deviceId}|${s.model}|${s.version}`;
      let agg = this.pending.get(key);
      if (!agg) {
        agg = {
          resolution,
          bucketStart,
          deviceId,
          model: s.model,
          version: s.version,
          modelId: s.modelId ?? '',
          requests: 0,
          errors: 0,
          total: new LatencySketch(),
          queue: new LatencySketch(),
          compute: new LatencySketch(),
        };
        this.pending.set(key, agg);
      }
      agg.requests += s.requests;
      agg.errors += s.errors;
      agg.total.mergeWire(s.totalMs);
      agg.queue.mergeWire(s.queueMs);
      agg.compute.mergeWire(s.computeMs);
    }
  }
}
