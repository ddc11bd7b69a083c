/**
 * The agent's one door to MQTT.js: connect with a last will, reconnect, route messages to
 * per-topic handlers. Plain MQTT 3.1.1 so that any broker works.
 */
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { Logger } from '../../shared/logger.js';

export interface TransportOptions {
  /** Broker URL, e.g. mqtt://localhost:1883. */
  url: string;
  /** MQTT client id; must be unique per broker. */
  clientId: string;
  /** Broker username / password (device id / secret once enrolled); default none. */
  username?: string;
  password?: string;
  /** Message the broker publishes (retained) when the connection dies without DISCONNECT. */
  will?: { topic: string; payload: Buffer; retain: boolean; qos: 0 | 1 };
  /** CA certificate (PEM) the broker's certificate must chain to (mqtts); pins the fleet CA. */
  caPem?: string;
  /** Keepalive, seconds. Default 30. */
  keepaliveS?: number;
  /** Delay between reconnect attempts, ms. Default 2000. */
  reconnectPeriodMs?: number;
  /** Connect timeout, ms. Default 10 000. */
  connectTimeoutMs?: number;
  logger: Logger;
}

/** How long close() waits for messages in flight to be acknowledged before it drops the link. */
const CLOSE_GRACE_MS = 5000;

export type MessageHandler = (payload: Buffer, topic: string) => void;

export interface PublishOptions {
  /** Default 1. */
  qos?: 0 | 1;
  /** Default false. */
  retain?: boolean;
}

export class MqttTransport {
  private readonly client: MqttClient;
  private readonly handlers = new Map<string, { handler: MessageHandler; qos: 0 | 1 }>();
  private readonly connectListeners = new Set<() => void>();
  private readonly closeListeners = new Set<() => void>();
  private readonly logger: Logger;
  private closed = false;

  constructor(options: TransportOptions) {
    this.logger = options.logger;
    const clientOptions: IClientOptions = {
      clientId: options.clientId,
      protocolVersion: 4,
      clean: true,
      keepalive: options.keepaliveS ?? 30,
      reconnectPeriod: options.reconnectPeriodMs ?? 2000,
      connectTimeout: options.connectTimeoutMs ?? 10_000,
      // Telemetry has its own durable outbox; nothing else should pile up in RAM while offline.
      queueQoSZero: false,
      // We resubscribe ourselves on every connect: after a broker restart the session is gone
      // and MQTT.js's own resubscription proved unreliable across clean reconnects.
      resubscribe: false,
      ...(options.username ? { username: options.username, password: options.password } : {}),
      ...(options.will ? { will: options.will } : {}),
      ...(options.caPem ? { ca: options.caPem, rejectUnauthorized: true } : {}),
    };
    this.client = mqtt.connect(options.url, clientOptions);
    this.client.on('connect', () => {
      this.logger.debug({ url: options.url }, 'mqtt connected');
      // Listeners run once the broker granted the subscriptions: a backlog sent before the
      // telemetry/ack subscription exists would have its acks dropped and wait for a resend.
      const resubscribed = [...this.handlers].map(([topic, { qos }]) =>
        this.client.subscribeAsync(topic, { qos }).catch((error: Error) => {
          this.logger.warn({ topic, err: error.message }, 'resubscribe failed');
        }),
      );
      void Promise.all(resubscribed).then(() => {
        if (!this.client.connected) return;
        for (const listener of this.connectListeners) listener();
      });
    });
    this.client.on('close', () => {
      this.logger.debug('mqtt connection closed');
      for (const listener of this.closeListeners) listener();
    });
    this.client.on('error', (error) => this.logger.warn({ err: error.message }, 'mqtt error'));
    this.client.on('message', (topic, payload) => {
      const entry = this.handlers.get(topic);
      if (!entry) return;
      try {
        entry.handler(payload, topic);
      } catch (error) {
        // A handler bug must not take the connection down with it.
        this.logger.error({ err: error, topic }, 'message handler threw');
      }
    });
  }

  get connected(): boolean {
    return this.client.connected;
  }

  /** Called on every (re)connect, and at once if already connected. */
  onConnect(listener: () => void): () => void {
    this.connectListeners.add(listener);
    if (this.client.connected) listener();
    return () => this.connectListeners.delete(listener);
  }

  /** Called whenever the connection closes (before any reconnect). */
  onClose(listener: () => void): () => void {
    this.closeListeners.add(listener);
    return () => this.closeListeners.delete(listener);
  }

  /** Resolves on the next successful connect (or now); rejects after `timeoutMs`. */
  waitConnected(timeoutMs: number): Promise<void> {
    if (this.client.connected) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        off();
        reject(new Error(`no MQTT connection within ${timeoutMs} ms`));
      }, timeoutMs);
      const off = this.onConnect(() => {
        clearTimeout(timer);
        off();
        resolve();
      });
    });
  }

  /**
   * Registers the handler and subscribes; resolves once the broker granted it (MQTT.js holds a
   * subscription made before the first connect until then). If the link is down or drops
   * meanwhile it resolves anyway: every handler is subscribed again on the next connect, and a
   * transfer that starts during an outage must wait for the link, not fail.
   */
  async subscribe(topic: string, handler: MessageHandler, qos: 0 | 1 = 1): Promise<void> {
    this.handlers.set(topic, { handler, qos });
    try {
      await this.client.subscribeAsync(topic, { qos });
    } catch (error) {
      if (this.client.connected) throw error;
      this.logger.debug({ topic }, 'offline: subscribing on the next connect');
    }
  }

  async unsubscribe(topic: string): Promise<void> {
    this.handlers.delete(topic);
    if (this.client.connected) await this.client.unsubscribeAsync(topic);
  }

  /** Resolves when the broker acknowledges (QoS 1) or the packet is written (QoS 0). */
  async publish(topic: string, payload: Buffer | string, options: PublishOptions = {}): Promise<void> {
    await this.client.publishAsync(topic, payload, {
      qos: options.qos ?? 1,
      retain: options.retain ?? false,
    });
  }

  /** Graceful close: the broker does not publish the will. */
  /**
   * Ends the connection, letting messages in flight be acknowledged for up to
   * CLOSE_GRACE_MS. Without a connection it ends at once: a graceful end waits for
   * acknowledgements (of a subscription queued before the first connect, say) that would never
   * come, and `agent enroll --timeout` against a broker that never answered hung there.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (!this.client.connected) {
      await this.client.endAsync(true).catch(() => {});
      return;
    }
    let timer: NodeJS.Timeout | undefined;
    const graceful = this.client.endAsync(false).catch(() => {});
    const bounded = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        this.client.stream?.destroy();
        resolve();
      }, CLOSE_GRACE_MS);
    });
    await Promise.race([graceful, bounded]);
    clearTimeout(timer);
  }

  /** Drops the socket without DISCONNECT (the broker publishes the will); tests and benches use it. */
  destroy(): void {
    this.closed = true;
    this.client.end(true);
  }

  /** Drops the current socket but keeps reconnecting; simulates a flaky link. */
  dropConnection(): void {
    (this.client as unknown as { stream?: { destroy(): void } }).stream?.destroy();
  }
}
