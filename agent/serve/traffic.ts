import type { ServingStats } from '../../shared/protocol/index.js';
import { LatencySketch } from '../../shared/sketch.js';

/** What one served request cost, ms. */
export interface RequestTiming {
  /** Arrival to the start of the onnxruntime run (body read, decode, waiting for a batch). */
  queueMs: number;
  /** The onnxruntime run (of the whole batch when batched). */
  computeMs: number;
  /** Arrival to the response handed to the socket. */
  totalMs: number;
}

interface ReleaseTraffic {
  model: string;
  version: string;
  modelId: string | null;
  requests: number;
  errors: number;
  total: LatencySketch;
  queue: LatencySketch;
  compute: LatencySketch;
}

/**
 * Every served request's timing, per model release, in mergeable sketches. `take()` hands the
 * interval's sketches to telemetry and starts new ones, so each record covers its own interval
 * and the cloud can add them up for any window.
 */
export class TrafficRecorder {
  private current = new Map<string, ReleaseTraffic>();

  private entry(model: string, version: string, modelId: string | null): ReleaseTraffic {
    const key = `${model}\u0000${version}`;
    let e = this.current.get(key);
    if (!e) {
      e = {
        model,
        version,
        modelId,
        requests: 0,
        errors: 0,
        total: new LatencySketch(),
        queue: new LatencySketch(),
        compute: new LatencySketch(),
      };
      this.current.set(key, e);
    }
    return e;
  }

  /** A request that produced a response (200). */
  ok(model: string, version: string, modelId: string | null, t: RequestTiming): void {
    const e = this.entry(model, version, modelId);
    e.requests++;
    e.total.add(t.totalMs);
    e.queue.add(t.queueMs);
    e.compute.add(t.computeMs);
  }

  /** A request for a served model that failed (bad input or a runtime failure). */
  error(model: string, version: string, modelId: string | null): void {
    const e = this.entry(model, version, modelId);
    e.requests++;
    e.errors++;
  }

  /** Requests recorded since the last take. */
  pending(): number {
    let n = 0;
    for (const e of this.current.values()) n += e.requests;
    return n;
  }

  /** The interval's stats (one entry per release that saw requests), and a fresh interval. */
  take(): ServingStats[] {
    const done = this.current;
    this.current = new Map();
    return [...done.values()].map((e) => ({
      model: e.model,
      version: e.version,
      modelId: e.modelId,
      requests: e.requests,
      errors: e.errors,
      totalMs: e.total.toWire(),
      queueMs: e.queue.toWire(),
      computeMs: e.compute.toWire(),
    }));
  }
}
