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
/** Outbox drop count last reported to the cloud as a TELEMETRY_DROPPED event. */
const DROPS_REPORTED_KEY = 'droppedReported';

export interface TelemetrySenderOptions {
  transport: MqttTransport;
  outbox: TelemetryOutbox;
  deviceId: string;
  /** Records per batch message. */
  batchMax: number;
  /** 'cloud', 'broker' or 'auto' (see AGENT_DEFAULTS.telemetryAck). Default 'cloud'. */
  ackMode?: 'auto' | 'cloud' | 'broker';
  /** Resend everything not acknowledged by the cloud after this many ms. Default 10 000. */
  ackTimeoutMs?: number;
  logger: Logger;
}

/**
 * Sends the outbox in sequence order, in QoS 1 batches. A record leaves the outbox only when
 * the cloud acknowledged its batch on `.../telemetry/ack` (a broker PUBACK proves nothing: after
 * a broker restart nobody may be subscribed yet). Unacknowledged records are sent again after a
 * reconnect or `ackTimeoutMs`; the cloud deduplicates by (device, seq).
 * Under ackMode 'auto', a cloud that has never sent an ack is treated as a legacy one: the
 * PUBACK then counts.
 */
export class TelemetrySender {
  private draining: Promise<void> | null = null;
  private again = false;
  private stopped = false;
  /** Highest seq sent on the current connection; records above it are still to send. */
  private cursor = 0;
  /** First seq of each batch sent but not acknowledged by the cloud -> its last seq and send time. */
  private readonly unacked = new Map<number, { to: number; sentAt: number }>();
  private cloudAcks: boolean;
  private readonly brokerAcksOnly: boolean;
  /** Batches published (broker-acknowledged) so far. */
  batchesSent = 0;

  constructor(private readonly o: TelemetrySenderOptions) {
    const mode = o.ackMode ?? 'cloud';
    this.cloudAcks = mode === 'cloud' || (mode === 'auto' && o.outbox.meta(CLOUD_ACKS_KEY) === '1');
    this.brokerAcksOnly = mode === 'broker';
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
      for (const [from, { sentAt }] of this.unacked) {
        if (now - sentAt <= timeout) continue;
        this.o.logger.debug({ from }, 'telemetry batch not acknowledged in time; sending the backlog again');
        this.cursor = 0;
        this.unacked.clear();
        break;
      }
    }
    if (this.draining !== null) {
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
      // A late ack for an older, smaller batch must not settle a bigger resend starting at the same seq.
      const entry = this.unacked.get(ack.from);
      if (entry && entry.to <= ack.to) this.unacked.delete(ack.from);
      if (!this.cloudAcks && !this.brokerAcksOnly) {
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

  /**
   * Drops are a loss the cloud must hear about: an event (once per new batch of drops, retried
   * on every drain until the broker took it) on top of `droppedTotal` in every record.
   */
  private async reportDrops(): Promise<void> {
    const total = this.o.outbox.dropped;
    const reported = Number(this.o.outbox.meta(DROPS_REPORTED_KEY) ?? 0);
    if (total <= reported) return;
    const message =
      `telemetry outbox full: ${total - reported} oldest record(s) dropped ` +
      `(${total} since the outbox was created)`;
    this.o.logger.warn({ code: 'TELEMETRY_DROPPED', dropped: total - reported, total }, message);
    const event = {
      v: PROTOCOL_VERSION,
      level: 'warn',
      code: 'TELEMETRY_DROPPED',
      message,
      at: new Date().toISOString(),
    };
    try {
      await untilClosedOrTimeout(
        this.o.transport,
        this.o.transport.publish(deviceTopic(this.o.deviceId, 'event'), encodeJson(event), { qos: 1 }),
        15_000,
      );
      this.o.outbox.setMetaValue(DROPS_REPORTED_KEY, String(total));
    } catch {
      // Reported on the next drain.
    }
  }

  private async drain(): Promise<void> {
    const topic = deviceTopic(this.o.deviceId, 'telemetry');
    while (!this.stopped && this.o.transport.connected) {
      await this.reportDrops();
      const records = this.o.outbox.peek(this.o.batchMax, this.cursor);
      if (records.length === 0) return;
      const from = records[0].seq;
      const to = records[records.length - 1].seq;
      try {
        await untilClosedOrTimeout(
          this.o.transport,
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
      this.o.logger.trace({ from, to }, 'telemetry batch sent');
      this.cursor = to;
      if (this.cloudAcks) this.unacked.set(from, { to, sentAt: Date.now() });
      this.batchesSent++;
      if (!this.cloudAcks) this.o.outbox.ack(from, to);
    }
  }
}

/** A publish stuck on a dead connection must not block the drain until some timeout. */
function untilClosedOrTimeout<T>(transport: MqttTransport, promise: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const done = () => {
      clearTimeout(timer);
      off();
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`timed out after ${ms} ms`));
    }, ms);
    const off = transport.onClose(() => {
      done();
      reject(new Error('connection closed'));
    });
    promise.then(
      (v) => {
        done();
        resolve(v);
      },
      (e) => {
        done();
        reject(e);
      },
    );
  });
}
