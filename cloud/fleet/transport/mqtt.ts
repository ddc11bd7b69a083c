import { randomBytes } from 'node:crypto';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { Logger } from '../../../shared/logger.js';

export interface CloudMqttOptions {
  url: string;
  /**
   * Client id; default `fleetml-cloud-<pid>-<random>`. Unique per replica: two clients with one
   * id make the broker drop the older one, over and over (pids repeat across hosts).
   */
  clientId?: string;
  username?: string;
  password?: string;
  /** CA certificate (PEM) to trust for mqtts; default the system's. */
  caPem?: string;
  /**
   * MQTT 5 shared-subscription group: subscriptions made with `{ shared: true }` become
   * `$share/<group>/<filter>`, so the broker hands each message to ONE of the cloud replicas
   * subscribed in the group. Needs an MQTT 5 broker (Mosquitto 2, EMQX); aedes has none. Default off.
   */
  sharedGroup?: string;
  logger: Logger;
}

export interface CloudMqtt {
  publish(topic: string, payload: Buffer, options?: { retain?: boolean; qos?: 0 | 1 }): Promise<void>;
  /** With `shared` (and a sharedGroup), each message goes to one replica of the group. */
  subscribe(topics: string[], options?: { shared?: boolean }): Promise<void>;
  onMessage(handler: (topic: string, payload: Buffer) => void): void;
  close(): Promise<void>;
  client: MqttClient;
}

/**
 * The cloud's one door to the mqtt package. The cloud is an ordinary MQTT client of whatever
 * broker it is given (the embedded aedes or an external one), so moving brokers is one URL.
 */
export async function connectCloudMqtt(options: CloudMqttOptions): Promise<CloudMqtt> {
  const clientOptions: IClientOptions = {
    clientId: options.clientId ?? `fleetml-cloud-${process.pid}-${randomBytes(3).toString('hex')}`,
    // MQTT 5 only where shared subscriptions are wanted: 3.1.1 works with every broker (aedes too).
    protocolVersion: options.sharedGroup ? 5 : 4,
    clean: true,
    reconnectPeriod: 1000,
    connectTimeout: 10_000,
    username: options.username,
    password: options.password,
    ...(options.caPem ? { ca: options.caPem, rejectUnauthorized: true } : {}),
  };
  const client = await mqtt.connectAsync(options.url, clientOptions);
  client.on('error', (error) => options.logger.warn({ err: error.message }, 'cloud mqtt error'));
  client.on('reconnect', () => options.logger.info('cloud mqtt reconnecting'));
  return {
    client,
    publish: async (topic, payload, publishOptions = {}) => {
      await client.publishAsync(topic, payload, {
        qos: publishOptions.qos ?? 1,
        retain: publishOptions.retain ?? false,
      });
    },
    subscribe: async (topics, subscribeOptions = {}) => {
      const group = subscribeOptions.shared ? options.sharedGroup : undefined;
      await client.subscribeAsync(group ? topics.map((t) => sharedTopic(group, t)) : topics, { qos: 1 });
    },
    onMessage: (handler) => {
      client.on('message', (topic, payload) => handler(topic, payload));
    },
    close: async () => {
      await client.endAsync();
    },
  };
}

/** Valid group names: one topic level, no wildcards. */
export const SHARED_GROUP_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

export function sharedTopic(group: string, filter: string): string {
  return `$share/${group}/${filter}`;
}

/**
 * Subscribes the cloud to device traffic. Every channel is shared across replicas except
 * `status`: a retained status is never delivered to a shared subscription (MQTT 5 §4.8.2), and
 * each replica needs the fleet's statuses at start; applying one twice is harmless (online flag).
 */
export async function subscribeDeviceTraffic(mqtt: CloudMqtt, topics: readonly string[]): Promise<void> {
  const isStatus = (t: string) => t.endsWith('/status');
  await mqtt.subscribe(topics.filter(isStatus));
  await mqtt.subscribe(
    topics.filter((t) => !isStatus(t)),
    { shared: true },
  );
}
