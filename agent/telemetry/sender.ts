import type { Logger } from '../../shared/logger.js';
import { deviceTopic, encodeJson, PROTOCOL_VERSION } from '../../shared/protocol/index.js';
import type { MqttTransport } from '../transport/mqtt.js';
import type { TelemetryOutbox } from './outbox.js';

/**
 * Drains the outbox in sequence order, one QoS 1 batch at a time; a batch leaves the outbox
 * only after the broker acknowledged it. If the link drops mid-batch the batch is sent again
 * later; the cloud deduplicates by (device, seq).
 */
export class TelemetrySender {
  private draining: Promise<void> | null = null;
  private again = false;
  private stopped = false;
  /** Batches published (acknowledged) so far. */
  batchesSent = 0;

  constructor(
    private readonly o: {
      transport: MqttTransport;
      outbox: TelemetryOutbox;
      deviceId: string;
      batchMax: number;
      logger: Logger;
    },
  ) {}

  /** Starts a drain if none runs; safe to call often. */
  kick(): Promise<void> {
    if (this.draining) {
      this.again = true;
      return this.draining;
    }
    this.draining = this.drain().finally(() => {
      this.draining = null;
      if (this.again && !this.stopped) {
        this.again = false;
        void this.kick();
      }
    });
    return this.draining;
  }

  stop(): Promise<void> {
    this.stopped = true;
    return this.draining ?? Promise.resolve();
  }

  private async drain(): Promise<void> {
    const topic = deviceTopic(this.o.deviceId, 'telemetry');
    while (!this.stopped && this.o.transport.connected) {
      const records = this.o.outbox.peek(this.o.batchMax);
      if (records.length === 0) return;
      try {
        await withTimeout(
          this.o.transport.publish(topic, encodeJson({ v: PROTOCOL_VERSION, records }), { qos: 1 }),
          15_000,
        );
      } catch (error) {
        this.o.logger.debug(
          { err: (error as Error).message },
          'telemetry batch not acknowledged; will retry',
        );
        return;
      }
      this.o.outbox.ack(records[records.length - 1].seq);
      this.batchesSent++;
    }
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
    promise.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e) => {
        clearTimeout(timer);
        reject(e);
      },
    );
  });
}
