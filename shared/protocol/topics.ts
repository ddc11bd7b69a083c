import { sha256Hex } from '../hash.js';
/**
 * MQTT topic layout (plain MQTT 3.1.1, so any broker works). Every device topic sits under
 * `fleetml/v1/d/<deviceId>/`, which lets broker ACLs give a device exactly its own subtree.
 * `v1` is the protocol major version; payloads also carry `v`.
 */
export const TOPIC_ROOT = 'fleetml/v1';

export const DEVICE_CHANNELS = [
  'status', // agent -> cloud, retained; the broker publishes the last will (offline)
  'target', // cloud -> agent, retained target state
  'state', // agent -> cloud, current state
  'telemetry', // agent -> cloud, batches
  'telemetry/ack', // cloud -> agent, seq range of a stored batch
  'bench', // agent -> cloud, benchmark reports
  'event', // agent -> cloud, coded errors and notable events
  'transfer/req', // agent -> cloud, block requests
  'transfer/blk', // cloud -> agent, binary block frames
] as const;
export type DeviceChannel = (typeof DEVICE_CHANNELS)[number];

/** Device ids are safe topic levels: no wildcards, separators or whitespace. */
export const DEVICE_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

export function deviceTopic(deviceId: string, channel: DeviceChannel): string {
  return `${TOPIC_ROOT}/d/${deviceId}/${channel}`;
}

/**
 * MQTT username of an enrolling agent (password: the same word). Its rights are limited to its
 * own enrollment request and reply; the enrollment token inside the request is the secret.
 */
export const ENROLL_USERNAME = 'enroll';
/** Enrolling clients use a client id with this prefix, which is also their request id. */
export const ENROLL_CLIENT_PREFIX = 'enroll-';

/**
 * The MQTT identity an agent enrolls with: client id = username = `enroll-` + the first 24 hex
 * digits of SHA-256(token), password = the token. A broker can then bind the client id to the
 * token (Mosquitto's dynamic security creates one client per enrollment token), so no public
 * credential exists that could take over anyone else's session.
 */
export function enrollCredentials(token: string): { clientId: string; username: string; password: string } {
  const clientId = `${ENROLL_CLIENT_PREFIX}${sha256Hex(Buffer.from(token, 'utf8')).slice(0, 24)}`;
  return { clientId, username: clientId, password: token };
}

export function enrollRequestTopic(requestId: string): string {
  return `${TOPIC_ROOT}/enroll/${requestId}/req`;
}

export function enrollReplyTopic(requestId: string): string {
  return `${TOPIC_ROOT}/enroll/${requestId}/reply`;
}

/** Subscriptions the cloud needs to hear every device. */
export const CLOUD_SUBSCRIPTIONS = [
  `${TOPIC_ROOT}/d/+/status`,
  `${TOPIC_ROOT}/d/+/state`,
  `${TOPIC_ROOT}/d/+/telemetry`,
  `${TOPIC_ROOT}/d/+/bench`,
  `${TOPIC_ROOT}/d/+/event`,
  `${TOPIC_ROOT}/d/+/transfer/req`,
  `${TOPIC_ROOT}/enroll/+/req`,
];

export type ParsedTopic =
  | { kind: 'device'; deviceId: string; channel: DeviceChannel }
  | { kind: 'enroll'; requestId: string; direction: 'req' | 'reply' };

/** Splits a topic into its parts; undefined when it is not a fleetml topic. */
export function parseTopic(topic: string): ParsedTopic | undefined {
  if (!topic.startsWith(`${TOPIC_ROOT}/`)) return undefined;
  const parts = topic.slice(TOPIC_ROOT.length + 1).split('/');
  if (parts[0] === 'd' && parts.length >= 3) {
    const deviceId = parts[1];
    const channel = parts.slice(2).join('/') as DeviceChannel;
    if (!DEVICE_ID_PATTERN.test(deviceId) || !DEVICE_CHANNELS.includes(channel)) return undefined;
    return { kind: 'device', deviceId, channel };
  }
  if (parts[0] === 'enroll' && parts.length === 3 && (parts[2] === 'req' || parts[2] === 'reply')) {
    if (!DEVICE_ID_PATTERN.test(parts[1])) return undefined;
    return { kind: 'enroll', requestId: parts[1], direction: parts[2] };
  }
  return undefined;
}
