import { EventEmitter } from 'node:events';

/** What changed, for live views (server-sent events in the console). */
export type FleetEvent =
  | { type: 'device'; deviceId: string; kind: 'state' | 'bench' | 'telemetry' | 'status' }
  | { type: 'rollout'; rolloutId: string }
  | { type: 'job'; jobId: string };

/** In-process fan-out of fleet events; listeners never block the sender. */
export class FleetEvents {
  private readonly emitter = new EventEmitter();

  constructor() {
    // One listener per open console tab.
    this.emitter.setMaxListeners(1000);
  }

  emit(event: FleetEvent): void {
    this.emitter.emit('event', event);
  }

  subscribe(listener: (event: FleetEvent) => void): () => void {
    this.emitter.on('event', listener);
    return () => this.emitter.off('event', listener);
  }
}
