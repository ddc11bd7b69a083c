import type { Logger } from '../../shared/logger.js';
import {
  decodeJson,
  deviceTopic,
  encodeJson,
  PROTOCOL_VERSION,
  telemetryAckSchema,
} from '../../shared/protocol/index.js';
import type { MqttTransport } from '../transport/mqtt.js';
import type { TelemetryOutbox } from './outbox.js';

const CLOUD_ACKS_KEY = 'cloudAcks';

export interface TelemetrySenderOptions {
  transport: MqttTransport;
  outbox: TelemetryOutbox;
  deviceId: string;
  /** Records per batch message. */
  batchMax: number;
  /** Resend everything not acknowledged by the cloud after this many ms. Default 10 000. */
  ackTimeoutMs?: number;
  logger: Logger;
}

/**
 * Sends the outbox in sequence order, in QoS 1 batches. A record leaves the outbox only when
 * the cloud acknowledged its batch on `.../telemetry/ack` (a broker PUBACK proves nothing: after
 * a broker restart nobody may be subscribed yet). Unacknowledged records are sent again after a
 * reconnect or `ackTimeoutMs`; the cloud deduplicates by (device, seq).
 * A cloud that has never sent an ack is treated as a legacy one: the PUBACK then counts.
 */
export class TelemetrySender {
  private draining: Promise<void> | null = null;
  private again = false;
  private stopped = false;
  /** Highest seq sent on the current connection; records above it are still to send. */
  private cursor = 0;
  /** First seq of each batch sent but not acknowledged by the cloud -> when it was sent. */
  private readonly unacked = new Map<number, number>();
  private cloudAcks: boolean;
  /** Batches published (broker-acknowledged) so far. */
  batchesSent = 0;

  constructor(private readonly o: TelemetrySenderOptions) {
    this.cloudAcks = o.outbox.meta(CLOUD_ACKS_KEY) === '1';
  }

  async start(): Promise<void> {
    await this.o.transport.subscribe(
      deviceTopic(this.o.deviceId, 'telemetry/ack'),
      (payload) => this.onAck(payload),
      1,
    );
  }

  /** A new connection: whatever was sent but not acknowledged may be lost; send it again. */
  onConnect(): void {
    this.cursor = 0;
    this.unacked.clear();
    void this.kick();
  }

  /** Starts a drain if none runs; safe to call often. */
  kick(): Promise<void> {
    if (this.cloudAcks) {
      const timeout = this.o.ackTimeoutMs ?? 10_000;
      const now = Date.now();
      for (const [from, sentAt] of this.unacked) {
        if (now - sentAt <= timeout) continue;
        this.o.logger.debug({ from }, 'telemetry batch not acknowledged in time; sending the backlog again');
        this.cursor = 0;
        this.unacked.clear();
        break;
      }
    }
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

  private onAck(payload: Buffer): void {
    try {
      const ack = decodeJson(telemetryAckSchema, payload);
      this.o.outbox.ack(ack.from, ack.to);
      this.unacked.delete(ack.from);
      if (!this.cloudAcks) {
        this.cloudAcks = true;
        this.o.outbox.setMetaValue(CLOUD_ACKS_KEY, '1');
      }
    } catch (error) {
      this.o.logger.warn(
        { code: (error as { code?: string }).code, err: (error as Error).message },
        'rejected telemetry ack',
      );
    }
  }

  private async drain(): Promise<void> {
    const topic = deviceTopic(this.o.deviceId, 'telemetry');
    while (!this.stopped && this.o.transport.connected) {
      const records = this.o.outbox.peek(this.o.batchMax, this.cursor);
      if (records.length === 0) return;
      const from = records[0].seq;
      const to = records[records.length - 1].seq;
      try {
        await withTimeout(
          this.o.transport.publish(topic, encodeJson({ v: PROTOCOL_VERSION, records }), { qos: 1 }),
          15_000,
        );
      } catch (error) {
        this.o.logger.debug(
          { err: (error as Error).message },
          'telemetry batch not acknowledged by the broker; will retry',
        );
        return;
      }
      this.cursor = to;
      if (this.cloudAcks) this.unacked.set(from, Date.now());
      this.batchesSent++;
      if (!this.cloudAcks) this.o.outbox.ack(from, to);
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
