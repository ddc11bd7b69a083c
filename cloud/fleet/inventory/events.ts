import { EventEmitter } from 'node:events';

/** What changed, for live views (server-sent events in the console). */
export type FleetEvent =
  | { type: 'device'; deviceId: string; kind: 'state' | 'bench' | 'telemetry' | 'status' }
  | { type: 'rollout'; rolloutId: string }
  | { type: 'job'; jobId: string }
  /** A user-defined device profile was saved (replicas reload theirs: inventory/profiles.ts). */
  | { type: 'profile'; name: string };

/**
 * Fan-out of fleet events to the live views of this process; listeners never block the sender.
 * With several replicas a relay (leader/pg-events.ts) carries the events made here to the other
 * replicas, and `deliver`s theirs here, so a browser sees every change whichever replica it uses.
 */
export class FleetEvents {
  private readonly emitter = new EventEmitter();
  private relay: ((event: FleetEvent) => void) | undefined;

  constructor() {
    // One listener per open console tab.
    this.emitter.setMaxListeners(1000);
  }

  /** An event that happened in this process: to local listeners and, if set, the relay. */
  emit(event: FleetEvent): void {
    this.emitter.emit('event', event);
    this.relay?.(event);
  }

  /** An event that happened on another replica: to local listeners only. */
  deliver(event: FleetEvent): void {
    this.emitter.emit('event', event);
  }

  relayTo(relay: ((event: FleetEvent) => void) | undefined): void {
    this.relay = relay;
  }

  subscribe(listener: (event: FleetEvent) => void): () => void {
    this.emitter.on('event', listener);
    return () => this.emitter.off('event', listener);
  }
}
