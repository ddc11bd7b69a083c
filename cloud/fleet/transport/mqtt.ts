import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { Logger } from '../../../shared/logger.js';

export interface CloudMqttOptions {
  url: string;
  /** Client id; default a per-process `fleetml-cloud-<pid>`. */
  clientId?: string;
  username?: string;
  password?: string;
  /** CA certificate (PEM) to trust for mqtts; default the system's. */
  caPem?: string;
  logger: Logger;
}

export interface CloudMqtt {
  publish(topic: string, payload: Buffer, options?: { retain?: boolean; qos?: 0 | 1 }): Promise<void>;
  subscribe(topics: string[]): Promise<void>;
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
    clientId: options.clientId ?? `fleetml-cloud-${process.pid}`,
    protocolVersion: 4,
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
    subscribe: async (topics) => {
      await client.subscribeAsync(topics, { qos: 1 });
    },
    onMessage: (handler) => {
      client.on('message', (topic, payload) => handler(topic, payload));
    },
    close: async () => {
      await client.endAsync();
    },
  };
}
