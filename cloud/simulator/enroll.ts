import { randomBytes } from 'node:crypto';
import mqtt, { type MqttClient } from 'mqtt';
import { FleetError } from '../../shared/errors/index.js';
import {
  decodeJson,
  ENROLL_CLIENT_PREFIX,
  ENROLL_USERNAME,
  type EnrollReply,
  encodeJson,
  enrollReplySchema,
  enrollReplyTopic,
  enrollRequestTopic,
  type HardwareFacts,
  PROTOCOL_VERSION,
} from '../../shared/protocol/index.js';

export interface SimIdentity {
  deviceId: string;
  secret: string;
}

/** Hardware a simulated device reports: an ordinary 4-core x86 box, named so it is recognisable. */
export function simulatedHardware(hostname: string): HardwareFacts {
  return {
    hostname,
    arch: 'x64',
    platform: 'linux',
    cpuModel: 'fleetml simulated CPU',
    cpuCores: 4,
    memoryBytes: 4 * 1024 ** 3,
    gpu: null,
    executionProviders: ['cpu'],
    onnxruntimeVersion: '1.30.0',
    nodeVersion: process.versions.node,
  };
}

/**
 * Enrolls one simulated device exactly as the agent does (agent/enroll.ts): an `enroll-<random>`
 * client publishes its request and waits for the reply, asking again every `retryS` seconds.
 */
export async function enrollSimulated(options: {
  url: string;
  token: string;
  hostname: string;
  retryS: number;
  signal: AbortSignal;
  caPem?: string;
}): Promise<SimIdentity> {
  const requestId = `${ENROLL_CLIENT_PREFIX}${randomBytes(12).toString('hex')}`;
  const client = connectEnrollClient(options.url, requestId, options.caPem);
  client.on('error', () => {}); // reconnects on its own; the deadline below bounds the wait
  try {
    const reply = await new Promise<EnrollReply>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const abort = () => {
        clearTimeout(timer);
        reject(new FleetError('ENROLL_TIMEOUT', 'the simulation stopped before enrollment finished'));
      };
      if (options.signal.aborted) return abort();
      options.signal.addEventListener('abort', abort, { once: true });
      client.on('message', (_topic, payload) => {
        try {
          const message = decodeJson(enrollReplySchema, payload);
          clearTimeout(timer);
          options.signal.removeEventListener('abort', abort);
          resolve(message);
        } catch {
          // not a reply we can read: keep waiting
        }
      });
      const ask = () => {
        const request = {
          v: PROTOCOL_VERSION,
          requestId,
          token: options.token,
          agentVersion: 'fleetml-simulator',
          hardware: simulatedHardware(options.hostname),
        };
        if (client.connected) client.publish(enrollRequestTopic(requestId), encodeJson(request), { qos: 1 });
        timer = setTimeout(ask, options.retryS * 1000);
      };
      client.on('connect', () => {
        client.subscribe(enrollReplyTopic(requestId), { qos: 1 }, () => {
          clearTimeout(timer);
          ask();
        });
      });
    });
    if (!reply.ok) throw new FleetError('ENROLL_TOKEN', `enrollment refused: ${reply.error.code}`);
    return { deviceId: reply.deviceId, secret: reply.secret };
  } finally {
    await client.endAsync(true).catch(() => {});
  }
}

/** The enrolling client: fixed enrollment username, its request id as client id. */
function connectEnrollClient(url: string, requestId: string, caPem: string | undefined): MqttClient {
  return mqtt.connect(url, {
    clientId: requestId,
    username: ENROLL_USERNAME,
    password: ENROLL_USERNAME,
    protocolVersion: 4,
    clean: true,
    reconnectPeriod: 2000,
    connectTimeout: 30_000,
    ...(caPem ? { ca: caPem, rejectUnauthorized: true } : {}),
  });
}
