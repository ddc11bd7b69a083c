import { randomBytes } from 'node:crypto';
import mqtt, { type MqttClient } from 'mqtt';
import { FleetError, isRetryableCode } from '../../shared/errors/index.js';
import {
  decodeJson,
  ENROLL_CLIENT_PREFIX,
  ENROLL_USERNAME,
  type EnrollReply,
  encodeJson,
  enrollCredentials,
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
  /** Which enrollment login to use (see EnrollLogin); default 'shared'. */
  login?: EnrollLogin;
}): Promise<SimIdentity> {
  const { client, topicId, requestId } = connectEnrollClient(options);
  try {
    const reply = await awaitEnrollReply(client, topicId, requestId, options);
    if (!reply.ok) throw new FleetError('ENROLL_TOKEN', `enrollment refused: ${reply.error.code}`);
    return { deviceId: reply.deviceId, secret: reply.secret };
  } finally {
    await client.endAsync(true).catch(() => {});
  }
}

/** The enroll request a simulated device sends (the same for every resend of it). */
function enrollRequest(options: { token: string; hostname: string }, requestId: string) {
  return {
    v: PROTOCOL_VERSION,
    requestId,
    token: options.token,
    agentVersion: 'fleetml-simulator',
    hardware: simulatedHardware(options.hostname),
  };
}

/** Asks for enrollment every `retryS` seconds until this request's reply, a refusal or the abort. */
function awaitEnrollReply(
  client: ReturnType<typeof connectEnrollClient>['client'],
  topicId: string,
  requestId: string,
  options: Parameters<typeof enrollSimulated>[0],
): Promise<EnrollReply> {
  return new Promise<EnrollReply>((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    const abort = () => {
      clearTimeout(timer);
      reject(new FleetError('ENROLL_TIMEOUT', 'the simulation stopped before enrollment finished'));
    };
    if (options.signal.aborted) return abort();
    options.signal.addEventListener('abort', abort, { once: true });
    client.on('error', (error: Error & { code?: number }) => {
      // Refused at CONNECT (4 bad credentials, 5 not authorised): this login does not exist
      // on this broker. Other errors: mqtt.js reconnects; the deadline bounds the wait.
      if (error.code !== 4 && error.code !== 5) return;
      clearTimeout(timer);
      options.signal.removeEventListener('abort', abort);
      reject(
        new FleetError(
          'UNAUTHORIZED',
          `the broker refused the ${options.login ?? 'shared'} enrollment login`,
        ),
      );
    });
    client.on('message', (_topic, payload) => {
      try {
        const message = decodeJson(enrollReplySchema, payload);
        // Devices enrolling with the same token share the topic: only our reply counts.
        if (message.requestId !== undefined && message.requestId !== requestId) return;
        clearTimeout(timer);
        // As the agent does: the cloud could not answer for now (its database away or busy), so
        // ask again soon as the same request, which the cloud handles idempotently.
        if (!message.ok && isRetryableCode(message.error.code)) {
          timer = setTimeout(ask, 2000 + Math.random() * 3000);
          return;
        }
        options.signal.removeEventListener('abort', abort);
        resolve(message);
      } catch {
        // not a reply we can read: keep waiting
      }
    });
    const ask = () => {
      const request = enrollRequest(options, requestId);
      if (client.connected) client.publish(enrollRequestTopic(topicId), encodeJson(request), { qos: 1 });
      timer = setTimeout(ask, options.retryS * 1000);
    };
    client.on('connect', () => {
      client.subscribe(enrollReplyTopic(topicId), { qos: 1 }, () => {
        clearTimeout(timer);
        ask();
      });
    });
  });
}

/**
 * How a simulated device logs in to enroll. 'shared': the `enroll` user with a random client id
 * per device, which the embedded broker and the password-file Mosquitto accept, so that many
 * devices enroll at once. 'token': as the agent does (agent/enroll.ts), client id and username
 * derived from the token, the token as password: the only login Mosquitto's dynamic security
 * knows. All devices of one token share that client id, so they must enroll one at a time.
 */
export type EnrollLogin = 'shared' | 'token';

/** The enrolling client, its enrollment topic id and the request id its reply names. */
function connectEnrollClient(options: { url: string; token: string; caPem?: string; login?: EnrollLogin }): {
  client: MqttClient;
  topicId: string;
  requestId: string;
} {
  const random = randomBytes(12).toString('hex');
  const login =
    options.login === 'token'
      ? { ...enrollCredentials(options.token), requestId: `req-${random}` }
      : {
          clientId: `${ENROLL_CLIENT_PREFIX}${random}`,
          username: ENROLL_USERNAME,
          password: ENROLL_USERNAME,
          requestId: `${ENROLL_CLIENT_PREFIX}${random}`,
        };
  const client = mqtt.connect(options.url, {
    clientId: login.clientId,
    username: login.username,
    password: login.password,
    protocolVersion: 4,
    clean: true,
    reconnectPeriod: 2000,
    connectTimeout: 30_000,
    ...(options.caPem ? { ca: options.caPem, rejectUnauthorized: true } : {}),
  });
  return { client, topicId: login.clientId, requestId: login.requestId };
}
